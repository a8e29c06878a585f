"""The controller side of ``hpo launch``: start, watch and restart worker processes.

Each worker is an ``hpo worker`` process pinned to one slot (a GPU, or a CPU
share). Workers share the study's trial budget through the database, so the
launcher only keeps them alive: a worker that dies or hangs is replaced (a
bounded number of times per slot), and Ctrl-C (or SIGTERM) stops every worker
cleanly, their running trials failed and queued again. Nothing here imports
TensorFlow; the live table (``hpo.console._workers_table``) is read from the
database like any report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from optuna.trial import TrialState

from hpo import keys
from hpo.console import WorkerRow, WorkersTable
from hpo.errors import FatalError, HpoError
from hpo.gpus import cpu_threads_for
from hpo.results import finished_count
from hpo.storage import RequeueFailedTrial, retrying
from hpo.storage import optuna_private as private
from hpo.worker._exit_codes import HUNG_EXIT_CODE, RECYCLE_EXIT_CODE, USER_ERROR_EXIT_CODE

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from hpo.config import StudyConfig
    from hpo.gpus import Slot

MAX_RESTARTS = 3
STOP_GRACE = 30.0  # seconds a worker gets to fail and re-queue its trial after SIGTERM


@dataclass
class _Worker:
    slot: Slot
    proc: subprocess.Popen[str] | None = None
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


def worker_env(
    slot: Slot, cpu_threads: int | None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a worker process: the slot's pinning over ours."""
    return {
        **(os.environ if base is None else base),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        **slot.env(cpu_threads),
    }


def worker_command(
    study_file: Path, storage_url: str, budget: int, name: str, per_process: int | None
) -> list[str]:
    """``hpo worker``, exactly as a user on another host would run it."""
    command = [
        sys.executable,
        "-m",
        "hpo",
        "worker",
        str(study_file),
        "--storage",
        storage_url,
        "--trials",
        str(budget),
        "--worker-name",
        name,
    ]
    if per_process:
        command += ["--max-trials-per-process", str(per_process)]
    return command


def launch_study(
    config: StudyConfig,
    study: optuna.Study,
    *,
    storage_url: str,
    slots: list[Slot],
    budget: int,
    console: Console | None = None,
    quiet: bool = False,
    max_restarts: int = MAX_RESTARTS,
    poll: float = 1.0,
    per_process: int | None = None,
) -> dict[str, Any]:
    """Run ``slots`` workers until the study has ``budget`` finished trials."""
    cpu_slots = sum(1 for s in slots if s.gpu is None)
    threads = cpu_threads_for(cpu_slots) if cpu_slots else None
    with tempfile.TemporaryDirectory(prefix="hpo-launch-") as tmp:
        study_file = Path(tmp) / "study.yaml"
        study_file.write_text(yaml.safe_dump(config.to_dict()), encoding="utf-8")
        workers = [_Worker(slot) for slot in slots]

        def start(w: _Worker) -> None:
            w.log_path = Path(tmp) / f"{w.slot.name}.{w.restarts}.{w.recycled}.log"
            log = open(w.log_path, "w", encoding="utf-8")  # noqa: SIM115 - owned by the child
            w.proc = subprocess.Popen(
                worker_command(study_file, storage_url, budget, w.slot.name, per_process),
                env=worker_env(w.slot, threads),
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
                start_new_session=True,  # Ctrl-C reaches the launcher only; it stops them
            )
            log.close()

        def finished() -> int:
            return retrying(lambda: finished_count(study), "count")

        with _sigterm_as_interrupt():
            try:
                for w in workers:
                    start(w)
                live = WorkersTable(
                    study, lambda: [w.row() for w in workers], budget, console, quiet
                )
                with live:
                    while True:
                        for w in workers:
                            if w.proc is None or w.proc.poll() is None:
                                continue
                            code = w.proc.returncode
                            w.exit_codes.append(code)
                            w.last_error = _last_line(w.log_path)
                            w.proc = None
                            if code == 0 or finished() >= budget:
                                continue
                            if code == RECYCLE_EXIT_CODE:
                                w.recycled += 1
                                start(w)  # a planned fresh process, not a failure
                                continue
                            if code == USER_ERROR_EXIT_CODE:
                                raise HpoError(f"worker {w.slot.name}: {w.last_error}")
                            if w.restarts < max_restarts:
                                w.restarts += 1
                                start(w)  # killed, crashed or hung: a replacement
                        live.refresh()
                        if all(w.proc is None for w in workers):
                            break
                        time.sleep(poll)
            except BaseException as exc:
                stopped = _stop_all(study, workers)
                if isinstance(exc, KeyboardInterrupt) and console is not None:
                    console.print(
                        f"interrupted: {len(workers)} worker(s) stopped; "
                        + (
                            f"trial(s) {', '.join(map(str, stopped))} failed and re-queued"
                            if stopped
                            else "no trial was running"
                        )
                    )
                raise
    done = finished()
    summary = {
        "finished": done,
        "budget": budget,
        "restarts": {w.slot.name: w.restarts for w in workers},
        "recycled": {w.slot.name: w.recycled for w in workers},
        "exit_codes": {w.slot.name: w.exit_codes for w in workers},
    }
    if done < budget:
        reasons = "; ".join(
            f"{w.slot.name}: {_exit_text(w)}" for w in workers if w.exit_codes or w.last_error
        )
        raise FatalError(
            f"workers stopped with {done} of {budget} trials finished "
            f"(restarts used up); {reasons or 'no error recorded'}"
        )
    return summary


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
    """SIGTERM to the launcher (a scheduler's stop) does what Ctrl-C does."""
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


def _stop_all(study: optuna.Study, workers: list[_Worker], grace: float = STOP_GRACE) -> list[int]:
    """Stop every worker; return the numbers of the trials that were running.

    SIGTERM makes each worker fail its running trial and queue it again. A
    worker stuck inside one TensorFlow operation cannot act on it; after the
    grace period (or a second Ctrl-C) it is killed and the launcher fails and
    re-queues its trial itself, so no trial is left RUNNING.
    """
    live = [w for w in workers if w.proc is not None and w.proc.poll() is None]
    ours = {w.proc.pid for w in live if w.proc is not None}
    running_before = _running_trials(study, ours)
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
            killed.add(w.proc.pid)
    if killed:
        _fail_trials_of(study, killed)
    return sorted(t.number for t in running_before)


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
