"""Metrics on hand-made predictions, checked against scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    roc_auc_score,
)

from hpo.metrics import Evaluation, evaluate, macro_f1

# Four images per class, three classes; argmax gives 0 1 0 0 | 1 1 2 1 | 2 2 2 0.
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
PROBA = np.array(
    [
        [0.8, 0.1, 0.1],
        [0.3, 0.6, 0.1],
        [0.7, 0.2, 0.1],
        [0.5, 0.4, 0.1],
        [0.2, 0.7, 0.1],
        [0.1, 0.8, 0.1],
        [0.1, 0.3, 0.6],
        [0.3, 0.4, 0.3],
        [0.1, 0.1, 0.8],
        [0.2, 0.2, 0.6],
        [0.1, 0.4, 0.5],
        [0.6, 0.2, 0.2],
    ]
)
Y_PRED = np.array([0, 1, 0, 0, 1, 1, 2, 1, 2, 2, 2, 0])


def test_hand_made_predictions_have_the_argmax_we_expect() -> None:
    np.testing.assert_array_equal(PROBA.argmax(axis=1), Y_PRED)


def test_scores_equal_scikit_learn() -> None:
    ev = evaluate(Y_TRUE, PROBA)
    assert ev.macro_f1 == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    assert ev.weighted_f1 == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="weighted"))
    assert ev.accuracy == pytest.approx(accuracy_score(Y_TRUE, Y_PRED)) == 9 / 12
    assert ev.balanced_accuracy == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED))
    expected_auc = np.mean([roc_auc_score(k == Y_TRUE, PROBA[:, k]) for k in range(3)])
    assert ev.roc_auc == pytest.approx(expected_auc)
    assert ev.roc_auc == pytest.approx(
        roc_auc_score(Y_TRUE, PROBA, multi_class="ovr", average="macro")
    )


def test_per_class_f1_and_confusion_matrix_by_hand() -> None:
    ev = evaluate(Y_TRUE, PROBA)
    # class 0: tp 3, fp 1, fn 1; class 1: tp 3, fp 1, fn 1; class 2: tp 3, fp 1, fn 1.
    assert ev.f1_per_class == pytest.approx([0.75, 0.75, 0.75])
    assert ev.macro_f1 == pytest.approx(0.75)
    assert ev.confusion_matrix == [[3, 1, 0], [0, 3, 1], [1, 0, 3]]


def test_perfect_and_inverted_predictions() -> None:
    onehot = np.eye(3)[Y_TRUE]
    perfect = evaluate(Y_TRUE, onehot)
    assert perfect.macro_f1 == 1.0 and perfect.accuracy == 1.0 and perfect.roc_auc == 1.0
    assert perfect.confusion_matrix == np.diag([4, 4, 4]).tolist()
    inverted = evaluate(Y_TRUE, 1.0 - onehot)
    assert inverted.roc_auc == 0.0


def test_imbalance_shows_in_macro_not_accuracy() -> None:
    # 18 majority images all right, 2 minority images all called majority.
    y = np.array([0] * 18 + [1] * 2)
    proba = np.tile([0.9, 0.1], (20, 1))
    ev = evaluate(y, proba)
    assert ev.accuracy == pytest.approx(0.9)
    assert ev.f1_per_class[1] == 0.0
    assert ev.macro_f1 == pytest.approx(f1_score(y, proba.argmax(1), average="macro"))
    assert ev.macro_f1 < 0.5


def test_class_absent_from_y_true() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    proba = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.5, 0.1, 0.4],
            [0.2, 0.7, 0.1],
            [0.1, 0.3, 0.6],
            [0.6, 0.3, 0.1],
            [0.4, 0.5, 0.1],
        ]
    )
    ev = evaluate(y, proba)
    assert len(ev.f1_per_class) == 3 and len(ev.roc_curves) == 3
    assert ev.roc_curves[2] == {"fpr": [], "tpr": [], "auc": None}
    assert ev.f1_per_class[2] == 0.0  # never true, predicted once: zero, not an error
    assert ev.confusion_matrix[2] == [0, 0, 0]
    assert [row[2] for row in ev.confusion_matrix] == [0, 1, 0]
    present = [roc_auc_score(y == k, proba[:, k]) for k in (0, 1)]
    assert ev.roc_auc == pytest.approx(np.mean(present))
    expected_macro = f1_score(y, proba.argmax(1), labels=[0, 1, 2], average="macro")
    assert ev.macro_f1 == pytest.approx(expected_macro)


def test_a_single_class_in_y_true_has_no_auc() -> None:
    y = np.zeros(5, dtype=int)
    proba = np.tile([0.6, 0.4], (5, 1))
    ev = evaluate(y, proba)
    assert ev.roc_auc is None
    assert all(curve["auc"] is None for curve in ev.roc_curves)
    assert ev.accuracy == 1.0


def test_labels_as_column_vector_and_floats() -> None:
    ev = evaluate(Y_TRUE.reshape(-1, 1).astype(float), PROBA)
    assert ev == evaluate(Y_TRUE, PROBA)


def test_roc_curves_are_thinned_and_monotone() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 200)
    proba = rng.dirichlet(np.ones(3), size=600)
    proba[np.arange(600), y] += 0.2
    proba /= proba.sum(axis=1, keepdims=True)
    ev = evaluate(y, proba)
    for k, curve in enumerate(ev.roc_curves):
        assert 2 <= len(curve["fpr"]) <= 60 and len(curve["fpr"]) == len(curve["tpr"])
        assert curve["fpr"][0] == 0.0 and curve["fpr"][-1] == 1.0
        assert curve["tpr"][-1] == 1.0
        assert np.all(np.diff(curve["fpr"]) >= 0) and np.all(np.diff(curve["tpr"]) >= 0)
        assert curve["auc"] == pytest.approx(roc_auc_score(y == k, proba[:, k]), abs=1e-5)


def test_output_is_json_serializable() -> None:
    ev = evaluate(Y_TRUE, PROBA)
    text = json.dumps(ev.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["macro_f1"] == pytest.approx(ev.macro_f1)
    assert back["confusion_matrix"] == ev.confusion_matrix
    assert Evaluation(**back) == ev
    assert set(ev.scalars()) == {
        "macro_f1",
        "weighted_f1",
        "accuracy",
        "balanced_accuracy",
        "roc_auc",
    }
    json.dumps(evaluate(np.zeros(4, dtype=int), np.tile([0.5, 0.5], (4, 1))).to_dict())


def test_macro_f1_counts_unseen_classes_as_zero() -> None:
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 0, 1, 1])
    assert macro_f1(y_true, y_pred, 2) == 1.0
    # A third class neither present nor predicted still counts, as 0.
    assert macro_f1(y_true, y_pred, 3) == pytest.approx(2 / 3)
    assert macro_f1(Y_TRUE, Y_PRED, 3) == pytest.approx(evaluate(Y_TRUE, PROBA).macro_f1)
