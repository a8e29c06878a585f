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


def test_a_benchmark_study_gets_its_own_objective(config: StudyConfig, study: optuna.Study) -> None:
    """No objective given: the worker builds the study's (Branin), no data, no training."""
    from hpo import keys
    from hpo.benchmarks import Branin

    summary = run_worker(config, study, n_trials=3)
    assert summary.trials_run == 3 and summary.states == {"COMPLETE": 3}
    for t in study.trials:
        assert set(t.params) == {"x1", "x2"}
        assert t.value == Branin().evaluate(t.params)
        assert t.user_attrs[keys.PARAMS_FULL] == t.params
        assert t.user_attrs[keys.METRICS]["branin"] == t.value
        assert t.intermediate_values == {0: t.value}
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
