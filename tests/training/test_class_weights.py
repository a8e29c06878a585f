"""``training.class_weights: balanced`` changes what a model learns on imbalanced data.

Medical datasets are imbalanced (1 % Moderate_Demented in the Kaggle set);
the README promises balanced class weights by default. On a 1:9 set whose
classes overlap, an unweighted model learns the prior and never predicts the
rare class; weighted by n / (k * count) it predicts it for most rare images.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from hpo.config import HYPERPARAMETER_DEFAULTS, StudyConfig, validate_config
from hpo.data import Dataset, Split
from hpo.training import TrainResult, class_weights, clear_session, train_and_evaluate

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    yield
    clear_session()


def imbalanced(seed: int = 0) -> Dataset:
    """Flat 8x8 images whose brightness is N(100, 20) for "common", N(120, 20) for "rare".

    The classes overlap: at a 1:9 prior the best unweighted rule says "common"
    almost always (rare recall ~5 %); with balanced weights the threshold moves
    to the midpoint (rare recall ~70 %).
    """
    rng = np.random.default_rng(seed)

    def part(common: int, rare: int) -> Split:
        y = np.array([0] * common + [1] * rare, dtype=np.int64)
        level = rng.normal(100 + 20 * y, 20)
        x = level[:, None, None, None] + rng.normal(0, 3, size=(len(y), 8, 8, 1))
        return Split(np.clip(x, 0, 255).astype(np.uint8), y)

    return Dataset(
        class_names=["common", "rare"],
        train=part(540, 60),
        val=part(180, 20),
        test=part(9, 1),
        sha256="imbalanced-1-to-9",
        source="npz",
    )


def config(weights: str) -> StudyConfig:
    return validate_config(
        {
            "study": {"name": "class-weights"},
            "dataset": {"source": "digits", "image_size": 8, "channels": 1},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 5, "class_weights": weights},
        }
    )


def train(weights: str, dataset: Dataset) -> tuple[TrainResult, float]:
    params = {**HYPERPARAMETER_DEFAULTS, "batch_size": 16, "learning_rate": 3e-3}
    result = train_and_evaluate(config(weights), dataset, params, keep_model=True)
    proba = result.model.predict(dataset.val.x, verbose=0)
    return result, float(proba[:, 1].mean())


def rare_recall(result: TrainResult) -> float:
    confusion = np.asarray(result.evaluation.confusion_matrix)
    return float(confusion[1, 1] / confusion[1].sum())


def test_balanced_weights_make_the_rare_class_visible() -> None:
    dataset = imbalanced()
    assert class_weights(dataset.train.y, 2) == pytest.approx({0: 600 / 1080, 1: 600 / 120})
    plain, plain_p = train("none", dataset)
    balanced, balanced_p = train("balanced", dataset)
    # The premise: unweighted, the model learns the 1:9 prior and misses the rare class.
    assert rare_recall(plain) <= 0.15 and plain_p < 0.25, (rare_recall(plain), plain_p)
    assert rare_recall(balanced) >= 0.4, (
        f"with class_weights: balanced the rare class's recall is {rare_recall(balanced):.2f} "
        f"(unweighted {rare_recall(plain):.2f}): the weights did not reach training"
    )
    assert balanced_p > 2 * plain_p, (
        f"mean predicted P(rare) {balanced_p:.3f} balanced vs {plain_p:.3f} unweighted: "
        "balanced weights should pull it toward 0.5"
    )
    # What the weights trade for: balanced accuracy up (macro F1 may go either way here).
    assert balanced.evaluation.balanced_accuracy > plain.evaluation.balanced_accuracy + 0.05
