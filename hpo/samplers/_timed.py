"""A delegating sampler that stores how long sampling took for each trial."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from optuna.samplers import BaseSampler

from hpo import keys
from hpo.storage import optuna_private as private

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial, TrialState


class TimedSampler(BaseSampler):
    """Wraps a sampler and writes ``suggest_seconds`` on each trial.

    The time covers search-space inference and relative and independent
    sampling, the parts a sampler choice changes; reports compare samplers
    on it from the database alone.
    """

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner
        self._seconds: dict[int, float] = {}

    def __getattr__(self, name: str) -> Any:  # e.g. TPESampler internals some code inspects
        return getattr(self.__dict__["inner"], name)

    def _add(self, trial: FrozenTrial, start: float) -> None:
        key = private.trial_id(trial)
        self._seconds[key] = self._seconds.get(key, 0.0) + (time.perf_counter() - start)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        start = time.perf_counter()
        self.inner.before_trial(study, trial)
        self._add(trial, start)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        start = time.perf_counter()
        try:
            return self.inner.infer_relative_search_space(study, trial)
        finally:
            self._add(trial, start)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            return self.inner.sample_relative(study, trial, search_space)
        finally:
            self._add(trial, start)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        start = time.perf_counter()
        try:
            return self.inner.sample_independent(study, trial, param_name, param_distribution)
        finally:
            self._add(trial, start)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        seconds = self._seconds.pop(private.trial_id(trial), None)
        if seconds is not None:
            # The trial is still RUNNING here, so its attributes can be written.
            private.set_user_attr(study, trial, keys.SUGGEST_SECONDS, round(seconds, 6))
        self.inner.after_trial(study, trial, state, values)
