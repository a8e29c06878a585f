"""The study controller: create or resume a study and keep it traceable.

A study records its resolved study file, library versions, sampler and
pruner when created, and the dataset fingerprint once a worker has loaded
the data. Resuming checks that the search space and the data are the same,
so trials of different experiments never mix under one name.
"""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata
from typing import TYPE_CHECKING, Any

from hpo import keys
from hpo.errors import ConfigError, DataError, HpoError

if TYPE_CHECKING:
    import optuna

    from hpo.config import StudyConfig

_PACKAGES = (
    "hpo",
    "optuna",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "numpy",
    "scikit-learn",
    "sqlalchemy",
    "gpyopt",
    "gpy",
    "torch",
    "plotly",
)


def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata (no heavy imports)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "tensorflow-cpu" in out:
        out.setdefault("tensorflow", out.pop("tensorflow-cpu"))
    return out


def _space_signature(config_dict: dict[str, Any]) -> dict[str, Any]:
    return {
        "search_space": config_dict.get("search_space"),
        "model": config_dict.get("model"),
        "objective": config_dict.get("objective"),
    }


def make_study(
    config: StudyConfig,
    storage: optuna.storages.BaseStorage,
    *,
    sampler_override: optuna.samplers.BaseSampler | None = None,
    extra_attrs: dict[str, Any] | None = None,
) -> optuna.Study:
    """Create the study, or load it after checking it is the same experiment."""
    import optuna

    from hpo.pruners import make_pruner
    from hpo.samplers import make_sampler

    name = config.study.name
    sampler = sampler_override or make_sampler(
        config.sampler.name, seed=config.sampler.seed, **config.sampler.options
    )
    pruner = make_pruner(config.pruner.name, **config.pruner.options)
    cfg = config.to_dict()
    if cfg.get("storage"):
        from hpo.storage import redact

        cfg["storage"] = redact(cfg["storage"])  # the database never holds its own password
    try:
        existing = optuna.load_study(
            study_name=name, storage=storage, sampler=sampler, pruner=pruner
        )
    except KeyError:
        existing = None
    if existing is not None:
        stored = existing.user_attrs.get(keys.STUDY_CONFIG)
        if stored is not None and _space_signature(stored) != _space_signature(cfg):
            raise ConfigError(
                f"study '{name}' already exists with a different search space, model or "
                "objective; give a new name with --study-name (nothing was changed)"
            )
        return existing
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction="maximize",
            load_if_exists=True,
        )
    except optuna.exceptions.DuplicatedStudyError:  # another worker created it first
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    if keys.STUDY_CONFIG not in study.user_attrs:
        study.set_user_attr(keys.STUDY_CONFIG, cfg)
        study.set_user_attr(keys.STUDY_VERSIONS, library_versions())
        study.set_user_attr(keys.STUDY_SAMPLER, cfg["sampler"])
        study.set_user_attr(keys.STUDY_PRUNER, cfg["pruner"])
        study.set_user_attr(keys.STUDY_CREATED, _dt.datetime.now(_dt.timezone.utc).isoformat())
        for key, value in (extra_attrs or {}).items():
            study.set_user_attr(key, value)
    return study


def record_fingerprint(study: optuna.Study, fingerprint: dict[str, Any]) -> None:
    """Store the dataset fingerprint, or refuse data that differs from the study's."""
    stored = study.user_attrs.get(keys.STUDY_FINGERPRINT)
    if stored is None:
        study.set_user_attr(keys.STUDY_FINGERPRINT, fingerprint)
        return
    if stored.get("sha256") != fingerprint.get("sha256") or stored.get(
        "split_counts"
    ) != fingerprint.get("split_counts"):
        raise DataError(
            f"study '{study.study_name}' was run on different data (sha256 "
            f"{str(stored.get('sha256'))[:12]}, now {str(fingerprint.get('sha256'))[:12]}); "
            "use a new --study-name for new data"
        )


def load_existing(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """Load a study by name for read-only commands, with a helpful miss."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [
            s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        ]
        hint = f"; existing: {', '.join(sorted(names)[:10])}" if names else "; the storage is empty"
        raise HpoError(f"no study named '{name}'{hint}") from None


def stored_config(study: optuna.Study) -> StudyConfig:
    """The study file a study was created with, validated again."""
    from hpo.config import validate_config

    data = study.user_attrs.get(keys.STUDY_CONFIG)
    if data is None:
        raise HpoError(f"study '{study.study_name}' was not created by hpo (no stored study file)")
    return validate_config(data, source=f"study '{study.study_name}'")
