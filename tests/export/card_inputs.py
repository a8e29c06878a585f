"""A model card's inputs built by hand: known values, names that need escaping.

Used by ``test_card`` and by the wheel test, which renders a card from an
installed copy of hpo.
"""

from __future__ import annotations

from typing import Any

from hpo.export import Estimate, GradCamSample, TestMetrics

CLASSES = ["glioma <b>", "meningioma & co", 'no "tumour"']

OVERALL_VALUES = {
    "macro_f1": (0.8123, 0.7511, 0.8702),
    "weighted_f1": (0.8234, 0.7622, 0.8813),
    "accuracy": (0.8345, 0.7733, 0.8924),
    "balanced_accuracy": (0.8056, 0.7444, 0.8635),
    "macro_precision": (0.8167, 0.7555, 0.8746),
    "macro_recall": (0.8078, 0.7466, 0.8657),
    "roc_auc": (0.9312, 0.9001, 0.9587),
}

# 1x1 transparent PNG: the card embeds it as is.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def sample_metrics() -> TestMetrics:
    per_class = [
        {
            key: Estimate(round(0.7 + 0.1 * k + 0.01 * j, 4), 0.5, 0.95)
            for j, key in enumerate(("f1", "precision", "recall", "roc_auc"))
        }
        for k in range(len(CLASSES))
    ]
    return TestMetrics(
        class_names=list(CLASSES),
        support=[11, 7, 13],
        overall={k: Estimate(*v) for k, v in OVERALL_VALUES.items()},
        per_class=per_class,
        confusion_matrix=[[9, 1, 1], [1, 5, 1], [0, 1, 12]],
        roc_curves=[{"fpr": [0.0, 0.1, 1.0], "tpr": [0.0, 0.9, 1.0], "auc": 0.93}] * 3,
        n_bootstrap=200,
        seed=7,
    )


def metadata(objective: str = "macro_f1") -> dict[str, Any]:
    return {
        "study": "brain <mri>",
        "trial": 4,
        "created": "2026-01-02T03:04:05+00:00",
        "search_value": 0.7777,
        "objective": objective,
        "train_on": "train",
        "backbone": "efficientnet_b0",
        "weights": "imagenet",
        "pooling": "avg",
        "input_shape": [64, 64, 3],
        "params": {"learning_rate": 0.001, "dropout": 0.2},
        "training": {"head_epochs": 3, "finetune_epochs": 2, "epochs_run": 5},
        "dataset": {
            "source": "directory",
            "sha256": "ab" * 32,
            "split_counts": {
                s: {c: 10 + i for i, c in enumerate(CLASSES)} for s in ("train", "val", "test")
            },
        },
        "model_file": "model.keras",
        "model_sha256": "cd" * 32,
        "gradcam": {"layer": "top_conv", "backbone": "efficientnetb0", "per_class": 1},
        "test_used_before": 0,
        "versions": {"hpo": "0.1.0"},
    }


def gradcam() -> list[GradCamSample]:
    return [
        GradCamSample(index=3, true_class=0, predicted_class=0, probability=0.91, png=PNG),
        GradCamSample(index=8, true_class=1, predicted_class=2, probability=0.55, png=PNG),
    ]
