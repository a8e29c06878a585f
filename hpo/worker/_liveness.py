"""Telling a live worker from a dead or hung one.

A worker beats for its RUNNING trial (``Heartbeat``); every worker, before it
asks for a trial, fails and re-queues trials whose beats stopped
(``StaleTrials``); and a trial stuck inside one operation ends its own
process (``HangWatchdog``) so a launcher starts a fresh one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from hpo import keys
from hpo.storage import BEAT_ATTR, RequeueFailedTrial, heartbeat_settings
from hpo.storage import optuna_private as private
from hpo.worker._exit_codes import HUNG_EXIT_CODE

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)


def hang_margin() -> float:
    """Seconds a trial may run past ``training.trial_timeout`` (``HPO_HANG_MARGIN``, now)."""
    return float(os.environ.get("HPO_HANG_MARGIN", "60"))


class Heartbeat:
    """Beats for one RUNNING trial, so others can tell a live worker from a dead one.

    ``study.optimize`` beats only inside itself; this loop creates trials under
    the budget lock, so it beats itself: into Optuna's heartbeat table where
    the storage has one, else (behind the gRPC proxy) by changing a trial
    system attr that ``StaleTrials`` watches.
    """

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        self.study, self.trial = study, trial
        self.stop = threading.Event()
        storage = private.storage_of(study)
        self.native = private.heartbeat_enabled(storage)
        fallback = heartbeat_settings().interval
        self.interval = float(private.heartbeat_interval(storage) or fallback)
        self.beats = 0
        self.thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        with contextlib.suppress(Exception):  # a database blip: the thread beats again
            self._beat()
        self.thread = threading.Thread(target=self._run, daemon=True, name="hpo-heartbeat")
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a database blip: beat again next time
                self._beat()

    def _beat(self) -> None:
        self.beats += 1
        if self.native:
            private.record_heartbeat(self.study, self.trial)
        else:
            beat = f"{socket.gethostname()}:{os.getpid()}:{self.beats}"
            private.set_system_attr(self.study, self.trial, BEAT_ATTR, beat)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)


class StaleTrials:
    """Fails RUNNING trials whose worker stopped beating, and queues them once more.

    Optuna's ``fail_stale_trials`` does the same but leaves no reason on the
    trial; here the reason is stored first. With Optuna's heartbeat table the
    storage names the stale trials; behind the gRPC proxy a trial is stale
    when its beat attr has not changed for the grace period of this process's
    own clock, so hosts' clocks never need to agree.
    """

    def __init__(self) -> None:
        self.seen: dict[int, tuple[object, float]] = {}  # trial number -> (beat, first seen)

    def __call__(self, study: optuna.Study) -> list[int]:
        """Fail and re-queue the stale trials; return their numbers."""
        grace = heartbeat_settings().grace_period
        if private.heartbeat_enabled(private.storage_of(study)):
            stale = private.stale_trials(study)
        else:
            stale = self._watch(study, grace)
        requeue = RequeueFailedTrial(max_retry=1, cause="lost")
        failed = []
        for frozen in stale:
            again = "re-queued once" if requeue.will_requeue(frozen) else "not re-queued again"
            reason = f"worker lost: no heartbeat for {grace} s; {again}"
            try:
                private.set_user_attr(study, frozen, keys.FAIL_REASON, reason)
                if not private.mark_failed(study, frozen):
                    continue
            except (optuna.exceptions.UpdateFinishedTrialError, KeyError, RuntimeError):
                continue  # another worker failed it first
            log.warning("trial %d: %s", frozen.number, reason)
            requeue(study, private.reload_trial(study, frozen))
            failed.append(frozen.number)
        return failed

    def _watch(self, study: optuna.Study, grace: float) -> list[FrozenTrial]:
        now = time.monotonic()
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        stale = []
        for t in running:
            beat = t.system_attrs.get(BEAT_ATTR)
            last = self.seen.get(t.number)
            if last is None or last[0] != beat:
                self.seen[t.number] = (beat, now)
            elif now - last[1] > grace:
                stale.append(t)
        alive = {t.number for t in running}
        for number in [n for n in self.seen if n not in alive]:
            del self.seen[number]
        return stale


class HangWatchdog:
    """Ends the process if a trial hangs past its time limit plus a margin.

    Training checks the limit after every batch; this catches a trial stuck
    inside one operation, where no Python code runs. The trial is recorded as
    failed first, then the process exits with ``HUNG_EXIT_CODE`` so a launcher
    starts a fresh worker.
    """

    def __init__(self, study: optuna.Study, trial: optuna.Trial, limit: float | None) -> None:
        self.study, self.trial, self.limit = study, trial, limit
        self.margin = hang_margin()
        self.timer: threading.Timer | None = None

    def __enter__(self) -> HangWatchdog:
        if self.limit:
            self.timer = threading.Timer(self.limit + self.margin, self._fire)
            self.timer.daemon = True
            self.timer.start()
        return self

    def _fire(self) -> None:
        reason = (
            f"hung past training.trial_timeout of {self.limit:g} s "
            f"(+{self.margin:g} s margin); its worker process was ended"
        )
        with contextlib.suppress(Exception):
            self.trial.set_user_attr(keys.FAIL_REASON, reason)
            self.study.tell(self.trial, state=TrialState.FAIL)
        log.error("trial %d %s", self.trial.number, reason)
        os._exit(HUNG_EXIT_CODE)

    def __exit__(self, *exc: object) -> None:
        if self.timer is not None:
            self.timer.cancel()
