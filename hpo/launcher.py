"""``hpo launch`` on this host: the local executor, as one blocking call.

The supervisor itself lives in ``hpo.executors`` (``_supervisor``), shared
with the Ray executor; this module keeps the call that ``hpo compare`` and
scripts use. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo.executors import MAX_RESTARTS, LocalExecutor, Plan

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from hpo.config import StudyConfig
    from hpo.gpus import Slot

__all__ = ["MAX_RESTARTS", "launch_study"]


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
    if budget != config.budget.trials:
        config = config.with_overrides(trials=budget)
    plan = Plan(
        config,
        storage_url,
        workers=len(slots),
        gpus=any(s.gpu is not None for s in slots),
        per_process=per_process,
    )
    executor = LocalExecutor(
        plan, study, slots, console=console, quiet=quiet, max_restarts=max_restarts, poll=poll
    )
    executor.start()
    return executor.wait()
