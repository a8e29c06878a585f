"""Live progress of a run in the terminal (rich): trials, best F1, epoch, ETA."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

from optuna.trial import TrialState
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    import optuna

    from hpo.config import StudyConfig
    from hpo.objective import EpochEvent


class RunProgress:
    """Context manager feeding a rich progress bar from objective and study callbacks."""

    def __init__(
        self,
        study: optuna.Study,
        *,
        n_trials: int,
        config: StudyConfig,
        console: Console,
        enabled: bool = True,
    ) -> None:
        self.study = study
        self.n_trials = n_trials
        self.enabled = enabled
        self.best: float | None = None
        self.epoch_text = ""
        self.done = 0
        self.start = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best F1 {task.fields[best]}"),
            TextColumn("{task.fields[epoch]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task(
            f"{study.study_name}", total=n_trials, best="-", epoch=""
        )

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def on_epoch(self, event: EpochEvent) -> None:
        text = f"trial {event.trial} epoch {event.epoch + 1}/{event.total_epochs} F1 {event.f1:.3f}"
        self.progress.update(self.task, epoch=text)

    def on_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.done += 1
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            self.best = trial.value if self.best is None else max(self.best, trial.value)
        best = f"{self.best:.4f}" if self.best is not None else "-"
        self.progress.update(
            self.task, completed=self.done, best=best, epoch=f"last: {trial.state.name.lower()}"
        )
