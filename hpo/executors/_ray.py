"""Workers as Ray tasks: one task per worker slot, each running one ``hpo worker``.

A GPU task asks ``num_gpus`` (a whole GPU, or ``1/K`` with
``--workers-per-gpu K``), so Ray places it and sets its
``CUDA_VISIBLE_DEVICES``. The task runs ``hpo worker`` as a child process
and is declared ``max_calls=1``: Ray ends the task's process after each
call, and the child's GPU memory is released when the child exits, as with
the local executor. The same supervisor as on one host replaces a task
whose worker died; the study's storage keeps the budget.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hpo.errors import HpoError
from hpo.executors._base import STUDY_FILE_NAME, Executor, Launch, Plan
from hpo.executors._supervisor import STOP_GRACE, Supervisor, WorkerStart
from hpo.gpus import Slot

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: SIGTERM when the task's process dies (a killed Ray worker).

    The worker then fails and re-queues its trial instead of running on, orphaned.
    """
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def run_worker_process(
    args: list[str], env: dict[str, str], study_text: str, gpus: bool
) -> tuple[int, str]:
    """The body of a Ray task: ``hpo worker`` in a child process; (exit code, last stderr line).

    Runs on whichever node Ray picked, so the study file travels as text.
    ``ray.cancel`` raises ``KeyboardInterrupt`` here: the child gets SIGTERM,
    fails its running trial and queues it again.
    """
    with tempfile.TemporaryDirectory(prefix="hpo-ray-") as tmp:
        study_file = Path(tmp) / STUDY_FILE_NAME
        study_file.write_text(study_text, encoding="utf-8")
        full = {**os.environ, **env}
        if gpus:
            full["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"  # CUDA_VISIBLE_DEVICES is Ray's choice
        else:
            full["CUDA_VISIBLE_DEVICES"] = ""
        log_path = Path(tmp) / "worker.log"
        command = [sys.executable, "-m", "hpo", "worker", str(study_file), *args]
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(  # prctl only in the child: it takes no lock
                command,
                env=full,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=_die_with_parent,
            )
        try:
            while proc.poll() is None:
                time.sleep(0.2)  # a sleep, not a blocking wait, so cancel can interrupt it
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        return proc.returncode, lines[-1][:300] if lines else ""


class _RayWorker:
    """One Ray task seen as a process by the supervisor."""

    pid = None  # the worker runs on a node of Ray's choosing

    def __init__(self, ray: Any, ref: Any, log_path: Path) -> None:
        self.ray, self.ref, self.log_path = ray, ref, log_path
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            ready, _ = self.ray.wait([self.ref], timeout=0)
            if ready:
                self._collect()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            ready, _ = self.ray.wait([self.ref], timeout=timeout)
            if not ready:
                raise subprocess.TimeoutExpired("ray task", timeout or 0)
            self._collect()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.ray.cancel(self.ref, force=False)

    def kill(self) -> None:
        self.ray.cancel(self.ref, force=True)

    def _collect(self) -> None:
        exceptions = self.ray.exceptions
        try:
            code, last = self.ray.get(self.ref)
        except exceptions.TaskCancelledError:
            code, last = -signal.SIGTERM, "stopped"
        except exceptions.RayError as exc:  # the task's process died (killed, out of memory)
            code, last = -signal.SIGKILL, f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        self.returncode = int(code)
        self.log_path.write_text(last + "\n", encoding="utf-8")


class RayExecutor(Executor):
    """Tasks on an existing Ray cluster (``address``) or on a local one started here."""

    engine: ClassVar[str] = "ray"

    def __init__(
        self,
        plan: Plan,
        study: optuna.Study,
        *,
        address: str | None = None,
        console: Console | None = None,
        quiet: bool = False,
        poll: float = 1.0,
    ) -> None:
        super().__init__(plan)
        self.address = address
        self.num_gpus = 1.0 / plan.workers_per_gpu if plan.gpus else 0.0
        label = f"ray {self.num_gpus:g} gpu" if plan.gpus else "ray cpu"
        slots = [Slot(f"ray-w{k}", None, label) for k in range(plan.workers)]
        self.supervisor = Supervisor(
            plan, study, slots, self._spawn, console=console, quiet=quiet, poll=poll
        )
        self._ray: Any = None
        self._task: Any = None
        self._owns_ray = False

    def start(self) -> Launch:
        try:
            import ray
        except ImportError:
            raise HpoError("--on ray: Ray is not installed; pip install 'hpo[ray]'") from None
        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False)
            self._owns_ray = True
        self._ray = ray
        self._task = ray.remote(num_cpus=1, num_gpus=self.num_gpus, max_calls=1, max_retries=0)(
            run_worker_process
        )
        self.supervisor.start()
        job = ray.get_runtime_context().get_job_id()
        where = self.address or "a local Ray cluster"
        return Launch(self.engine, str(job), self.plan.workers, detail=f"tasks on {where}")

    def _spawn(self, start: WorkerStart) -> _RayWorker:
        ref = self._task.remote(
            start.args,
            start.env,
            start.study_file.read_text(encoding="utf-8"),
            self.plan.gpus,
        )
        return _RayWorker(self._ray, ref, start.log_path)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        try:
            return self.supervisor.watch()
        finally:
            if self._owns_ray:
                self._ray.shutdown()

    def stop(self) -> None:
        self.supervisor.stop()
