"""Admission: may this worker start one more trial of the shared budget?

Workers on many hosts share one exact trial budget. Counting finished and
running trials and creating the next trial happen under the study's budget
lock in the database; behind the gRPC proxy, where no lock exists, trial
numbers settle races instead (``claim_by_number``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from hpo import keys
from hpo.results import FINISHED
from hpo.storage import RequeueFailedTrial, budget_lock, retrying
from hpo.storage import optuna_private as private

if TYPE_CHECKING:
    import optuna

    from hpo.worker._liveness import StaleTrials


class Verdict(enum.Enum):
    RUN = "run"  # a trial was created for this worker
    WAIT = "wait"  # only trials running elsewhere stand between the study and its budget
    DONE = "done"  # the budget is used up: stop


@dataclass(frozen=True)
class Admission:
    """The answer to "next trial?": a trial to run, or why there is none."""

    verdict: Verdict
    trial: optuna.Trial | None = None

    @classmethod
    def run(cls, trial: optuna.Trial) -> Admission:
        return cls(Verdict.RUN, trial)


WAIT = Admission(Verdict.WAIT)
DONE = Admission(Verdict.DONE)


def next_trial(
    study: optuna.Study, storage_url: str | None, budget: int | None, stale: StaleTrials
) -> Admission:
    """The next trial, ``DONE`` when the budget is used up, or ``WAIT`` when only
    trials running elsewhere stand between the study and its budget (one of
    them may belong to a dead worker and come back to the queue)."""

    def create() -> Admission:
        stale(study)
        if budget is not None:
            done, running = counts(study)
            if done >= budget:
                return DONE
            if done + running >= budget:
                return WAIT
        return Admission.run(study.ask())

    if budget is None or storage_url is None:
        return retrying(create, "ask")
    if storage_url.startswith("grpc://"):
        return retrying(lambda: claim_by_number(study, budget, stale), "ask")

    def locked() -> Admission:
        with budget_lock(storage_url, study.study_name):
            return create()

    return retrying(locked, "ask")


def counts(study: optuna.Study) -> tuple[int, int]:
    """Finished (complete or pruned) and running trials, from one read."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    return len(trials) - running, running


def claim_by_number(study: optuna.Study, budget: int, stale: StaleTrials) -> Admission:
    """The budget without a lock (behind the gRPC proxy): trial numbers decide.

    The storage numbers trials atomically, so a new trial proceeds only if
    fewer than ``budget`` finished or running trials precede it; otherwise it
    is marked failed as surplus at once, before any training. Counting first
    keeps surplus trials to real races (workers asking at the same moment).
    """
    stale(study)
    done, running = counts(study)
    if done >= budget:
        return DONE
    if done + running >= budget:
        return WAIT
    trial = study.ask()
    ahead = [
        t
        for t in study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        if t.number < trial.number
    ]
    if len(ahead) < budget:
        return Admission.run(trial)
    trial.set_user_attr(keys.FAIL_REASON, "surplus: the shared budget was already claimed")
    study.tell(trial, state=TrialState.FAIL)
    frozen = private.reload_trial(study, trial)
    if "failed_trial" in frozen.system_attrs or "fixed_params" in frozen.system_attrs:
        # A queued trial lost the race: queue it again rather than drop its parameters.
        RequeueFailedTrial(max_retry=None, cause="surplus")(study, frozen)
    return WAIT
