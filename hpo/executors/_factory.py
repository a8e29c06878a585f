"""From ``hpo launch``'s flags to one executor, refusing flags of another engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo.errors import ConfigError
from hpo.executors._base import (
    Executor,
    Plan,
    check_no_password_flag,
    check_remote_storage,
    remote_gpus,
)

if TYPE_CHECKING:
    from pathlib import Path

    import optuna
    from rich.console import Console

    from hpo.config import StudyConfig
    from hpo.gpus import Slot

# option -> (its flag, the engine it belongs to)
ENGINE_OPTIONS: dict[str, tuple[str, str]] = {
    "partition": ("--partition", "slurm"),
    "time_limit": ("--time", "slurm"),
    "account": ("--account", "slurm"),
    "address": ("--address", "ray"),
    "image": ("--image", "k8s"),
    "namespace": ("--namespace", "k8s"),
}


def make_plan(
    engine: str,
    config: StudyConfig,
    url: str,
    *,
    storage_flag: str | None,
    gpus: str,
    workers_per_gpu: int,
    workers: int | None,
    per_process: int | None,
    job_dir: Path | None,
) -> tuple[Plan, list[Slot] | None]:
    """The plan for ``engine``, and this host's slots for ``local``; bad flags refused.

    On this host ``--gpus`` and ``--workers-per-gpu`` make the slots; a scheduler
    takes ``--workers`` and places them, so it needs a server storage.
    """
    slots = None
    if engine == "local":
        from hpo.gpus import plan_slots

        if workers is not None:
            raise ConfigError(
                "--workers: applies to slurm, ray and k8s; on this host use --gpus and "
                "--workers-per-gpu"
            )
        slots = plan_slots(gpus, workers_per_gpu)
        use_gpus = any(s.gpu is not None for s in slots)
        if use_gpus:
            from hpo.gpus import check_backend_sees

            check_backend_sees(slots, config.training.backend, flag=f"--gpus {gpus}")
    else:
        check_no_password_flag(storage_flag, engine)
        check_remote_storage(url, engine)
        use_gpus = remote_gpus(gpus, workers_per_gpu, engine)
    plan = Plan(
        config,
        url,
        workers=len(slots) if slots is not None else workers or 1,
        gpus=use_gpus,
        workers_per_gpu=workers_per_gpu,
        per_process=per_process,
        job_dir=job_dir,
    )
    return plan, slots


def make_executor(
    engine: str,
    plan: Plan,
    study: optuna.Study | None,
    *,
    slots: list[Slot] | None = None,
    console: Console | None = None,
    quiet: bool = False,
    **options: Any,
) -> Executor:
    """The executor for ``engine``; a flag given for another engine is an error.

    ``study`` may be None only for engines that write a job (``--dry-run``).
    """
    given = check_options(engine, options)
    if engine == "slurm":
        from hpo.executors._slurm import SlurmExecutor

        return SlurmExecutor(plan, **given)
    if engine == "k8s":
        from hpo.executors._k8s import K8sExecutor

        return K8sExecutor(plan, image=given.get("image"), **_without(given, "image"))
    if study is None:
        raise ConfigError(f"--dry-run: applies only with --on slurm or k8s, not --on {engine}")
    if engine == "ray":
        from hpo.executors._ray import RayExecutor

        return RayExecutor(plan, study, console=console, quiet=quiet, **given)
    from hpo.executors._local import LocalExecutor

    return LocalExecutor(plan, study, slots or [], console=console, quiet=quiet)


def check_options(engine: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options given (not None); one that belongs to another engine is an error."""
    given = {k: v for k, v in options.items() if v is not None}
    for key in given:
        flag, owner = ENGINE_OPTIONS[key]
        if owner != engine:
            raise ConfigError(f"{flag}: applies only with --on {owner}, not --on {engine}")
    return given


def _without(options: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != key}
