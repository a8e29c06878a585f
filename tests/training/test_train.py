"""hpo.training._train: real tiny Keras training through train_and_evaluate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hpo import data as data_mod
from hpo.config import HYPERPARAMETER_DEFAULTS, validate_config
from hpo.data import load_dataset
from hpo.errors import ConfigError, DataError, TrialFailedError
from hpo.training import train_and_evaluate

pytestmark = pytest.mark.slow


def config(**training: object) -> object:
    return validate_config(
        {
            "study": {"name": "t"},
            "dataset": {"source": "digits", "image_size": 16, "channels": 1, "max_per_class": 30},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 2, "validate_every_epoch": True, **training},
        }
    )


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    data_mod.clear_cache()
    yield
    data_mod.clear_cache()


def params(**kw: object) -> dict[str, object]:
    return {**HYPERPARAMETER_DEFAULTS, "batch_size": 16, **kw}


def test_train_reports_every_epoch_and_scores() -> None:
    cfg = config()
    ds = load_dataset(cfg.dataset)  # type: ignore[attr-defined]
    seen: list[tuple[int, float]] = []

    def reporter(step: int, f1: float) -> bool:
        seen.append((step, f1))
        return False

    result = train_and_evaluate(cfg, ds, params(), reporter=reporter)  # type: ignore[arg-type]
    assert [s for s, _ in seen] == [0, 1]
    assert result.epochs == 2 and len(result.curve) == 2
    ev = result.evaluation
    assert 0.0 <= ev.macro_f1 <= 1.0 and len(ev.f1_per_class) == 10
    assert np.asarray(ev.confusion_matrix).sum() == len(ds.val)
    assert result.images_per_second > 0 and not result.pruned


def test_reporter_can_prune() -> None:
    cfg = config(head_epochs=3)
    ds = load_dataset(cfg.dataset)  # type: ignore[attr-defined]
    result = train_and_evaluate(cfg, ds, params(), reporter=lambda s, f: True)  # type: ignore[arg-type]
    assert result.pruned and result.epochs == 1


def test_two_phase_fine_tuning_unfreezes_top_layers(tmp_path: Path) -> None:
    import keras

    from hpo.models import build_backbone

    weights = tmp_path / "cnn.weights.h5"
    build_backbone("small_cnn", (16, 16, 1), None).save_weights(weights)
    cfg = validate_config(
        {
            "study": {"name": "t"},
            "dataset": {"source": "digits", "image_size": 16, "channels": 1, "max_per_class": 20},
            "model": {"backbone": "small_cnn", "weights": str(weights)},
            "training": {"head_epochs": 1, "finetune_epochs": 1},
        }
    )
    ds = load_dataset(cfg.dataset)
    phases: list[str] = []
    result = train_and_evaluate(
        cfg,
        ds,
        params(unfrozen_layers=4),
        keep_model=True,
        on_phase=lambda name, epochs: phases.append(name),
    )
    assert phases == ["frozen", "finetune"]
    # The top 4 layers of the CNN are block3_conv2, block3_bn2, block3_relu2, block3_pool;
    # batch norm stays frozen.
    assert result.unfrozen == ["block3_conv2", "block3_relu2", "block3_pool"]
    backbone = result.model.get_layer("small_cnn")
    assert not backbone.get_layer("block3_bn2").trainable
    assert not backbone.get_layer("block1_conv1").trainable
    assert result.epochs == 2
    keras.backend.clear_session()


def test_without_a_pruner_validation_runs_once_at_the_end() -> None:
    cfg = validate_config(
        {
            "study": {"name": "t"},
            "dataset": {"source": "digits", "image_size": 16, "channels": 1, "max_per_class": 30},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 3},
        }
    )
    ds = load_dataset(cfg.dataset)
    seen: list[tuple[int, float]] = []
    result = train_and_evaluate(
        cfg, ds, params(), reporter=lambda s, f: seen.append((s, f)) or False
    )
    assert result.epochs == 3 and [s for s, _ in seen] == [2]
    assert result.curve == [result.evaluation.macro_f1] == [seen[0][1]]


def test_batch_larger_than_training_set() -> None:
    cfg = config()
    ds = load_dataset(cfg.dataset)  # type: ignore[attr-defined]
    with pytest.raises(DataError, match="larger than"):
        train_and_evaluate(cfg, ds, params(batch_size=100000))  # type: ignore[arg-type]


def test_trial_timeout_fails_the_trial() -> None:
    cfg = config(head_epochs=50, trial_timeout=0.01)
    ds = load_dataset(cfg.dataset)  # type: ignore[attr-defined]
    with pytest.raises(TrialFailedError, match="trial_timeout"):
        train_and_evaluate(cfg, ds, params())  # type: ignore[arg-type]


def test_unknown_optimizer_is_refused_not_replaced_by_adam() -> None:
    cfg = config(head_epochs=1)
    ds = load_dataset(cfg.dataset)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"search_space\.optimizer: 'adagrad' is not allowed"):
        train_and_evaluate(cfg, ds, params(optimizer="adagrad"))  # type: ignore[arg-type]


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adamw"])
def test_each_named_optimizer_trains(optimizer: str) -> None:
    cfg = config(head_epochs=1)
    ds = load_dataset(cfg.dataset)  # type: ignore[attr-defined]
    result = train_and_evaluate(cfg, ds, params(optimizer=optimizer), keep_model=True)  # type: ignore[arg-type]
    assert type(result.model.optimizer).__name__.lower() == optimizer
