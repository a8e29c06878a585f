"""The one interface every engine implements, and what all of them share.

An engine (this host, Slurm, Ray, Kubernetes) only places, starts and
restarts ``hpo worker`` processes. The study's storage keeps the exact
budget, the heartbeats and the re-queue of killed trials, so whatever an
engine does to its workers (kill, preempt, restart twice), the study still
ends with exactly its budget of finished trials.
"""

from __future__ import annotations

import abc
import datetime as _dt
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from hpo import keys
from hpo.errors import ConfigError
from hpo.storage import ENV_VAR, redact, retrying

if TYPE_CHECKING:
    import optuna

    from hpo.config import StudyConfig

ENGINES = ("local", "slurm", "ray", "k8s")
REMOTE_ENGINES = ("slurm", "ray", "k8s")
PER_PROCESS = 20  # trials before a worker process is replaced (TensorFlow's memory growth)
MAX_RESTARTS = 3  # replacements of a crashed worker per slot
STUDY_FILE_NAME = "study.yaml"


@dataclass(frozen=True)
class Plan:
    """What to run: the study, where it is stored, how many workers with what."""

    config: StudyConfig
    storage_url: str
    workers: int
    gpus: bool = False  # each worker gets a GPU (a share of one with workers_per_gpu > 1)
    workers_per_gpu: int = 1
    per_process: int | None = PER_PROCESS
    job_dir: Path | None = None  # where scripts and manifests go (engines that write files)
    env: Mapping[str, str] = field(default_factory=dict)  # extra variables for every worker

    @property
    def budget(self) -> int:
        return self.config.budget.trials

    @property
    def study_name(self) -> str:
        return self.config.study.name

    def worker_args(self, name: str) -> list[str]:
        """Arguments after ``hpo worker STUDY_FILE``: no storage URL, so no password."""
        args = ["--trials", str(self.budget), "--worker-name", name]
        if self.per_process:
            args += ["--max-trials-per-process", str(self.per_process)]
        return args

    def worker_env(self) -> dict[str, str]:
        """Variables every worker gets, the storage URL among them."""
        return {"TF_CPP_MIN_LOG_LEVEL": "3", **self.env, ENV_VAR: self.storage_url}


@dataclass(frozen=True)
class Launch:
    """What an engine started: shown by ``hpo status`` and stored on the study."""

    engine: str
    job_id: str
    workers: int
    detail: str = ""  # the script, manifest or cluster address, for the user to look at
    submitted: bool = True  # False: written for the user to submit (no cluster reachable here)

    def as_attr(self, gpus: bool) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "job_id": self.job_id,
            "workers": self.workers,
            "gpus": gpus,
            "detail": redact(self.detail),
            "host": socket.gethostname(),
            "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }


class Executor(abc.ABC):
    """Places, starts and restarts the trial workers of one study on one engine.

    The contract every engine keeps:

    * The study exists before ``start`` (``hpo.studies.create_or_resume``
      created or resumed it); workers only resume it, so no two of them race
      to create it.
    * ``start()`` starts ``plan.workers`` worker slots, each running
      ``hpo worker`` for the study's total budget, and returns at once with
      what it started (a :class:`Launch`: engine and job id).
    * ``wait()`` watches the workers until they have ended and returns a
      summary with ``finished`` and ``budget``; it raises ``FatalError`` when
      the workers ended short of the budget.
    * ``stop()`` stops every worker as a scheduler's preemption would, with
      SIGTERM: each fails its running trial and queues it again.
    * The budget is never the engine's to decide: each worker asks the storage
      for admission and stops when the study has ``plan.budget`` finished
      trials, so starting, killing or restarting workers can delay the study
      but never change how many trials it finishes.
    * The storage URL reaches workers through their environment
      (``HPO_STORAGE``) or a secret, never their command line, which other
      users of a host can read.
    """

    engine: ClassVar[str]

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    @abc.abstractmethod
    def start(self) -> Launch:
        """Start the worker slots; return without waiting for trials."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Watch until the workers end; ``{"finished": n, "budget": N, ...}``."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop every worker; their running trials are failed and re-queued."""

    def render(self) -> str:
        """What ``--dry-run`` prints: the job this engine would submit."""
        raise ConfigError(f"--dry-run: only slurm and k8s write a job to show, not {self.engine}")


