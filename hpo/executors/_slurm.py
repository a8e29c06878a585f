"""Workers as a Slurm job array: one ``hpo worker`` per array task.

``hpo launch --on slurm`` writes the resolved study file and a batch script
into the job folder (on a file system the nodes share) and submits it with
``sbatch``. The storage URL travels in the submitting environment
(``HPO_STORAGE``, which ``sbatch`` exports to the job), never in the script
or a command line. ``--requeue`` lets Slurm run a preempted task again, and
``--signal=B:TERM@SECONDS`` warns the task before its time limit: the worker
then fails its running trial and queues it again, so nothing is left RUNNING.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from hpo.errors import ConfigError, FatalError, HpoError
from hpo.executors._base import (
    MAX_RESTARTS,
    STUDY_FILE_NAME,
    Executor,
    Launch,
    Plan,
    default_job_dir,
    job_name,
    study_yaml,
)
from hpo.worker._exit_codes import RECYCLE_EXIT_CODE, USER_ERROR_EXIT_CODE

SIGNAL_SECONDS = 120  # warning before the time limit: enough to fail and re-queue a trial
SCRIPT_NAME = "worker.sbatch"
_NAME_SLOT = "@WORKER_NAME@"  # replaced by the shell variable holding the task's worker name
_NAME_RE = re.compile(r"^[A-Za-z0-9_.,-]+$")
_TIME_RE = re.compile(r"^((\d+-)?\d+(:\d+){0,2}|unlimited|infinite)$", re.IGNORECASE)

_BODY = """\
if [ -z "${{HPO_STORAGE:-}}" ]; then
  echo "HPO_STORAGE is not set: submit with it exported (hpo launch --on slurm does)" >&2
  exit 2
fi
export TF_CPP_MIN_LOG_LEVEL=3
{device}
name="slurm-${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
child=
stop() {{
  # scancel signals every process of the task, so the worker may have had its own
  # SIGTERM; --signal=B:TERM reaches only this shell, so pass it on if the worker goes on.
  for _ in 1 2 3 4 5; do
    case "$(ps -o stat= -p "$child" 2>/dev/null)" in ""|Z*) wait "$child"; exit 143 ;; esac
    sleep 1
  done
  kill -TERM "$child" 2>/dev/null
  wait "$child"
  exit 143
}}
trap stop TERM
restarts=0
while true; do
  {command} &
  child=$!
  wait "$child"
  code=$?
  case "$code" in
    0) exit 0 ;;  # the study has its budget
    {recycle}) ;;  # the per-process quota: a fresh process goes on
    {user_error}|130|143) exit "$code" ;;  # a user error, or stopped: restarting will not help
    *) restarts=$((restarts + 1))  # killed, crashed or hung: a replacement
       [ "$restarts" -le {max_restarts} ] || exit "$code" ;;
  esac
