"""Keep worker processes alive until the study reaches its budget.

The supervisor starts one ``hpo worker`` per slot through a *spawner* (a
local process, or a Ray task running one) and watches them: a worker that
dies or hangs is replaced (a bounded number of times per slot), one that
reached its per-process quota is started afresh, and Ctrl-C (or SIGTERM)
stops every worker cleanly, their running trials failed and queued again.
Workers share the study's budget through the database, so the supervisor
never counts trials to decide anything but when to stop replacing workers.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from optuna.trial import TrialState

from hpo import keys
from hpo.console import WorkerRow, WorkersTable
from hpo.errors import FatalError, HpoError
from hpo.executors._base import MAX_RESTARTS, STUDY_FILE_NAME, Plan, study_yaml
from hpo.results import finished_count
from hpo.storage import RequeueFailedTrial, retrying
from hpo.storage import optuna_private as private
from hpo.worker._exit_codes import HUNG_EXIT_CODE, RECYCLE_EXIT_CODE, USER_ERROR_EXIT_CODE

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from hpo.gpus import Slot

STOP_GRACE = 30.0  # seconds a worker gets to fail and re-queue its trial after SIGTERM


class WorkerProcess(Protocol):
    """The part of ``subprocess.Popen`` the supervisor uses; a Ray task offers it too."""

    @property
    def pid(self) -> int | None: ...  # None where the process runs on another host

    @property
    def returncode(self) -> int | Any: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@dataclass(frozen=True)
class WorkerStart:
    """One worker process to start: ``hpo worker STUDY_FILE *args`` with ``env``."""

    slot: Slot
    args: list[str]
    env: dict[str, str]  # set over the environment of the host the worker runs on
    study_file: Path
    log_path: Path  # its stderr, whose last line explains an exit


Spawner = Callable[[WorkerStart], WorkerProcess]


@dataclass
class _Worker:
    slot: Slot
    proc: WorkerProcess | None = None
    restarts: int = 0
    recycled: int = 0
    exit_codes: list[int] = field(default_factory=list)
    last_error: str = ""
    log_path: Path | None = None

    def row(self) -> WorkerRow:
        """What the live table shows of this slot."""
        ended = None
        if self.proc is None:
            ended = _exit_text(self).split(" (")[0] if self.exit_codes else "exited"
        return WorkerRow(
            slot=self.slot.name,
            device=self.slot.label or (self.slot.gpu if self.slot.gpu is not None else "cpu"),
            pid=self.proc.pid if self.proc is not None else None,
            ended=ended,
            restarts=self.restarts,
        )


class Supervisor:
    """Start, watch, replace and stop the workers of one study's slots."""

    def __init__(
        self,
        plan: Plan,
        study: optuna.Study,
        slots: list[Slot],
        spawn: Spawner,
        *,
        slot_env: Callable[[Slot], dict[str, str]] = lambda slot: {},
        console: Console | None = None,
        quiet: bool = False,
        max_restarts: int = MAX_RESTARTS,
        poll: float = 1.0,
    ) -> None:
        self.plan, self.study, self.spawn, self.slot_env = plan, study, spawn, slot_env
        self.console, self.quiet = console, quiet
        self.max_restarts, self.poll = max_restarts, poll
        self.workers = [_Worker(slot) for slot in slots]
        self._tmp = tempfile.TemporaryDirectory(prefix="hpo-launch-")
        self.study_file = Path(self._tmp.name) / STUDY_FILE_NAME
        self.study_file.write_text(study_yaml(plan.config), encoding="utf-8")

    def start(self) -> None:
        """Start every slot's worker; if one cannot start, stop those already started."""
        try:
            for w in self.workers:
                self._start(w)
        except BaseException:
            self.stop()
            self._tmp.cleanup()
            raise

    def _start(self, w: _Worker) -> None:
        w.log_path = Path(self._tmp.name) / f"{w.slot.name}.{w.restarts}.{w.recycled}.log"
        w.proc = self.spawn(
            WorkerStart(
                slot=w.slot,
                args=self.plan.worker_args(w.slot.name),
                env={**self.plan.worker_env(), **self.slot_env(w.slot)},
                study_file=self.study_file,
                log_path=w.log_path,
            )
        )

    def finished(self) -> int:
        return retrying(lambda: finished_count(self.study), "count")

    def watch(self) -> dict[str, Any]:
        """Replace workers as needed until all have ended; Ctrl-C stops them all."""
        budget = self.plan.budget
        try:
            with _sigterm_as_interrupt():
                try:
                    live = WorkersTable(
                        self.study,
                        lambda: [w.row() for w in self.workers],
                        budget,
                        self.console,
                        self.quiet,
                    )
                    with live:
                        while True:
                            for w in self.workers:
                                self._check(w, budget)
                            live.refresh()
                            if all(w.proc is None for w in self.workers):
                                break
                            time.sleep(self.poll)
                except BaseException as exc:
                    stopped = self.stop()
                    if isinstance(exc, KeyboardInterrupt) and self.console is not None:
                        self.console.print(
                            f"interrupted: {len(self.workers)} worker(s) stopped; "
                            + (
                                f"trial(s) {', '.join(map(str, stopped))} failed and re-queued"
                                if stopped
                                else "no trial was running"
                            )
                        )
                    raise
            return self._summary(budget)
        finally:
            self._tmp.cleanup()

    def _check(self, w: _Worker, budget: int) -> None:
        """Act on one worker's exit: nothing, a fresh process, a replacement or a stop."""
        if w.proc is None or w.proc.poll() is None:
            return
        code = int(w.proc.returncode)
        w.exit_codes.append(code)
        w.last_error = _last_line(w.log_path)
        w.proc = None
        if code == 0 or self.finished() >= budget:
            return
        if code == RECYCLE_EXIT_CODE:
            w.recycled += 1
            self._start(w)  # a planned fresh process, not a failure
            return
        if code == USER_ERROR_EXIT_CODE:
            raise HpoError(f"worker {w.slot.name}: {w.last_error}")
        if w.restarts < self.max_restarts:
            w.restarts += 1
            self._start(w)  # killed, crashed or hung: a replacement

    def _summary(self, budget: int) -> dict[str, Any]:
        done = self.finished()
        summary = {
            "finished": done,
            "budget": budget,
            "restarts": {w.slot.name: w.restarts for w in self.workers},
            "recycled": {w.slot.name: w.recycled for w in self.workers},
            "exit_codes": {w.slot.name: w.exit_codes for w in self.workers},
        }
        if done < budget:
            reasons = "; ".join(
                f"{w.slot.name}: {_exit_text(w)}"
                for w in self.workers
                if w.exit_codes or w.last_error
            )
            raise FatalError(
                f"workers stopped with {done} of {budget} trials finished "
                f"(restarts used up); {reasons or 'no error recorded'}"
            )
        return summary

    def stop(self, grace: float = STOP_GRACE) -> list[int]:
        """Stop every worker; return the numbers of the trials that were running.

        SIGTERM makes each worker fail its running trial and queue it again. A
        worker stuck inside one TensorFlow operation cannot act on it; after the
        grace period (or a second Ctrl-C) it is killed and the supervisor fails
        and re-queues its trial itself, so no trial is left RUNNING.
        """
        live = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
        ours = {w.proc.pid for w in live if w.proc is not None and w.proc.pid is not None}
        running_before = _running_trials(self.study, ours)
        for w in live:
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        killed: set[int] = set()
        for w in live:
            assert w.proc is not None
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                deadline = time.monotonic()  # a second Ctrl-C: no more waiting for anyone
                w.proc.kill()
                w.proc.wait()
                if w.proc.pid is not None:
                    killed.add(w.proc.pid)
        if killed:
            _fail_trials_of(self.study, killed)
        return sorted(t.number for t in running_before)


