"""hpo.training._cached: training from cached features gives the model training on images gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hpo import cache as cache_mod
from hpo import data as data_mod
from hpo.config import HYPERPARAMETER_DEFAULTS, validate_config
from hpo.data import load_dataset
from hpo.errors import ConfigError
from hpo.training import (
    clear_session,
    configure_tensorflow,
    feature_cache_enabled,
    train_and_evaluate,
)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    configure_tensorflow()
    cache_mod.clear_memory()
    data_mod.clear_cache()
    yield
    cache_mod.clear_memory()
    clear_session()


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """small_cnn weights from one epoch on digits: pretrained, not yet good."""
    configure_tensorflow()
    path = tmp_path_factory.mktemp("weights") / "small_cnn.weights.h5"
    cfg = study_config("none", max_per_class=60, head_epochs=1, finetune_epochs=0)
    result = train_and_evaluate(
        cfg, load_dataset(cfg.dataset), params(learning_rate=3e-3), keep_model=True
    )
    result.model.get_layer("small_cnn").save_weights(path)
    clear_session()
    return path


def study_config(weights: str, *, max_per_class: int = 30, **training: object) -> object:
    return validate_config(
        {
            "study": {"name": "cache"},
            "dataset": {
                "source": "digits",
                "image_size": 16,
                "channels": 1,
                "max_per_class": max_per_class,
            },
            "model": {"backbone": "small_cnn", "weights": weights},
            "training": {"head_epochs": 2, "finetune_epochs": 2, **training},
        }
    )


def params(**kw: object) -> dict[str, object]:
    return {
        **HYPERPARAMETER_DEFAULTS,
        "batch_size": 16,
        "unfrozen_layers": 4,
        "learning_rate": 5e-4,
        **kw,
    }


def run(cfg: object, keep_model: bool = False) -> object:
    return train_and_evaluate(cfg, load_dataset(cfg.dataset), params(), keep_model=keep_model)  # type: ignore[attr-defined]


def test_cached_and_image_training_agree(pretrained: Path, tmp_path: Path) -> None:
    cache_dir = str(tmp_path / "cache")
    every = {"validate_every_epoch": True}  # a 4-point curve, not only the final score
    off = run(study_config(str(pretrained), feature_cache="off", **every), keep_model=True)
    on = run(
        study_config(str(pretrained), feature_cache="on", cache_dir=cache_dir, **every),
        keep_model=True,
    )
    assert off.cache == {"features": "off"}  # type: ignore[attr-defined]
    assert on.cache["features"] == "computed"  # type: ignore[attr-defined]
    assert on.cache["cut"] == "block3_relu1"  # type: ignore[attr-defined]  # below the top 4
    assert on.cache["activations"] == "computed"  # type: ignore[attr-defined]
    # The premise: not a saturated task where any path scores the same.
    assert 0.3 < off.curve[-1] < 0.97, off.curve  # type: ignore[attr-defined]
    # Same seeded head, same batches, same frozen activations: the same numbers, not
    # merely close ones (measured: identical weights and probabilities on this CPU).
    assert on.curve == off.curve, (on.curve, off.curve)  # type: ignore[attr-defined]
    assert len(off.curve) == 4  # type: ignore[attr-defined]
    x_val = load_dataset(study_config(str(pretrained)).dataset).val.x  # type: ignore[attr-defined]
    np.testing.assert_allclose(
        on.model.predict(x_val, verbose=0),  # type: ignore[attr-defined]
        off.model.predict(x_val, verbose=0),  # type: ignore[attr-defined]
        rtol=0,
        atol=1e-6,
        err_msg="the cached path's model predicts differently from the image path's",
    )
    assert on.unfrozen == off.unfrozen  # type: ignore[attr-defined]
    assert on.epochs == off.epochs == 4  # type: ignore[attr-defined]
    for part in ("build", "fit", "predict", "metrics", "total"):
        assert part in on.timing and part in off.timing, part  # type: ignore[attr-defined]
    assert "features" in on.timing and "features" not in off.timing  # type: ignore[attr-defined]
    files = sorted(p.name for p in Path(cache_dir).glob("*.npz"))
    assert len(files) == 4  # pooled features and cut activations, train and val

    # Next trial in this worker: from memory; in a new worker: from disk.
    again = run(study_config(str(pretrained), feature_cache="on", cache_dir=cache_dir, **every))
    assert again.cache["features"] == again.cache["activations"] == "memory"  # type: ignore[attr-defined]
    cache_mod.clear_memory()
    disk = run(study_config(str(pretrained), feature_cache="on", cache_dir=cache_dir, **every))
    assert disk.cache["features"] == disk.cache["activations"] == "disk"  # type: ignore[attr-defined]
    assert disk.curve == on.curve  # type: ignore[attr-defined]
    assert "features" not in disk.timing  # type: ignore[attr-defined]


def test_changed_data_or_weights_miss(pretrained: Path, tmp_path: Path) -> None:
    cache_dir = str(tmp_path / "cache")
    first = run(study_config(str(pretrained), feature_cache="on", cache_dir=cache_dir))
    assert first.cache["features"] == "computed"  # type: ignore[attr-defined]
    fewer = run(
        study_config(str(pretrained), max_per_class=25, feature_cache="on", cache_dir=cache_dir)
    )
    assert fewer.cache["features"] == "computed"  # type: ignore[attr-defined]

    import keras

    other = tmp_path / "other.weights.h5"
    backbone = keras.models.clone_model(_backbone(pretrained))
    backbone.save_weights(other)  # same architecture, new random weights
    changed = run(study_config(str(other), feature_cache="on", cache_dir=cache_dir))
    assert changed.cache["features"] == "computed"  # type: ignore[attr-defined]
    assert len(list(Path(cache_dir).glob("*.npz"))) == 12


def _backbone(weights: Path) -> object:
    from hpo.models import build_backbone

    return build_backbone("small_cnn", (16, 16, 1), str(weights))


def test_auto_mode_and_refusals(pretrained: Path) -> None:
    assert feature_cache_enabled(study_config(str(pretrained)))  # type: ignore[arg-type]
    assert not feature_cache_enabled(study_config(str(pretrained), augment=True))  # type: ignore[arg-type]
    assert not feature_cache_enabled(study_config("none"))  # type: ignore[arg-type]
    # Refused by the study file's validation, before any study or training exists.
    with pytest.raises(ConfigError, match=r"training\.feature_cache: on needs pretrained weights"):
        study_config("none", feature_cache="on")
