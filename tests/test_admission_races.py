"""hpo.worker._admission: the races the budget must survive, made to happen on purpose.

Behind the gRPC proxy there is no lock, so two workers can count the same
free place and both create a trial; the later trial number loses and is
failed as surplus before any training. The race is forced by a study whose
``ask`` lets another worker's trial be created first (the storage is real).
"""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from hpo.config import validate_config
from hpo.storage import open_storage
from hpo.studies import make_study
from hpo.worker import Verdict
from hpo.worker._admission import WAIT, claim_by_number, counts, next_trial
from hpo.worker._liveness import StaleTrials

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")


class Overtaken:
    """The study as one worker sees it, while another worker asks just before it."""

    def __init__(self, study: optuna.Study, queued: dict[str, Any] | None = None) -> None:
        self._study = study
        self._queued = queued
        self.other: optuna.Trial | None = None

    def ask(self, *args: Any, **kwargs: Any) -> optuna.Trial:
        self.other = self._study.ask()  # the other worker's trial, left RUNNING
        if self._queued is not None:  # re-queued parameters this worker's ask picks up
            self._study.enqueue_trial(self._queued)
        return self._study.ask(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


@pytest.fixture
def study(sqlite_url: str) -> optuna.Study:
    config = validate_config({"study": {"name": "races"}, "objective": {"benchmark": "branin"}})
    return make_study(config, open_storage(sqlite_url, heartbeat=True))


def states(study: optuna.Study) -> list[TrialState]:
    return [t.state for t in study.get_trials(deepcopy=False)]


def test_counts_finished_and_running_only(study: optuna.Study) -> None:
    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE):
        value = 1.0 if state == TrialState.COMPLETE else None
        study.add_trial(optuna.trial.create_trial(state=state, value=value))
    study.ask()
    study.ask()
    study.enqueue_trial({})
    assert counts(study) == (3, 2), "finished = complete + pruned; failed and waiting don't count"


def test_the_later_trial_of_a_race_is_failed_as_surplus(study: optuna.Study) -> None:
    raced = Overtaken(study)
    verdict = claim_by_number(raced, 1, StaleTrials())  # type: ignore[arg-type]
    assert verdict == WAIT
    assert raced.other is not None and raced.other.number == 0
    assert states(study) == [TrialState.RUNNING, TrialState.FAIL], "the winner keeps running"
    loser = study.trials[1]
    assert loser.user_attrs[keys.FAIL_REASON] == "surplus: the shared budget was already claimed"
    # Nothing was queued: the loser had no parameters of its own to keep.
    assert not study.get_trials(states=(TrialState.WAITING,))


def test_a_queued_trial_that_loses_the_race_is_queued_again(study: optuna.Study) -> None:
    raced = Overtaken(study, queued={"x": 0.25})
    assert claim_by_number(raced, 1, StaleTrials()) == WAIT  # type: ignore[arg-type]
    assert study.trials[1].system_attrs["fixed_params"] == {"x": 0.25}  # the loser
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1, "the queued parameters were lost with the surplus trial"
    assert waiting[0].system_attrs["fixed_params"] == {"x": 0.25}


def test_room_left_means_run_even_when_others_are_running(study: optuna.Study) -> None:
    study.add_trial(optuna.trial.create_trial(value=1.0))
    study.ask()  # running elsewhere
    admitted = claim_by_number(study, 3, StaleTrials())
    assert admitted.verdict is Verdict.RUN and admitted.trial is not None
    assert admitted.trial.number == 2
    assert claim_by_number(study, 3, StaleTrials()) == WAIT  # 1 done + 2 running = 3
    assert len(study.trials) == 3, "a full budget must not create (and fail) a trial"


def test_a_proxy_url_takes_the_lock_free_path(study: optuna.Study) -> None:
    """grpc:// has no database lock: next_trial must settle races by trial numbers."""
    raced = Overtaken(study)
    assert next_trial(raced, "grpc://proxy:13000", 1, StaleTrials()) == WAIT  # type: ignore[arg-type]
    assert states(study) == [TrialState.RUNNING, TrialState.FAIL]


def test_a_budget_without_a_url_is_still_honoured(study: optuna.Study) -> None:
    first = next_trial(study, None, 1, StaleTrials())
    assert first.verdict is Verdict.RUN and first.trial is not None
    assert next_trial(study, None, 1, StaleTrials()) == WAIT
    study.tell(first.trial, 0.5)
    assert next_trial(study, None, 1, StaleTrials()).verdict is Verdict.DONE
    assert len(study.trials) == 1


def test_failed_and_queued_trials_are_not_ahead_in_the_race(study: optuna.Study) -> None:
    """Only finished and running trials hold a place; a failed one before does not."""
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    admitted = claim_by_number(study, 1, StaleTrials())
    assert admitted.verdict is Verdict.RUN, "a failed trial took the budget's only place"


def test_a_requeued_surplus_trial_records_why(study: optuna.Study) -> None:
    raced = Overtaken(study, queued={"x": 0.5})
    assert claim_by_number(raced, 1, StaleTrials()) == WAIT  # type: ignore[arg-type]
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    assert waiting.system_attrs["hpo:requeues"] == {"surplus": 1}
    assert waiting.system_attrs["retry_history"] == [1]