def study_yaml(config: StudyConfig) -> str:
    """The resolved study file workers read, without the storage URL (it may hold a password)."""
    data = config.to_dict()
    data["storage"] = None
    return yaml.safe_dump(data, sort_keys=False)


def write_private(path: Path, text: str) -> Path:
    """Write a file only its owner can read (a secret, or a script beside one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
    return path


def check_engine(engine: str) -> str:
    value = engine.strip().lower()
    if value not in ENGINES:
        raise ConfigError(f"--on: unknown engine '{engine}'; allowed: {', '.join(ENGINES)}")
    return value


def check_remote_storage(url: str, engine: str) -> None:
    """Workers on other hosts need a server database or the gRPC proxy, never SQLite."""
    if engine not in REMOTE_ENGINES or url.startswith("grpc://"):
        return
    backend = url.split(":", 1)[0].split("+", 1)[0].lower()
    if backend == "sqlite":
        raise ConfigError(
            f"storage: {redact(url)} is a SQLite file on this host, which {engine} workers on "
            "other hosts cannot share safely ('database is locked'); use postgresql://, "
            "mysql:// or a grpc:// storage proxy"
        )
    if backend not in ("postgresql", "postgres", "mysql", "mariadb"):
        raise ConfigError(
            f"storage: {redact(url)} is not a server database; --on {engine} needs "
            "postgresql://, mysql:// or grpc://HOST:PORT"
        )


def check_no_password_flag(cli_value: str | None, engine: str) -> None:
    """A password on ``hpo launch``'s own command line would show in every process list."""
    if engine in REMOTE_ENGINES and cli_value and redact(cli_value) != cli_value:
        raise ConfigError(
            f"--storage: {redact(cli_value)} carries a password on the command line, where "
            f"other users of this host can read it; export {ENV_VAR} instead"
        )


def remote_gpus(gpus: str, workers_per_gpu: int, engine: str) -> bool:
    """``--gpus`` for a scheduler: ``all`` asks one GPU per worker, ``none`` none.

    The scheduler picks the cards, so a list of indices means nothing there.
    """
    spec = gpus.strip().lower()
    if spec not in ("all", "none"):
        raise ConfigError(
            f"--gpus: '{gpus}' names GPUs, but on {engine} the scheduler picks them; "
            "use all (one GPU per worker) or none"
        )
    if spec == "all" and workers_per_gpu > 1 and engine != "ray":
        raise ConfigError(
            f"--workers-per-gpu: {engine} gives each worker a whole GPU; got {workers_per_gpu}, "
            "allowed 1 (use --on ray to share a GPU)"
        )
    return spec == "all"


_SAFE_NAME = re.compile(r"[^a-z0-9-]+")


def job_name(study_name: str, limit: int = 40) -> str:
    """A name every engine accepts (Kubernetes: DNS label), derived from the study's."""
    slug = _SAFE_NAME.sub("-", study_name.lower()).strip("-")[: limit - 4].strip("-")
    return f"hpo-{slug or 'study'}"


def default_job_dir(study_name: str) -> Path:
    return Path("storage") / "jobs" / job_name(study_name, limit=80)


def record_launch(study: optuna.Study, launch: Launch, gpus: bool) -> None:
    """Store what was started on the study, for ``hpo status`` on any host."""
    retrying(
        lambda: study.set_user_attr(keys.STUDY_EXECUTOR, launch.as_attr(gpus)), "recording launch"
    )


def executor_line(info: Mapping[str, Any]) -> str:
    """One line for ``hpo status``: engine, job id, workers, where and when."""
    what = {"slurm": "job", "k8s": "job", "ray": "job", "local": "launcher"}.get(
        str(info.get("engine")), "job"
    )
    gpu = ", one GPU each" if info.get("gpus") else ""
    return (
        f"{info.get('engine')} {what} {info.get('job_id')}: {info.get('workers')} worker(s){gpu}, "
        f"started {str(info.get('at', ''))[:19]} from {info.get('host', '?')}"
    )
