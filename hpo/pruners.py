"""Pruners from the study file, acting on per-epoch validation macro F1.

Defaults suit the few epochs a transfer-learning trial runs: a trial is
judged only after a couple of epochs and once a few trials have finished.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from hpo.errors import ConfigError

PRUNER_NAMES = ("none", "median", "hyperband", "successive_halving")

_DEFAULTS: dict[str, dict[str, Any]] = {
    "none": {},
    "median": {"n_startup_trials": 5, "n_warmup_steps": 2, "interval_steps": 1, "n_min_trials": 1},
    "hyperband": {"min_resource": 1, "max_resource": "auto", "reduction_factor": 3},
    "successive_halving": {
        "min_resource": 1,
        "reduction_factor": 3,
        "min_early_stopping_rate": 0,
    },
}

_FACTORIES: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
}


def pruner_options(name: str) -> dict[str, Any]:
    """The options a pruner accepts, with their defaults."""
    if name not in _DEFAULTS:
        raise ConfigError(f"unknown pruner '{name}'; allowed: {', '.join(PRUNER_NAMES)}")
    return dict(_DEFAULTS[name])


def make_pruner(name: str, **options: Any) -> optuna.pruners.BasePruner:
    """Build a pruner by name; unknown names or options are a ``ConfigError``."""
    allowed = pruner_options(name)
    for key in options:
        if key not in allowed:
            listed = ", ".join(allowed) or "none"
            raise ConfigError(f"pruner '{name}': unknown option '{key}'; allowed: {listed}")
    kwargs = {**allowed, **options}
    try:
        return _FACTORIES[name](**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pruner '{name}': {exc}") from None
