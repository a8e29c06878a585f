"""The fault test every executor passes: one worker killed mid-trial, the total still exact.

``run_fault_test`` waits for a trial that is running (it has reported a
step), kills its worker the engine's way, lets the engine finish, and
checks the study: exactly the budget finished, the killed trial failed and
run again with the same parameters, nothing left RUNNING or WAITING.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.results import FINISHED


@dataclass(frozen=True)
class FaultResult:
    victim: FrozenTrial  # the trial whose worker was killed, as it was while running
    retry: FrozenTrial  # the same parameters, run again
    trials: list[FrozenTrial]  # the whole study at the end


def wait_for_running(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    timeout: float = 60,
    where: Callable[[FrozenTrial], bool] = lambda t: True,
) -> FrozenTrial:
    """A RUNNING trial that has reported a step: its worker is past start-up, mid-trial."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:
            time.sleep(0.3)
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.intermediate_values and where(t):
                return t
        time.sleep(0.2)
    raise AssertionError(f"no trial of {study_name} was running within {timeout:g} s")


def check_exact(
    storage: optuna.storages.BaseStorage, study_name: str, budget: int, victim: FrozenTrial
) -> FaultResult:
    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states, "a trial was left RUNNING"
    assert TrialState.WAITING not in states, "a re-queued trial was never run"
    assert sum(t.state in FINISHED for t in trials) == budget, states
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL, killed.state
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1, f"re-queued {len(retries)} times"
    assert retries[0].params == victim.params
    assert retries[0].state in FINISHED, retries[0].state
    return FaultResult(victim, retries[0], trials)


def run_fault_test(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    budget: int,
    *,
    kill: Callable[[FrozenTrial], None],
    finish: Callable[[], object],
    timeout: float = 60,
) -> FaultResult:
    """Kill the worker of a running trial with ``kill``, let ``finish`` end the run, check."""
    victim = wait_for_running(storage, study_name, timeout)
    kill(victim)
    finish()
    return check_exact(storage, study_name, budget, victim)
