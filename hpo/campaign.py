"""Sampler-comparison campaigns: one study per (sampler, repeat), tagged together.

Every study of a campaign shares the study file but for its sampler and seed,
and records ``hpo:campaign`` and ``hpo:repeat``, so the comparison report can
be rebuilt later from the database alone. Running a campaign again resumes
each study up to the requested number of finished trials.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo import keys
from hpo.config import SAMPLERS
from hpo.errors import ConfigError
from hpo.results import finished_count

if TYPE_CHECKING:
    import optuna

    from hpo.config import StudyConfig


_STARTUP_OPTION = {"tpe": "n_startup_trials", "gp": "n_startup_trials", "gpyopt": "n_initial"}
STARTUP_DEFAULT = 10
"""Random trials TPE, GP and GPyOpt draw before their model takes over (Optuna's default)."""


def startup_trials(sampler: Mapping[str, Any]) -> int:
    """How many random trials a sampler (as stored: name, seed, options) starts with.

    From the same seed, every sampler of a campaign repeat draws the same
    start-up trials, so a campaign that stops inside them compares nothing.
    Random search has no model to start: 0.
    """
    option = _STARTUP_OPTION.get(str(sampler.get("name")))
    if option is None:
        return 0
    options = sampler.get("options") or {}
    value = options.get(option, STARTUP_DEFAULT) if isinstance(options, Mapping) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else STARTUP_DEFAULT


@dataclass(frozen=True)
class CampaignMember:
    sampler: str
    repeat: int
    seed: int
    study_name: str


def parse_samplers(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ConfigError("--samplers: give at least one of " + ", ".join(SAMPLERS))
    for n in names:
        if n not in SAMPLERS:
            raise ConfigError(f"--samplers: unknown sampler '{n}'; allowed: {', '.join(SAMPLERS)}")
    if len(set(names)) != len(names):
        raise ConfigError("--samplers: each sampler may appear once")
    return names


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "campaign"


def plan(
    config: StudyConfig, campaign: str, samplers: Sequence[str], repeats: int, base_seed: int
) -> list[CampaignMember]:
    """The studies of a campaign, in the order they run (repeat-major, so partial
    campaigns still compare every sampler)."""
    if repeats < 1:
        raise ConfigError(f"--repeats: must be at least 1, got {repeats}")
    members = []
    for r in range(repeats):
        for s in samplers:
            name = f"{config.study.name}.{_slug(campaign)}.{s}.r{r}"
            members.append(CampaignMember(s, r, base_seed + r, name))
    return members


def member_config(config: StudyConfig, member: CampaignMember, trials: int) -> StudyConfig:
    options = config.sampler.options if member.sampler == config.sampler.name else {}
    data = config.to_dict()
    data["study"]["name"] = member.study_name
    data["sampler"] = {"name": member.sampler, "seed": member.seed, "options": options}
    data["budget"]["trials"] = trials
    from hpo.config import validate_config

    return validate_config(data, source="campaign")


RunMember = Callable[["StudyConfig", "optuna.Study", int], None]


def run_campaign(
    config: StudyConfig,
    storage: optuna.storages.BaseStorage,
    *,
    campaign: str,
    samplers: Sequence[str],
    repeats: int,
    trials: int,
    base_seed: int = 0,
    run_member: RunMember,
    on_member: Callable[[CampaignMember, int], None] | None = None,
) -> list[CampaignMember]:
    """Create or resume every study of the campaign and bring each to ``trials``."""
    from hpo.studies import make_study

    members = plan(config, campaign, samplers, repeats, base_seed)
    for m in members:
        cfg = member_config(config, m, trials)
        study = make_study(
            cfg, storage, extra_attrs={keys.STUDY_CAMPAIGN: campaign, keys.STUDY_REPEAT: m.repeat}
        )
        if study.user_attrs.get(keys.STUDY_CAMPAIGN) != campaign:
            raise ConfigError(
                f"study '{m.study_name}' exists outside campaign '{campaign}'; "
                "choose another --campaign name"
            )
        remaining = trials - finished_count(study)
        if on_member is not None:
            on_member(m, max(remaining, 0))
        if remaining > 0:
            run_member(cfg, study, remaining)
    return members
