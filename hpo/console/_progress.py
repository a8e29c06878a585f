"""Live progress of a run in the terminal (rich): trials, best value, epoch, ETA."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

from optuna.trial import TrialState
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hpo.facts import label_of
from hpo.results import is_maximize

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from hpo.config import StudyConfig
    from hpo.events import EpochEvent


class RunProgress:
    """Context manager feeding a rich progress bar from objective and study callbacks.

    It names the study's ``objective.metric`` and keeps the best value in the
    study's direction, like ``hpo best`` and the report.
    """

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
        # A benchmark study's value is its problem's, not a classifier metric.
        self.label = label_of(config.objective.benchmark or config.objective.metric)
        self.maximize = is_maximize(study)
        self.best: float | None = None
        self.epoch_text = ""
        self.done = 0
        self.start = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(f"best {self.label} {{task.fields[best]}}"),
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
        text = (
            f"trial {event.trial} epoch {event.epoch + 1}/{event.total_epochs} "
            f"{self.label} {event.f1:.3f}"
        )
        self.progress.update(self.task, epoch=text)

    def on_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.done += 1
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            if self.best is None:
                self.best = trial.value
            else:
                pick = max if self.maximize else min
                self.best = pick(self.best, trial.value)
        best = f"{self.best:.4f}" if self.best is not None else "-"
        self.progress.update(
            self.task, completed=self.done, best=best, epoch=f"last: {trial.state.name.lower()}"
        )
