"""Engines that run trial workers: this host, Slurm, Ray, Kubernetes.

Every engine implements ``Executor`` (its contract is in its docstring):
it places, starts and restarts ``hpo worker`` processes for a study that
already exists, and never decides the budget; the study's storage does.
Ray is imported only by the Ray executor, and only when it starts.
"""

from __future__ import annotations

from hpo.executors._base import (
    ENGINES,
    MAX_RESTARTS,
    PER_PROCESS,
    REMOTE_ENGINES,
    Executor,
    Launch,
    Plan,
    check_engine,
    check_no_password_flag,
    check_remote_storage,
    default_job_dir,
    executor_line,
    record_launch,
    remote_gpus,
    study_yaml,
)
from hpo.executors._factory import check_options, make_executor, make_plan
from hpo.executors._k8s import K8sExecutor
from hpo.executors._local import LocalExecutor, spawn_local, worker_command
from hpo.executors._ray import RayExecutor
from hpo.executors._slurm import SlurmExecutor
from hpo.executors._supervisor import STOP_GRACE, Supervisor, WorkerStart

__all__ = [
    "ENGINES",
    "MAX_RESTARTS",
    "PER_PROCESS",
    "REMOTE_ENGINES",
    "STOP_GRACE",
    "Executor",
    "K8sExecutor",
    "Launch",
    "LocalExecutor",
    "Plan",
    "RayExecutor",
    "SlurmExecutor",
    "Supervisor",
    "WorkerStart",
    "check_engine",
    "check_no_password_flag",
    "check_options",
    "check_remote_storage",
    "default_job_dir",
    "executor_line",
    "make_executor",
    "make_plan",
    "record_launch",
    "remote_gpus",
    "spawn_local",
    "study_yaml",
    "worker_command",
]
