"""``make_sampler``: study-file names and options to Optuna samplers."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import optuna

from hpo.errors import ConfigError
from hpo.samplers._timed import TimedSampler

SAMPLER_NAMES = ("tpe", "gp", "gpyopt", "random")


def _tpe(seed: int | None, **options: Any) -> optuna.samplers.BaseSampler:
    # Multivariate TPE models interactions (learning rate x batch size); the
    # constant liar keeps parallel workers from piling onto one region.
    defaults: dict[str, Any] = {"multivariate": True, "constant_liar": True, "group": False}
    return optuna.samplers.TPESampler(seed=seed, **{**defaults, **options})


def _gp(seed: int | None, **options: Any) -> optuna.samplers.BaseSampler:
    import importlib.util

    # GPSampler needs torch, which is the optional ``gp`` extra (a CPU build is enough).
    if importlib.util.find_spec("torch") is None:
        raise ConfigError("sampler 'gp' needs torch: pip install 'hpo[gp]'")
    return optuna.samplers.GPSampler(seed=seed, **options)


def _gpyopt(seed: int | None, **options: Any) -> optuna.samplers.BaseSampler:
    from hpo.samplers._gpyopt import GPyOptSampler

    return GPyOptSampler(seed=seed, **options)


def _random(seed: int | None, **options: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


_BUILDERS: dict[str, tuple[Callable[..., optuna.samplers.BaseSampler], tuple[str, ...]]] = {
    "tpe": (
        _tpe,
        (
            "n_startup_trials",
            "n_ei_candidates",
            "multivariate",
            "constant_liar",
            "group",
            "consider_endpoints",
        ),
    ),
    "gp": (_gp, ("n_startup_trials", "deterministic_objective")),
    "gpyopt": (_gpyopt, ()),
    "random": (_random, ()),
}


def sampler_options(name: str) -> tuple[str, ...]:
    """The option names a sampler accepts in the study file."""
    if name not in _BUILDERS:
        raise ConfigError(f"unknown sampler '{name}'; allowed: {', '.join(SAMPLER_NAMES)}")
    if name == "gpyopt":
        from hpo.samplers._gpyopt import GPyOptSampler

        params = inspect.signature(GPyOptSampler.__init__).parameters
        return tuple(p for p in params if p not in ("self", "seed"))
    return _BUILDERS[name][1]


def make_sampler(
    name: str, seed: int | None = None, *, timed: bool = True, **options: Any
) -> optuna.samplers.BaseSampler:
    """A sampler by name; ``timed`` records each trial's sampling time on it."""
    allowed = sampler_options(name)
    for key in options:
        if key not in allowed:
            listed = ", ".join(allowed) or "none"
            raise ConfigError(f"sampler '{name}': unknown option '{key}'; allowed: {listed}")
    builder = _BUILDERS[name][0]
    try:
        sampler = builder(seed, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"sampler '{name}': {exc}") from None
    return TimedSampler(sampler) if timed else sampler
