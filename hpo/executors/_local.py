"""Workers on this host: one ``hpo worker`` process per GPU slot (or CPU share).

Each process is pinned to its slot with ``CUDA_VISIBLE_DEVICES`` and gets
the storage URL in its environment. The supervisor replaces a worker that
dies, so a killed trial is failed by the heartbeat and run again.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from hpo.executors._base import Executor, Launch, Plan
from hpo.executors._supervisor import Supervisor, WorkerStart
from hpo.gpus import cpu_threads_for

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from hpo.gpus import Slot


def worker_command(study_file: os.PathLike[str] | str, args: list[str]) -> list[str]:
    """``hpo worker``, exactly as a user on another host would run it."""
    return [sys.executable, "-m", "hpo", "worker", str(study_file), *args]


def spawn_local(start: WorkerStart) -> subprocess.Popen[str]:
    """A worker process on this host, in its own session so Ctrl-C reaches the supervisor only."""
    with open(start.log_path, "w", encoding="utf-8") as log:
        return subprocess.Popen(
            worker_command(start.study_file, start.args),
            env={**os.environ, **start.env},
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
            start_new_session=True,
        )


class LocalExecutor(Executor):
    """This host's GPU slots (or CPU shares), supervised by this process."""

    engine: ClassVar[str] = "local"

    def __init__(
        self,
        plan: Plan,
        study: optuna.Study,
        slots: list[Slot],
        *,
        console: Console | None = None,
        quiet: bool = False,
        max_restarts: int | None = None,
        poll: float = 1.0,
    ) -> None:
        super().__init__(plan)
        cpu_slots = sum(1 for s in slots if s.gpu is None)
        threads = cpu_threads_for(cpu_slots) if cpu_slots else None
        extra: dict[str, Any] = {} if max_restarts is None else {"max_restarts": max_restarts}
        self.supervisor = Supervisor(
            plan,
            study,
            slots,
            spawn_local,
            slot_env=lambda slot: slot.env(threads),
            console=console,
            quiet=quiet,
            poll=poll,
            **extra,
        )

    def start(self) -> Launch:
        self.supervisor.start()
        return Launch(
            self.engine,
            f"pid {os.getpid()}",
            len(self.supervisor.workers),
            detail=f"on {socket.gethostname()}",
        )

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Supervise until every worker has ended (no timeout: the study's budget ends it)."""
        return self.supervisor.watch()

    def stop(self) -> None:
        self.supervisor.stop()
