"""The worker loop: budgets, and leaving the process's Optuna settings as it found them."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import optuna
import pytest

from hpo.config import StudyConfig
from hpo.results import finished_count
from hpo.worker import run_worker
from tests.worker.conftest import quick


@pytest.fixture
def info_level() -> Iterator[None]:
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    yield
    optuna.logging.set_verbosity(before)


def test_optuna_logging_and_warnings_are_restored_on_return(
    config: StudyConfig, study: optuna.Study, info_level: None
) -> None:
    filters = list(warnings.filters)
    seen: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        seen.append(optuna.logging.get_verbosity())
        return quick(trial)

    summary = run_worker(config, study, n_trials=2, objective=objective)
    assert summary.trials_run == 2
    assert seen == [optuna.logging.WARNING] * 2  # quiet while the worker runs
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
    assert warnings.filters == filters


def test_optuna_logging_and_warnings_are_restored_on_raise(
    config: StudyConfig, study: optuna.Study, info_level: None
) -> None:
    filters = list(warnings.filters)

    def broken(trial: optuna.Trial) -> float:
        raise RuntimeError("a bug in the objective")

    with pytest.raises(RuntimeError, match="a bug"):
        run_worker(config, study, n_trials=1, objective=broken)
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
    assert warnings.filters == filters
    assert study.trials[0].state == optuna.trial.TrialState.FAIL


def test_a_shared_budget_stops_the_worker(
    config: StudyConfig, study: optuna.Study, sqlite_url: str
) -> None:
    summary = run_worker(
        config, study, n_trials=None, budget=3, storage_url=sqlite_url, objective=quick
    )
    assert summary.trials_run == 3
    assert finished_count(study) == 3
