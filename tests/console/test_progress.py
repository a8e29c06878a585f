"""RunProgress: names the objective metric and keeps the best in the study's direction."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal, cast

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from rich.console import Console

from hpo.console import RunProgress
from hpo.events import EpochEvent

if TYPE_CHECKING:
    from hpo.config import StudyConfig


def _config(metric: str, benchmark: str | None = None) -> StudyConfig:
    objective = SimpleNamespace(metric=metric, benchmark=benchmark)
    return cast("StudyConfig", SimpleNamespace(objective=objective))


def _shown(progress: RunProgress) -> str:
    buf = io.StringIO()
    Console(file=buf, width=300, color_system=None).print(progress.progress.get_renderable())
    return buf.getvalue()


def _trial(value: float | None, state: TrialState = TrialState.COMPLETE) -> Any:
    return create_trial(value=value, state=state)


@pytest.mark.parametrize(
    ("direction", "metric", "label", "best"),
    [
        ("maximize", "macro_f1", "macro F1", "0.8000"),
        ("minimize", "balanced_accuracy", "balanced accuracy", "0.3000"),
    ],
)
def test_best_follows_direction_and_metric(
    direction: Literal["maximize", "minimize"], metric: str, label: str, best: str
) -> None:
    study = optuna.create_study(study_name="s", direction=direction)
    console = Console(file=io.StringIO())
    prog = RunProgress(study, n_trials=4, config=_config(metric), console=console, enabled=False)
    with prog:
        for t in (
            _trial(0.5),
            _trial(0.8),
            _trial(None, TrialState.PRUNED),
            _trial(0.3),
        ):
            prog.on_trial(study, t)
        prog.on_epoch(EpochEvent(trial=4, epoch=1, total_epochs=5, f1=0.61234))
    shown = _shown(prog)
    assert f"best {label} {best}" in shown
    assert f"trial 4 epoch 2/5 {label} 0.612" in shown
    assert "4/4" in shown and prog.done == 4


def test_a_benchmark_study_names_its_problem_not_macro_f1() -> None:
    study = optuna.create_study(study_name="b", direction="minimize")
    config = _config("macro_f1", benchmark="branin")
    prog = RunProgress(study, n_trials=1, config=config, console=Console(), enabled=False)
    with prog:
        prog.on_trial(study, _trial(0.5))
    shown = _shown(prog)
    assert "best branin 0.5000" in shown and "macro F1" not in shown
