"""What hpo's study and trial attributes say, read one way for every view.

``hpo status``/``best``/``studies`` (``hpo.summary``) and the HTML reports
(``hpo.reports``) show the same facts: state counts, the best trial and its
per-trial metrics, training time, the objective metric. They read them here,
on top of ``hpo.results`` (what "finished" and "best" mean), so a view and a
report of one study can never disagree. No plotting, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo import keys
from hpo.results import best_of, is_maximize

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

DEFAULT_METRIC = "macro_f1"
METRIC_LABELS: dict[str, str] = {
    "macro_f1": "macro F1",
    "weighted_f1": "weighted F1",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_precision": "macro precision",
    "macro_recall": "macro recall (sensitivity)",
    "roc_auc": "ROC AUC (mean one-vs-rest)",
}
"""Readable names of the metrics hpo records; the first four can be ``objective.metric``."""


def config_of(study: optuna.Study) -> dict[str, Any]:
    """The study file stored on the study (empty for studies hpo did not create)."""
    cfg = study.user_attrs.get(keys.STUDY_CONFIG)
    return dict(cfg) if isinstance(cfg, Mapping) else {}


def objective_metric(config: Mapping[str, Any]) -> str:
    """``objective.metric`` of a stored study file; macro F1 when it names none.

    A benchmark study is scored by its problem, so the problem names its value.
    """
    objective = config.get("objective")
    if isinstance(objective, Mapping) and objective.get("benchmark"):
        return str(objective["benchmark"])
    metric = objective.get("metric") if isinstance(objective, Mapping) else None
    return str(metric) if metric else DEFAULT_METRIC


def label_of(metric: str) -> str:
    """``"macro_f1"`` -> ``"macro F1"``; unknown names are shown as they are."""
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def section(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One section of a stored study file (``sampler``, ``model``...), empty if absent."""
    value = config.get(name)
    return dict(value) if isinstance(value, Mapping) else {}


def state_counts(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    """Trials per state name (``COMPLETE``, ``PRUNED``...), only states that occur."""
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def train_seconds(trials: Iterable[FrozenTrial]) -> list[float]:
    """Recorded training seconds of the trials that have them."""
    return [
        float(v)
        for t in trials
        if isinstance(v := t.user_attrs.get(keys.TRAIN_SECONDS), (int, float))
        and not isinstance(v, bool)
    ]


@dataclass(frozen=True)
class BestTrial:
    """The best complete trial and what its worker recorded about it."""

    number: int
    value: float
    params: dict[str, Any]
    metrics: dict[str, Any]
    f1_per_class: list[float]
    confusion: list[list[int]] | None
    roc_curves: list[dict[str, Any]]
    epochs: int | None
    train_seconds: float | None
    params_full: dict[str, Any] | None = None  # searched and fixed, as the trainer used them

    @classmethod
    def of(cls, trial: FrozenTrial) -> BestTrial:
        ua = trial.user_attrs
        full = ua.get(keys.PARAMS_FULL)
        return cls(
            number=trial.number,
            value=float(trial.value),  # type: ignore[arg-type]
            params=dict(trial.params),
            metrics=dict(ua.get(keys.METRICS) or {}),
            f1_per_class=list(ua.get(keys.F1_PER_CLASS) or []),
            confusion=ua.get(keys.CONFUSION),
            roc_curves=list(ua.get(keys.ROC_CURVES) or []),
            epochs=ua.get(keys.EPOCHS),
            train_seconds=ua.get(keys.TRAIN_SECONDS),
            params_full=dict(full) if isinstance(full, Mapping) else None,
        )


def best_record(trials: Iterable[FrozenTrial], *, maximize: bool) -> BestTrial | None:
    """The best complete trial (``hpo.results.best_of``) as a record, or None."""
    best = best_of(trials, maximize=maximize)
    return BestTrial.of(best) if best is not None else None


@dataclass(frozen=True)
class StudyFacts:
    """One read of a study: its trials and the facts every view shows."""

    name: str
    maximize: bool
    trials: list[FrozenTrial]
    states: dict[str, int]
    best: BestTrial | None
    config: dict[str, Any]
    metric: str  # objective.metric, e.g. "macro_f1"
    train_seconds: list[float]

    @property
    def metric_label(self) -> str:
        return label_of(self.metric)


def study_facts(study: optuna.Study) -> StudyFacts:
    """Read the study's trials once and derive the shared facts from them."""
    from hpo.storage._optuna import read_trials

    trials = read_trials(study)
    maximize = is_maximize(study)
    config = config_of(study)
    return StudyFacts(
        name=study.study_name,
        maximize=maximize,
        trials=list(trials),
        states=state_counts(trials),
        best=best_record(trials, maximize=maximize),
        config=config,
        metric=objective_metric(config),
        train_seconds=train_seconds(trials),
    )


__all__ = [
    "DEFAULT_METRIC",
    "METRIC_LABELS",
    "BestTrial",
    "StudyFacts",
    "best_record",
    "config_of",
    "label_of",
    "objective_metric",
    "section",
    "state_counts",
    "study_facts",
    "train_seconds",
]
