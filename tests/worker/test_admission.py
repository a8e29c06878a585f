"""Admission to the shared budget: run, wait or stop, exact under concurrency."""

from __future__ import annotations

import threading

import optuna
import pytest

from hpo.config import StudyConfig
from hpo.storage import open_storage
from hpo.studies import make_study
from hpo.worker import Verdict
from hpo.worker._admission import DONE, WAIT, claim_by_number, next_trial
from hpo.worker._liveness import StaleTrials

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")


@pytest.fixture
def shared(config: StudyConfig, storage_url: str) -> optuna.Study:
    """The study on each backend in turn (SQLite lock file, PostgreSQL advisory lock)."""
    return make_study(config, open_storage(storage_url, heartbeat=True))


def test_verdicts_follow_the_budget(shared: optuna.Study, storage_url: str) -> None:
    stale = StaleTrials()
    first = next_trial(shared, storage_url, 2, stale)
    second = next_trial(shared, storage_url, 2, stale)
    assert first.verdict is second.verdict is Verdict.RUN
    assert first.trial is not None and second.trial is not None
    assert next_trial(shared, storage_url, 2, stale) == WAIT  # both running elsewhere
    shared.tell(first.trial, 0.5)
    shared.tell(second.trial, state=optuna.trial.TrialState.PRUNED)
    assert next_trial(shared, storage_url, 2, stale) == DONE


def test_no_budget_always_runs(study: optuna.Study) -> None:
    for _ in range(3):
        assert next_trial(study, None, None, StaleTrials()).verdict is Verdict.RUN


def test_claim_by_number_gives_the_same_verdicts(study: optuna.Study) -> None:
    stale = StaleTrials()
    admitted = claim_by_number(study, 1, stale)
    assert admitted.verdict is Verdict.RUN and admitted.trial is not None
    assert claim_by_number(study, 1, stale) == WAIT
    study.tell(admitted.trial, 0.5)
    assert claim_by_number(study, 1, stale) == DONE


def test_concurrent_workers_claim_exactly_the_budget(
    shared: optuna.Study, storage_url: str
) -> None:
    workers, budget = 5, 2
    start = threading.Barrier(workers)
    verdicts: list[Verdict] = []

    def worker() -> None:
        study = optuna.load_study(
            study_name=shared.study_name, storage=open_storage(storage_url, heartbeat=True)
        )
        start.wait(30)
        verdicts.append(next_trial(study, storage_url, budget, StaleTrials()).verdict)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(v.value for v in verdicts) == ["run"] * budget + ["wait"] * (workers - budget)
    assert len(shared.trials) == budget
