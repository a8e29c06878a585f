"""The one evaluation on the held-out test split, with bootstrap intervals.

Point estimates come from ``hpo.metrics.evaluate`` (the same code that scored
validation during the search) plus per-class precision and recall. The 95 %
intervals resample test cases with replacement *within each true class*:
the test split was drawn stratified, so its class counts are fixed by design,
and a rare class can never vanish from a resample and turn its F1 into an
artefact. Every resample is scored from its confusion matrix and from ranks
(for ROC AUC) in numpy, so 1,000 resamples take well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from hpo.metrics import evaluate

LEVEL = 0.95
_CHUNK = 100  # resamples scored at once; bounds memory at n_test * _CHUNK floats

OVERALL = (
    "macro_f1",
    "weighted_f1",
    "accuracy",
    "balanced_accuracy",
    "macro_precision",
    "macro_recall",
    "roc_auc",
)
PER_CLASS = ("f1", "precision", "recall", "roc_auc")


@dataclass(frozen=True)
class Estimate:
    """A metric on the test split and its bootstrap interval (None when undefined)."""

    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class TestMetrics:
    """Everything the card and ``model.json`` show about the test split, as plain data."""

    class_names: list[str]
    support: list[int]
    overall: dict[str, Estimate]
    per_class: list[dict[str, Estimate]]
    confusion_matrix: list[list[int]]
    roc_curves: list[dict[str, Any]]
    n_bootstrap: int
    seed: int | None

    @property
    def n_test(self) -> int:
        return int(sum(self.support))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: ``{"value", "ci": [low, high]}`` per metric."""

        def est(e: Estimate) -> dict[str, Any]:
            ci = None if e.low is None or e.high is None else [e.low, e.high]
            return {"value": e.value, "ci": ci}

        return {
            "split": "test",
            "n_test": self.n_test,
            "overall": {k: est(v) for k, v in self.overall.items()},
            "per_class": [
                {"class": name, "support": n, **{k: est(v) for k, v in row.items()}}
                for name, n, row in zip(self.class_names, self.support, self.per_class, strict=True)
            ],
            "confusion_matrix": self.confusion_matrix,
            "roc_curves": self.roc_curves,
            "bootstrap": {
                "resamples": self.n_bootstrap,
                "seed": self.seed,
                "level": LEVEL,
                "method": "percentile; test cases resampled with replacement within each class",
            },
        }


def _rates(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision/recall/F1 and the overall scores from confusion matrices.

    ``cm`` is (..., k, k), rows true. Undefined ratios count 0, as scikit-learn
    does with ``zero_division=0``, so point values and resamples agree.
    """
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    true_n = cm.sum(axis=-1).astype(np.float64)
    pred_n = cm.sum(axis=-2).astype(np.float64)
    total = true_n.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_n > 0, tp / pred_n, 0.0)
        recall = np.where(true_n > 0, tp / true_n, 0.0)
        f1 = np.where(true_n + pred_n > 0, 2 * tp / (true_n + pred_n), 0.0)
    present = true_n > 0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": f1.mean(axis=-1),
        "weighted_f1": (f1 * true_n).sum(axis=-1) / total,
        "accuracy": tp.sum(axis=-1) / total,
        "balanced_accuracy": (recall * present).sum(axis=-1) / present.sum(axis=-1),
        "macro_precision": precision.mean(axis=-1),
        "macro_recall": recall.mean(axis=-1),
    }


def _auc_by_rank(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC per row (Mann-Whitney U with tied ranks averaged)."""
    ranks = rankdata(scores, axis=-1)
    n_pos = positive.sum(axis=-1).astype(np.float64)
    n_neg = positive.shape[-1] - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * positive).sum(axis=-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _resample_indices(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, len(y)) indices; each row keeps every class's count."""
    out = np.empty((n, len(y)), dtype=np.int64)
    col = 0
    for k in np.unique(y):
        members = np.flatnonzero(y == k)
        out[:, col : col + len(members)] = rng.choice(members, size=(n, len(members)))
        col += len(members)
    return out


def _bootstrap(
    y: np.ndarray, proba: np.ndarray, n_boot: int, seed: int | None
) -> dict[str, np.ndarray]:
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {}
    done = 0
    while done < n_boot:
        m = min(_CHUNK, n_boot - done)
        idx = _resample_indices(y, m, rng)
        yt, yp = y[idx], pred[idx]
        flat = (yt * k + yp) + (np.arange(m)[:, None] * k * k)
        cm = np.bincount(flat.ravel(), minlength=m * k * k).reshape(m, k, k)
        scores = _rates(cm)
        aucs = np.stack([_auc_by_rank(proba[idx, c], yt == c) for c in range(k)], axis=-1)
        scores["roc_auc_class"] = aucs
        with np.errstate(invalid="ignore"):
            defined = ~np.isnan(aucs)
            scores["roc_auc"] = np.where(
                defined.any(axis=-1),
                np.nansum(aucs, axis=-1) / np.maximum(defined.sum(axis=-1), 1),
                np.nan,
            )
        for key, value in scores.items():
            draws.setdefault(key, []).append(value)
        done += m
    return {key: np.concatenate(parts) for key, parts in draws.items()}


def _interval(samples: np.ndarray) -> tuple[float | None, float | None]:
    values = samples[~np.isnan(samples)]
    if values.size == 0:
        return None, None
    tail = (1.0 - LEVEL) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return round(float(lo), 6), round(float(hi), 6)


def _round(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def evaluate_test(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: list[str],
    *,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
) -> TestMetrics:
    """Point metrics on the test split and, if ``n_bootstrap`` > 0, 95 % intervals."""
    y = np.asarray(y_true).astype(np.int64).ravel()
    proba = np.asarray(proba, dtype=np.float64)
    k = len(class_names)
    if proba.ndim != 2 or proba.shape != (len(y), k):
        raise ValueError(f"proba must be ({len(y)}, {k}), got {proba.shape}")
    base = evaluate(y, proba)
    cm = np.asarray(base.confusion_matrix, dtype=np.int64)
    point = _rates(cm)
    auc_class = [c.get("auc") for c in base.roc_curves]
    point_overall: dict[str, float | None] = {
        key: float(point[key]) for key in OVERALL if key != "roc_auc"
    }
    point_overall["roc_auc"] = base.roc_auc
    point_overall["macro_f1"] = base.macro_f1  # identical by construction; scikit-learn's value

    boot = _bootstrap(y, proba, n_bootstrap, seed) if n_bootstrap > 0 else {}

    def estimate(value: float | None, samples: np.ndarray | None) -> Estimate:
        if value is None or samples is None:
            return Estimate(_round(value))
        lo, hi = _interval(samples)
        return Estimate(_round(value), lo, hi)

    overall = {key: estimate(point_overall[key], boot.get(key)) for key in OVERALL}
    per_class: list[dict[str, Estimate]] = []
    for c in range(k):
        row: dict[str, Estimate] = {}
        for key in ("f1", "precision", "recall"):
            samples = boot[key][:, c] if boot else None
            row[key] = estimate(float(point[key][c]), samples)
        row["roc_auc"] = estimate(auc_class[c], boot["roc_auc_class"][:, c] if boot else None)
        per_class.append(row)
    return TestMetrics(
        class_names=list(class_names),
        support=[int(v) for v in cm.sum(axis=1)],
        overall=overall,
        per_class=per_class,
        confusion_matrix=cm.tolist(),
        roc_curves=base.roc_curves,
        n_bootstrap=int(n_bootstrap),
        seed=seed,
    )
