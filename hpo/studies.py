"""The study controller: create or resume a study and keep it traceable.

A study records its resolved study file, library versions, sampler and
pruner when created, and the dataset fingerprint once a worker has loaded
the data. Resuming checks that the search space and the data are the same,
so trials of different experiments never mix under one name.
"""

from __future__ import annotations

import datetime as _dt
import platform
import re
from importlib import metadata
from pathlib import Path
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


_SIMD = re.compile(r"^(sse4_[12]|avx\w*|fma|f16c|amx\w*|asimd\w*|sve\w*|neon)$")
_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "XLA_FLAGS",
)


def machine_record() -> dict[str, Any]:
    """What a run's numbers depend on besides library versions: the CPU model and its
    vector instructions (oneDNN and XLA pick kernels by them), and thread settings."""
    import contextlib
    import hashlib
    import os

    model, flags = "", list[str]()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name" and not model:
                model = value
            elif key in ("flags", "Features") and not flags:  # x86, ARM
                flags = sorted(set(value.split()))
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "simd": [f for f in flags if _SIMD.match(f)],
        "flags_sha256": hashlib.sha256(" ".join(flags).encode()).hexdigest()[:16],
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity(0)) if affinity else os.cpu_count(),
        "thread_env": {k: os.environ[k] for k in _THREAD_ENV if k in os.environ},
    }


RECIPE_SECTIONS = ("dataset", "model", "training", "search_space", "objective")
"""Study-file sections whose change makes trials incomparable: resuming refuses it."""

RESULT_NEUTRAL: dict[str, str] = {
    "dataset.path": "where the data lies; its content is checked by sha256 instead",
    "training.cache_dir": "where the feature cache lies",
    "training.cache_max_gb": "the feature cache's size limit (both paths give the same curve)",
    "training.trial_timeout": "a limit on wall time, not on what is trained",
    "training.data": "tf.data pipeline tuning (caching, prefetch, parallel calls)",
}
"""Fields of those sections that may change between runs of one study, and why."""


_ABSENT = "(absent)"


def _diff(old: Any, new: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    """Leaf-level differences; a key present on one side only is one change."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _diff(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{path}.{key}", out)
    elif old != new and not _neutral(path):
        out.append((path, old, new))


def _neutral(path: str) -> bool:
    return any(path == p or path.startswith(p + ".") for p in RESULT_NEUTRAL)


def _normalized(config_dict: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults of fields added since the study was created, so they compare equal."""
    from hpo.config import validate_config

    try:
        return validate_config(config_dict, source="stored study file").to_dict()
    except HpoError:
        return config_dict


def recipe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, old value, new value) for every recipe field that differs."""
    old, new = _normalized(old), _normalized(new)
    out: list[tuple[str, Any, Any]] = []
    for section in RECIPE_SECTIONS:
        _diff(old.get(section, _ABSENT), new.get(section, _ABSENT), section, out)
    return out


def _short(value: Any) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


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
        changes = recipe_changes(stored, cfg) if stored is not None else []
        if changes:
            listed = ", ".join(f"{p} {_short(o)} -> {_short(n)}" for p, o, n in changes)
            raise ConfigError(
                f"study '{name}' already exists with another recipe: {listed}; these change "
                "what a trial trains, so resume with the stored values or give a new name "
                "with --study-name (nothing was changed)"
            )
        return existing
    problem = None
    if config.objective.benchmark is not None:
        from hpo.benchmarks import get_problem

        problem = get_problem(config.objective.benchmark)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction=problem.direction if problem is not None else "maximize",
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
        study.set_user_attr(keys.STUDY_MACHINE, machine_record())
        if problem is not None:
            study.set_user_attr(keys.STUDY_OPTIMUM, problem.optimum)
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


def create_or_resume(config: StudyConfig, url: str, *, source: str | None = None) -> optuna.Study:
    """Open the storage, check the data can feed the space, then create or load the study.

    The data check comes first so that bad data changes nothing stored. ``source``
    (the study file) prefixes errors about the file's ``dataset`` fields. A
    benchmark study has no data to check.
    """
    from hpo.storage import open_storage
    from hpo.worker import check_inputs

    storage = open_storage(url, heartbeat=True)
    try:
        check_inputs(config)
    except DataError as exc:
        if source and str(exc).startswith("dataset"):
            raise DataError(f"{source}: {exc}") from None
        raise
    if source and config.objective.benchmark is None:
        _warn_duplicates(config, source)
    return make_study(config, storage)


def _warn_duplicates(config: StudyConfig, source: str) -> None:
    """The audit's one-line summary when the data holds duplicates or leaks."""
    import sys

    from hpo.audit import study_warning
    from hpo.worker import prepare_dataset

    line = study_warning(prepare_dataset(config), source)  # decoded once per process
    if line:
        print(f"warning: {line}", file=sys.stderr, flush=True)


def load_existing(
    storage: optuna.storages.BaseStorage, name: str, *, where: str | None = None
) -> optuna.Study:
    """Load a study by name for read-only commands, with a miss that says where it looked."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [
            s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        ]
        place = f" in {where}" if where else ""
        hint = f"; existing: {', '.join(sorted(names)[:10])}" if names else "; it holds no study"
        raise HpoError(f"no study named '{name}'{place}{hint}") from None


def stored_config(study: optuna.Study) -> StudyConfig:
    """The study file a study was created with, validated again."""
    from hpo.config import validate_config

    data = study.user_attrs.get(keys.STUDY_CONFIG)
    if data is None:
        raise HpoError(f"study '{study.study_name}' was not created by hpo (no stored study file)")
    return validate_config(data, source=f"study '{study.study_name}'")
