"""The benchmark trial objective in a real study: duration, steps, pruning, time limit."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from hpo.benchmarks import BenchmarkObjective, get_problem, steps_for
from hpo.errors import TrialFailedError
from hpo.events import EpochEvent


@pytest.fixture
def study(sqlite_url: str) -> optuna.Study:
    return optuna.create_study(storage=sqlite_url, direction="minimize")


def test_steps_split_the_duration() -> None:
    assert [steps_for(s) for s in (0.0, 0.2, 1.0, 2.0, 3.0, 60.0)] == [1, 2, 2, 4, 6, 10]


def test_a_trial_lasts_its_seconds_and_reports_each_step(study: optuna.Study) -> None:
    events: list[EpochEvent] = []
    objective = BenchmarkObjective(
        get_problem("branin"), seconds=1.0, worker="w", on_epoch=events.append
    )
    trial = study.ask()
    started = time.monotonic()
    value = objective(trial)
    assert time.monotonic() - started >= 1.0
    study.tell(trial, value)
    done = study.trials[0]
    assert value == get_problem("branin").evaluate(done.params)
    assert done.intermediate_values == {0: value, 1: value}
    assert [(e.epoch, e.total_epochs, e.f1) for e in events] == [(0, 2, value), (1, 2, value)]
    attrs = done.user_attrs
    assert attrs[keys.WORKER] == "w" and attrs[keys.DEVICE] == "cpu" and attrs[keys.EPOCHS] == 2
    assert attrs[keys.TRAIN_SECONDS] >= 1.0
    assert attrs[keys.METRICS] == {"branin": value, "regret": value - 5 / (4 * 3.141592653589793)}
    assert attrs[keys.PARAMS_FULL] == done.params


def test_a_pruner_stops_a_trial_at_a_step(sqlite_url: str) -> None:
    pruner = optuna.pruners.ThresholdPruner(upper=0.0)  # Branin is never below 0.39
    study = optuna.create_study(storage=sqlite_url, direction="minimize", pruner=pruner)
    objective = BenchmarkObjective(get_problem("branin"), seconds=0.2)
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="pruned at step 0"):
        objective(trial)
    study.tell(trial, state=TrialState.PRUNED)
    assert study.trials[0].user_attrs[keys.EPOCHS] == 1


def test_a_trial_past_its_time_limit_fails_with_the_reason(study: optuna.Study) -> None:
    objective = BenchmarkObjective(get_problem("hartmann6"), seconds=2.0, trial_timeout=0.2)
    trial = study.ask()
    started = time.monotonic()
    with pytest.raises(TrialFailedError, match=r"training\.trial_timeout of 0\.2 s after 1 step"):
        objective(trial)
    assert time.monotonic() - started < 1.5  # stopped at the first step, not at the end
    study.tell(trial, state=TrialState.FAIL)
    assert "trial_timeout" in study.trials[0].user_attrs[keys.FAIL_REASON]