def _exit_text(w: _Worker) -> str:
    code = w.exit_codes[-1] if w.exit_codes else None
    if code == HUNG_EXIT_CODE:
        what = "hung past training.trial_timeout"
    elif code is not None and code < 0:
        what = f"killed by {signal.Signals(-code).name}"
    else:
        what = f"exit code {code}"
    return f"{what}{f' ({w.last_error})' if w.last_error else ''}"


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM to the supervisor (a scheduler's stop) does what Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _running_trials(study: optuna.Study, pids: set[int]) -> list[optuna.trial.FrozenTrial]:
    """The RUNNING trials of this host's worker processes ``pids``."""
    host = socket.gethostname()
    with contextlib.suppress(Exception):  # the database is away: report nothing
        return [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get(keys.PID) in pids and t.user_attrs.get(keys.HOST) == host
        ]
    return []


def _fail_trials_of(study: optuna.Study, pids: set[int]) -> None:
    """Fail and re-queue the RUNNING trials of workers that had to be killed."""
    requeue = RequeueFailedTrial(max_retry=None, cause="interrupted")
    reason = f"interrupted; worker did not stop within {STOP_GRACE:g} s and was killed"
    for t in _running_trials(study, pids):
        with contextlib.suppress(Exception):
            private.set_user_attr(study, t, keys.FAIL_REASON, reason)
            if private.mark_failed(study, t):
                requeue(study, private.reload_trial(study, t))


def _last_line(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""
