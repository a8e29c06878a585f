"""The search space: study-file entries as Optuna distributions.

Entries given as a mapping (``type: float|int|categorical``) are searched;
entries given as a plain value are fixed. Hyperparameters the file leaves
out take ``hpo.hyperparameters.DEFAULTS``, so a trial always gets a full set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpo import hyperparameters
from hpo.config import ParamSpec

if TYPE_CHECKING:
    import optuna

    from hpo.config import StudyConfig


def to_distribution(spec: ParamSpec) -> BaseDistribution:
    if spec.type == "categorical":
        assert spec.choices is not None
        return CategoricalDistribution(tuple(spec.choices))
    assert spec.low is not None and spec.high is not None
    if spec.type == "int":
        return IntDistribution(
            int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1)
        )
    return FloatDistribution(
        float(spec.low),
        float(spec.high),
        log=spec.log,
        step=None if spec.step is None else float(spec.step),
    )


def _suggest(trial: optuna.trial.BaseTrial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


@dataclass(frozen=True)
class SearchSpace:
    """Searched distributions plus the fixed values of every other hyperparameter."""

    distributions: dict[str, BaseDistribution]
    fixed: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: StudyConfig) -> SearchSpace:
        return cls.from_entries(config.search_space)

    @classmethod
    def from_entries(cls, entries: Mapping[str, Any]) -> SearchSpace:
        dists: dict[str, BaseDistribution] = {}
        fixed = dict(hyperparameters.DEFAULTS)
        for name, entry in entries.items():
            if isinstance(entry, ParamSpec):
                dist = to_distribution(entry)
                if isinstance(dist, CategoricalDistribution):
                    hyperparameters.check_searched(name, entry.type, tuple(dist.choices))
                else:
                    assert isinstance(dist, (FloatDistribution, IntDistribution))
                    hyperparameters.check_searched(name, entry.type, (dist.low, dist.high))
                dists[name] = dist
                fixed.pop(name, None)
            else:
                hyperparameters.check_value(name, entry)
                fixed[name] = entry
        return cls(dists, fixed)

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Ask the trial for every searched value; return the full parameter set."""
        params = dict(self.fixed)
        for name, dist in self.distributions.items():
            params[name] = _suggest(trial, name, dist)
        return params

    def complete(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A stored trial's params plus the fixed values: what the trainer used."""
        full = dict(self.fixed)
        full.update(params)
        return full

    def describe(self) -> dict[str, str]:
        """Human-readable lines for each hyperparameter, for summaries."""
        out: dict[str, str] = {}
        for name, dist in self.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                out[name] = "one of " + ", ".join(repr(c) for c in dist.choices)
            else:
                assert isinstance(dist, (FloatDistribution, IntDistribution))
                scale = " (log)" if dist.log else ""
                step = f" step {dist.step}" if dist.step not in (None, 1) else ""
                out[name] = f"{dist.low} .. {dist.high}{scale}{step}"
        for name, value in self.fixed.items():
            out[name] = f"fixed {value!r}"
        return out
