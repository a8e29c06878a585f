"""hpo.metrics edge cases: the per-epoch ``score`` and ``evaluate`` when a class is missing.

The per-epoch score is what pruners see; a class absent from a small
validation split must count (as 0) the same way in every metric and view.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from hpo.metrics import evaluate, score

# Four classes; class 3 is neither true nor predicted, class 2 is predicted but never true.
Y_TRUE = np.array([0, 0, 0, 1, 1, 0, 1, 0])
Y_PRED = np.array([0, 2, 0, 1, 0, 0, 1, 2])


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        # F1 per class: 0 -> 2/3 (tp 3, fp 1, fn 2), 1 -> 4/5, 2 -> 0, 3 -> 0 (absent).
        ("macro_f1", (2 / 3 + 4 / 5) / 4),
        ("weighted_f1", (5 * 2 / 3 + 3 * 4 / 5) / 8),
        ("accuracy", 5 / 8),
        ("balanced_accuracy", (3 / 5 + 2 / 3) / 2),  # recall of the classes present
    ],
)
def test_score_by_hand(metric: str, expected: float) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = score(metric, Y_TRUE, Y_PRED, 4)
    assert value == pytest.approx(expected)
    assert isinstance(value, float)
    assert not caught, [str(w.message) for w in caught]  # undefined classes are expected


def test_score_agrees_with_evaluate_and_scikit_learn() -> None:
    proba = np.eye(4)[Y_PRED] * 0.7 + 0.075
    ev = evaluate(Y_TRUE, proba).scalars()
    for metric in ("macro_f1", "weighted_f1", "accuracy", "balanced_accuracy"):
        assert score(metric, Y_TRUE, Y_PRED, 4) == pytest.approx(ev[metric]), metric
    assert ev["accuracy"] == accuracy_score(Y_TRUE, Y_PRED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ev["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED))
    labels = np.arange(4)
    assert ev["macro_f1"] == pytest.approx(
        f1_score(Y_TRUE, Y_PRED, labels=labels, average="macro", zero_division=0)
    )


def test_unknown_metric_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown metric 'roc_auc'"):
        score("roc_auc", Y_TRUE, Y_PRED, 4)


def test_evaluate_with_a_class_missing_in_the_middle() -> None:
    """Class 1 has no image in this split; classes 0 and 2 still get their curves."""
    y = np.array([0, 0, 2, 2, 0, 2])
    proba = np.array(
        [
            [0.80, 0.10, 0.10],
            [0.30, 0.05, 0.65],
            [0.20, 0.10, 0.70],
            [0.15, 0.15, 0.70],
            [0.60, 0.20, 0.20],
            [0.45, 0.05, 0.50],
        ]
    )
    ev = evaluate(y, proba)
    assert ev.f1_per_class == pytest.approx([0.8, 0.0, 6 / 7]), "absent class 1 must count 0"
    assert ev.macro_f1 == pytest.approx((0.8 + 6 / 7) / 3)
    assert ev.confusion_matrix == [[2, 0, 1], [0, 0, 0], [0, 0, 3]]
    assert ev.roc_curves[1] == {"fpr": [], "tpr": [], "auc": None}
    assert ev.roc_curves[0]["auc"] is not None and ev.roc_curves[2]["auc"] is not None
    assert ev.roc_auc == pytest.approx((ev.roc_curves[0]["auc"] + ev.roc_curves[2]["auc"]) / 2)


def test_never_true_never_predicted_class_counts_zero_in_evaluate() -> None:
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1]])
    ev = evaluate(y, proba)
    assert ev.f1_per_class == [1.0, 1.0, 0.0] and ev.macro_f1 == pytest.approx(2 / 3)
    assert ev.confusion_matrix == [[2, 0, 0], [0, 2, 0], [0, 0, 0]]


def test_stored_curves_are_rounded_to_five_digits_and_auc_to_six() -> None:
    from sklearn.metrics import roc_auc_score, roc_curve

    # Seven negatives: false-positive rates are sevenths (0.571428...).
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    p1 = np.array([0.9, 0.8, 0.7, 0.65, 0.6, 0.5, 0.4, 0.3, 0.55, 0.2])
    ev = evaluate(y, np.stack([1 - p1, p1], axis=1))
    curve = ev.roc_curves[1]
    fpr, tpr, _ = roc_curve(y == 1, p1)
    assert curve["fpr"] == [round(float(v), 5) for v in fpr]
    assert curve["tpr"] == [round(float(v), 5) for v in tpr]
    assert any(round(float(v), 6) != round(float(v), 5) for v in fpr)  # the premise
    auc = float(roc_auc_score(y == 1, p1))
    assert round(auc, 7) != round(auc, 6) and curve["auc"] == round(auc, 6)


def test_long_curves_keep_their_first_point() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 300)
    p1 = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    curve = evaluate(y, np.stack([1 - p1, p1], axis=1)).roc_curves[1]
    assert len(curve["fpr"]) == 60
    assert (curve["fpr"][0], curve["tpr"][0]) == (0.0, 0.0)
    assert (curve["fpr"][-1], curve["tpr"][-1]) == (1.0, 1.0)


def test_support_and_constraint_values() -> None:
    from hpo.metrics import constraint_values, support_per_class

    confusion = [[2, 1, 0], [1, 1, 1], [0, 0, 0]]
    assert support_per_class(confusion) == [3, 3, 0]
    # Recall of "b" is 1/3: the floor 0.5 is missed by 0.1666666..., stored to 6 digits.
    values = constraint_values(["a", "b", "c"], confusion, min_recall={"b": 0.5})
    assert values == {"min_recall:b": 0.166667}
    # A size cap needs both the cap and the model's size.
    assert constraint_values(["a"], [[1]], min_recall={}, max_params=None, n_params=7) == {}
    assert constraint_values(["a"], [[1]], min_recall={}, max_params=3, n_params=7) == {
        "max_params": round(7 / 3 - 1, 6)
    }
