"""Giving a failed trial's parameters a second chance, as a WAITING trial."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpo.storage._heartbeat import BEAT_ATTR

if TYPE_CHECKING:
    import optuna

# Counts of re-queues by cause, on the queued trial: {"lost": k, "interrupted": j}.
REQUEUES_ATTR = "hpo:requeues"


class RequeueFailedTrial:
    """Queue a failed trial's parameters again, as a WAITING trial.

    The heartbeat-stale callback of Optuna's ``RetryHeartbeatStaleTrialCallback``
    with the same ``failed_trial`` and ``retry_history`` system attrs (Optuna's
    helpers read them), with two differences: the queued trial starts clean (the
    failed attempt's ``fail_reason``, worker and host stay on that attempt), and
    ``max_retry`` counts only re-queues of one ``cause``, so a trial interrupted
    by Ctrl-C keeps its one retry for a worker that dies later.
    """

    def __init__(self, *, max_retry: int | None, cause: str) -> None:
        self.max_retry, self.cause = max_retry, cause

    def will_requeue(self, trial: optuna.trial.FrozenTrial) -> bool:
        used = int(trial.system_attrs.get(REQUEUES_ATTR, {}).get(self.cause, 0))
        return self.max_retry is None or used < self.max_retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        import optuna

        queued = "fixed_params" in trial.system_attrs  # enqueued by hand, not suggested yet
        if not (trial.params or queued) or not self.will_requeue(trial):
            return
        counts = dict(trial.system_attrs.get(REQUEUES_ATTR, {}))
        counts[self.cause] = int(counts.get(self.cause, 0)) + 1
        system_attrs = {k: v for k, v in trial.system_attrs.items() if k != BEAT_ATTR}
        system_attrs.update(
            failed_trial=trial.system_attrs.get("failed_trial", trial.number),
            retry_history=[*trial.system_attrs.get("retry_history", []), trial.number],
        )
        system_attrs[REQUEUES_ATTR] = counts
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                system_attrs=system_attrs,
            )
        )