done
"""


def _check_name(flag: str, value: str | None) -> str | None:
    if value is not None and not _NAME_RE.match(value):
        raise ConfigError(
            f"{flag}: '{value}' is not a Slurm name; allowed: letters, digits, '_', '.', '-', ','"
        )
    return value


def _check_time(value: str | None) -> str | None:
    if value is not None and not _TIME_RE.match(value):
        raise ConfigError(
            f"--time: '{value}' is not a Slurm time limit; allowed: MINUTES, HH:MM:SS, "
            "D-HH:MM:SS or UNLIMITED"
        )
    return value


class SlurmExecutor(Executor):
    """A job array on a Slurm cluster, submitted from this host with ``sbatch``."""

    engine: ClassVar[str] = "slurm"

    def __init__(
        self,
        plan: Plan,
        *,
        partition: str | None = None,
        time_limit: str | None = None,
        account: str | None = None,
        signal_seconds: int = SIGNAL_SECONDS,
        python: str = sys.executable,
        poll: float = 2.0,
    ) -> None:
        super().__init__(plan)
        self.partition = _check_name("--partition", partition)
        self.account = _check_name("--account", account)
        self.time_limit = _check_time(time_limit)
        self.signal_seconds = signal_seconds
        self.python = python
        self.poll = poll
        self.job_dir = (plan.job_dir or default_job_dir(plan.study_name)).resolve()
        self.job_id: str | None = None

    @property
    def script_path(self) -> Path:
        return self.job_dir / SCRIPT_NAME

    def render(self) -> str:
        """The batch script: ``#SBATCH`` options, then a loop around ``hpo worker``."""
        plan = self.plan
        options = [
            f"--job-name={job_name(plan.study_name)}",
            f"--array=0-{plan.workers - 1}",
            "--ntasks=1",
        ]
        if plan.gpus:
            options.append("--gres=gpu:1")
        for flag, value in (
            ("partition", self.partition),
            ("time", self.time_limit),
            ("account", self.account),
        ):
            if value:
                options.append(f"--{flag}={value}")
        options += [
            "--requeue",
            f"--signal=B:TERM@{self.signal_seconds}",
            "--open-mode=append",
            f"--output={self.job_dir / 'worker-%A_%a.log'}",
            "--export=ALL",
        ]
        study_file = self.job_dir / STUDY_FILE_NAME
        command = " ".join(
            shlex.quote(part)
            for part in [
                self.python,
                "-m",
                "hpo",
                "worker",
                str(study_file),
                *plan.worker_args(_NAME_SLOT),
            ]
        ).replace(_NAME_SLOT, '"$name"')
        device = (
            "export TF_FORCE_GPU_ALLOW_GROWTH=true  # Slurm sets CUDA_VISIBLE_DEVICES"
            if plan.gpus
            else "export CUDA_VISIBLE_DEVICES=  # no GPU asked: keep off the node's cards"
        )
        header = [
            "#!/bin/bash",
            f"# Trial workers of study {plan.study_name!r}: one per array task; the study's",
            "# storage (HPO_STORAGE, exported by sbatch) keeps the exact budget.",
            *(f"#SBATCH {o}" for o in options),
            "",
            "",
        ]
        body = _BODY.format(
            device=device,
            command=command,
            recycle=RECYCLE_EXIT_CODE,
            user_error=USER_ERROR_EXIT_CODE,
            max_restarts=MAX_RESTARTS,
        )
        return "\n".join(header) + body

    def write(self) -> Path:
        """The study file and the script, in the job folder the nodes read."""
        self.job_dir.mkdir(parents=True, exist_ok=True)
        (self.job_dir / STUDY_FILE_NAME).write_text(study_yaml(self.plan.config), encoding="utf-8")
        self.script_path.write_text(self.render(), encoding="utf-8")
        return self.script_path

    def start(self) -> Launch:
        sbatch = _tool("sbatch")
        script = self.write()
        out = _run([sbatch, "--parsable", str(script)], env=self.plan.worker_env())
        self.job_id = out.strip().split(";")[0]
        if not self.job_id.isdigit():
            raise HpoError(f"sbatch: unexpected answer '{out.strip()}' (wanted a job id)")
        return Launch(self.engine, self.job_id, self.plan.workers, detail=f"script {script}")

    def tasks(self) -> list[str]:
        """The array's tasks Slurm still has (pending, running or requeued)."""
        try:
            out = _run([_tool("squeue"), "-h", "-j", self._id(), "-o", "%i %T"])
        except HpoError as exc:
            if "Invalid job id" in str(exc):  # ended long enough ago to be forgotten
                return []
            raise
        return [line for line in out.splitlines() if line.strip()]

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        from hpo.results import finished_count
        from hpo.storage import open_storage

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.tasks():
            if deadline is not None and time.monotonic() > deadline:
                raise HpoError(f"slurm job {self._id()}: still running after {timeout:g} s")
            time.sleep(self.poll)
        import optuna

        storage = open_storage(self.plan.storage_url)
        done = finished_count(optuna.load_study(study_name=self.plan.study_name, storage=storage))
        if done < self.plan.budget:
            raise FatalError(
                f"slurm job {self._id()} ended with {done} of {self.plan.budget} trials "
                f"finished; see {self.job_dir}/worker-{self._id()}_*.log ({self._last_error()})"
            )
        return {"finished": done, "budget": self.plan.budget, "job_id": self._id()}

    def stop(self) -> None:
        """``scancel``: each task's worker gets SIGTERM, fails its trial and re-queues it."""
        _run([_tool("scancel"), self._id()])

    def _id(self) -> str:
        if self.job_id is None:
            raise HpoError("slurm: no job submitted yet")
        return self.job_id

    def _last_error(self) -> str:
        for log in sorted(self.job_dir.glob(f"worker-{self._id()}_*.log")):
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            if lines:
                return f"{log.name}: {lines[-1][:200]}"
        return "no log written"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise HpoError(f"--on slurm: '{name}' not found on PATH; run on a Slurm login node")
    return path


def _run(command: list[str], env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            env=None if env is None else {**os.environ, **env},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HpoError(f"{Path(command[0]).name}: {exc}") from None
    if done.returncode != 0:
        tool = Path(command[0]).name
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        last = lines[-1].removeprefix(f"{tool}: ") if lines else "failed"
        raise HpoError(f"{tool}: {last}")
    return done.stdout
