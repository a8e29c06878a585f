"""Test-split metrics and their bootstrap intervals, against scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from hpo.export import evaluate_test


def _scores(seed: int = 0, n: int = 240, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), [n // 2, n // 3, n - n // 2 - n // 3])
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), y] += rng.uniform(0, 0.8, n)  # informative, not perfect
    return y, np.round(proba / proba.sum(axis=1, keepdims=True), 2)  # rounding makes ties


def test_point_values_match_scikit_learn() -> None:
    y, proba = _scores()
    pred = proba.argmax(axis=1)
    m = evaluate_test(y, proba, ["a", "b", "c"], n_bootstrap=0)
    o = m.overall
    assert o["macro_f1"].value == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-6)
    assert o["weighted_f1"].value == pytest.approx(f1_score(y, pred, average="weighted"), abs=1e-6)
    assert o["balanced_accuracy"].value == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-6)
    assert o["macro_precision"].value == pytest.approx(
        precision_score(y, pred, average="macro"), abs=1e-6
    )
    assert o["macro_recall"].value == pytest.approx(
        recall_score(y, pred, average="macro"), abs=1e-6
    )
    for c, row in enumerate(m.per_class):
        assert row["precision"].value == pytest.approx(precision_score(y == c, pred == c), abs=1e-6)
        assert row["recall"].value == pytest.approx(recall_score(y == c, pred == c), abs=1e-6)
        assert row["roc_auc"].value == pytest.approx(roc_auc_score(y == c, proba[:, c]), abs=1e-6)
        assert row["f1"].low is None  # no resamples, no interval
    assert m.support == [120, 80, 40]
    assert np.asarray(m.confusion_matrix).sum(axis=1).tolist() == m.support


def test_bootstrap_intervals_bracket_the_estimate_and_are_seeded() -> None:
    y, proba = _scores()
    m = evaluate_test(y, proba, ["a", "b", "c"], n_bootstrap=400, seed=7)
    estimates = [*m.overall.values(), *(e for row in m.per_class for e in row.values())]
    for e in estimates:
        assert e.low is not None and e.high is not None and e.value is not None
        assert e.low <= e.value + 0.02 and e.value - 0.02 <= e.high
        assert e.low < e.high  # 240 noisy cases: the intervals have width
    assert m.overall["macro_f1"].high - m.overall["macro_f1"].low < 0.3

    again = evaluate_test(y, proba, ["a", "b", "c"], n_bootstrap=400, seed=7)
    other = evaluate_test(y, proba, ["a", "b", "c"], n_bootstrap=400, seed=8)
    assert again.to_dict() == m.to_dict()
    assert other.overall["macro_f1"] != m.overall["macro_f1"]
    data = json.loads(json.dumps(m.to_dict()))
    assert data["overall"]["macro_f1"]["ci"] == [
        m.overall["macro_f1"].low,
        m.overall["macro_f1"].high,
    ]
    assert data["bootstrap"]["resamples"] == 400 and data["per_class"][2]["support"] == 40


def test_intervals_narrow_with_more_test_cases() -> None:
    y_small, p_small = _scores(n=60)
    y_big, p_big = _scores(n=1200)
    small = evaluate_test(y_small, p_small, ["a", "b", "c"], n_bootstrap=300)
    big = evaluate_test(y_big, p_big, ["a", "b", "c"], n_bootstrap=300)
    width = lambda m: m.overall["macro_f1"].high - m.overall["macro_f1"].low  # noqa: E731
    assert width(big) < width(small) / 2


def test_rare_class_keeps_its_cases_in_every_resample() -> None:
    # One rare class of 3 cases, always right: resampling within classes keeps
    # it present, so its recall interval is exactly [1, 1], never undefined.
    y = np.array([0] * 50 + [1] * 50 + [2] * 3)
    proba = np.full((len(y), 3), 0.1)
    proba[np.arange(len(y)), y] = 0.8
    proba[:10, :] = [0.2, 0.7, 0.1]  # some class-0 errors
    m = evaluate_test(y, proba, ["a", "b", "rare"], n_bootstrap=300)
    rare = m.per_class[2]
    assert (rare["recall"].low, rare["recall"].high) == (1.0, 1.0)
    assert rare["roc_auc"].value == 1.0 and rare["roc_auc"].low == 1.0
    assert m.per_class[0]["recall"].value == pytest.approx(0.8)


def test_a_class_absent_from_the_test_split_has_no_auc() -> None:
    y = np.array([0, 0, 1, 0, 0, 1])
    proba = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]] * 2)
    m = evaluate_test(y, proba, ["a", "b", "never"], n_bootstrap=50)
    assert m.per_class[2]["roc_auc"].value is None and m.per_class[2]["roc_auc"].low is None
    assert m.overall["roc_auc"].value == pytest.approx(1.0)
    with pytest.raises(ValueError):
        evaluate_test(y, proba[:, :2], ["a", "b", "never"])
