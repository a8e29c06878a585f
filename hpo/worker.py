"""A trial worker: one process that asks the study for trials until done.

``hpo run`` is one worker in the foreground. The worker loads and decodes
the dataset once, then runs ``study.optimize`` (which keeps the heartbeat
going). A trial that fails is recorded with its reason and the worker goes
on; several failures in a row mean something is wrong with the setup, so
the worker stops and says why instead of burning the budget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from hpo import attrs
from hpo.errors import FatalError, TrialFailedError

if TYPE_CHECKING:
    from hpo.config import StudyConfig
    from hpo.data import Dataset
    from hpo.objective import EpochListener

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 3
TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


@dataclass
class RunSummary:
    study_name: str
    trials_run: int = 0
    states: dict[str, int] = field(default_factory=dict)
    stopped_reason: str | None = None


class _FailureGuard:
    """Stops the study after ``limit`` failed trials in a row."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.streak = 0
        self.reasons: list[str] = []
        self.tripped = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            self.streak += 1
            self.reasons.append(str(trial.user_attrs.get(attrs.FAIL_REASON, "unknown error")))
            if self.streak >= self.limit:
                self.tripped = True
                study.stop()
        elif trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            self.streak = 0
            self.reasons.clear()


def load_data_for(study: optuna.Study, config: StudyConfig) -> Dataset:
    """Decode the dataset (once per process) and check it against the study."""
    from hpo.controller import record_fingerprint

    dataset = prepare_dataset(config)
    record_fingerprint(study, dataset.fingerprint())
    return dataset


def prepare_dataset(config: StudyConfig) -> Dataset:
    """Decode the dataset and check it can feed the search space's batches.

    Called before the study is created, so bad data changes nothing stored.
    """
    from hpo.data import load_dataset

    dataset = load_dataset(config.dataset)
    smallest_batch = _smallest(config)
    if smallest_batch > len(dataset.train):
        from hpo.errors import DataError

        raise DataError(
            f"dataset: {len(dataset.train)} training images are fewer than the smallest "
            f"batch_size {smallest_batch}; add images or lower batch_size"
        )
    return dataset


def _smallest(config: StudyConfig) -> int:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from hpo.space import SearchSpace

    space = SearchSpace.from_config(config)
    dist = space.distributions.get("batch_size")
    if isinstance(dist, CategoricalDistribution):
        return min(int(str(c)) for c in dist.choices)
    if isinstance(dist, IntDistribution):
        return int(dist.low)
    return int(space.fixed["batch_size"])


def run_worker(
    config: StudyConfig,
    study: optuna.Study,
    *,
    n_trials: int | None,
    timeout: float | None = None,
    worker: str | None = None,
    on_epoch: EpochListener | None = None,
    callbacks: Sequence[TrialCallback] = (),
    max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES,
) -> RunSummary:
    """Run trials of ``study`` in this process until the budget or timeout."""
    from hpo.training import configure_tensorflow, device_name

    configure_tensorflow()  # first, so TensorFlow's start-up notices stay quiet
    from hpo.objective import Objective

    dataset = load_data_for(study, config)
    objective = Objective(config, dataset, worker=worker, device=device_name(), on_epoch=on_epoch)
    guard = _FailureGuard(max_consecutive_failures)
    before = {t.number for t in study.get_trials(deepcopy=False)}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout,
        catch=(TrialFailedError,),
        callbacks=[guard, *callbacks],
        gc_after_trial=False,
    )
    summary = RunSummary(study.study_name)
    for t in study.get_trials(deepcopy=False):
        if t.number not in before:
            summary.trials_run += 1
            summary.states[t.state.name] = summary.states.get(t.state.name, 0) + 1
    if guard.tripped:
        last = guard.reasons[-1] if guard.reasons else "unknown"
        raise FatalError(
            f"stopped after {guard.streak} failed trials in a row; last reason: {last}"
        )
    return summary
