"""Classification metrics for imbalanced medical data, from scikit-learn.

Macro F1 is the objective because accuracy hides the rare classes (1 % of the
Kaggle Alzheimer set is ``Moderate_Demented``). Everything here is plain
numpy in, JSON-safe values out, so it can be stored on a trial as is.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
    roc_curve,
)

_ROC_POINTS = 60


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one model on one split."""

    macro_f1: float
    weighted_f1: float
    accuracy: float
    balanced_accuracy: float
    roc_auc: float | None
    f1_per_class: list[float]
    confusion_matrix: list[list[int]]
    roc_curves: list[dict[str, Any]] = field(default_factory=list)

    def scalars(self) -> dict[str, float | None]:
        return {
            "macro_f1": self.macro_f1,
            "weighted_f1": self.weighted_f1,
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "roc_auc": self.roc_auc,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro F1 over all classes, a class never predicted nor present counting 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return float(
            f1_score(y_true, y_pred, labels=np.arange(n_classes), average="macro", zero_division=0)
        )


def score(metric: str, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """One objective metric (``objective.metric``), computed as ``evaluate`` does.

    Cheap enough to run after every epoch, so a pruner sees the curve of the
    metric the study optimises rather than always macro F1.
    """
    labels = np.arange(n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)
        if metric == "macro_f1":
            return macro_f1(y_true, y_pred, n_classes)
        if metric == "weighted_f1":
            return float(
                f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
            )
        if metric == "accuracy":
            return float(accuracy_score(y_true, y_pred))
        if metric == "balanced_accuracy":
            return float(balanced_accuracy_score(y_true, y_pred))
    raise ValueError(f"unknown metric {metric!r}")  # hpo.config.METRICS lists the known ones


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    if len(x) > _ROC_POINTS:
        idx = np.unique(np.linspace(0, len(x) - 1, _ROC_POINTS).round().astype(int))
        x, y = x[idx], y[idx]
    return [round(float(v), 5) for v in x], [round(float(v), 5) for v in y]


def evaluate(y_true: np.ndarray, proba: np.ndarray) -> Evaluation:
    """All stored metrics from true labels and predicted class probabilities."""
    y_true = np.asarray(y_true).astype(int).ravel()
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = proba.shape[1]
    labels = np.arange(n_classes)
    y_pred = proba.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)
        per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
        weighted = f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
        balanced = balanced_accuracy_score(y_true, y_pred)
    curves: list[dict[str, Any]] = []
    aucs: list[float] = []
    for k in labels:
        positive = y_true == k
        if positive.all() or not positive.any():
            curves.append({"fpr": [], "tpr": [], "auc": None})
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, k])
        auc = float(roc_auc_score(positive, proba[:, k]))
        aucs.append(auc)
        fx, ty = _thin(fpr, tpr)
        curves.append({"fpr": fx, "tpr": ty, "auc": round(auc, 6)})
    return Evaluation(
        macro_f1=float(np.mean(per_class)),
        weighted_f1=float(weighted),
        accuracy=float(accuracy_score(y_true, y_pred)),
        balanced_accuracy=float(balanced),
        roc_auc=float(np.mean(aucs)) if aucs else None,
        f1_per_class=[float(v) for v in per_class],
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        roc_curves=curves,
    )


def recall_per_class(confusion: list[list[int]]) -> list[float | None]:
    """Recall of each class from a confusion matrix (rows = true class).

    Derived from the stored matrix rather than stored again, so trials written
    before constraints existed answer too; a class absent from the split is None.
    """
    out: list[float | None] = []
    for k, row in enumerate(confusion):
        total = sum(row)
        out.append(row[k] / total if total else None)
    return out


def support_per_class(confusion: list[list[int]]) -> list[int]:
    """Images of each class in the split the confusion matrix was computed on."""
    return [int(sum(row)) for row in confusion]


def constraint_values(
    class_names: list[str],
    confusion: list[list[int]],
    *,
    min_recall: dict[str, float],
    max_params: int | None = None,
    n_params: int | None = None,
) -> dict[str, float]:
    """Optuna's constraint values (> 0 means violated) for a clinic's requirements.

    ``min_recall:<class>`` is floor - recall (a class absent from validation has
    recall 0: nothing shows the floor is met); ``max_params`` is
    n_params / max_params - 1, relative so a GP models it on the same scale.
    """
    recall = recall_per_class(confusion)
    out: dict[str, float] = {}
    for name, floor in min_recall.items():
        r = recall[class_names.index(name)]
        out[f"min_recall:{name}"] = round(floor - (r or 0.0), 6)
    if max_params is not None and n_params is not None:
        out["max_params"] = round(n_params / max_params - 1.0, 6)
    return out
