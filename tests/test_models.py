from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from hpo.errors import ConfigError  # noqa: E402
from hpo.models import (  # noqa: E402
    BACKBONES,
    ImagePreprocessing,
    build_backbone,
    build_model,
    set_trainable_top,
)

PARAMS = {"dense_units": 24, "dropout": 0.25, "l1": 1e-5, "l2": 1e-4}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_each_backbone_builds_and_trains_a_step(backbone: str) -> None:
    model, _base = build_model(
        backbone, input_shape=(32, 32, 3), n_classes=3, weights=None, params=PARAMS
    )
    # Eager: one step needs no graph tracing, which dominates on big backbones.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    x = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3)).astype("uint8")
    before = [w.copy() for w in model.get_layer("predictions").get_weights()]
    model.fit(x, np.array([0, 1, 2, 0]), batch_size=4, epochs=1, verbose=0)
    after = model.get_layer("predictions").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    assert model.output_shape == (None, 3)
    dense = model.get_layer("head_dense")
    assert dense.units == 24
    assert dense.kernel_regularizer.l1 == pytest.approx(1e-5)
    assert dense.kernel_regularizer.l2 == pytest.approx(1e-4)
    assert model.get_layer("head_dropout").rate == pytest.approx(0.25)
    assert model.get_layer("predictions").activation.__name__ == "softmax"
    keras.backend.clear_session()


def test_unfreezing_depth_is_honoured() -> None:
    base = build_backbone("mobilenet_v2", (32, 32, 3), None)
    layers = [layer for layer in base.layers if not isinstance(layer, keras.layers.InputLayer)]
    unfrozen = set_trainable_top(base, 12)
    top = layers[-12:]
    expected = [
        layer.name for layer in top if not isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert unfrozen == expected
    for layer in layers:
        if layer.name in expected:
            assert layer.trainable
        else:
            assert not layer.trainable, layer.name
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in top)
    assert set_trainable_top(base, 0) == []
    assert not any(layer.trainable for layer in layers)
    keras.backend.clear_session()


def test_bad_inputs_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too small for resnet50"):
        build_backbone("resnet50", (16, 16, 3), None)
    with pytest.raises(ConfigError, match="needs 3 channels"):
        build_backbone("vgg16", (32, 32, 1), "imagenet")
    with pytest.raises(ConfigError, match="does not exist"):
        build_backbone("small_cnn", (16, 16, 1), str(tmp_path / "nope.weights.h5"))


def test_local_weights_file(tmp_path: Path) -> None:
    first = build_backbone("small_cnn", (16, 16, 1), None)
    path = tmp_path / "cnn.weights.h5"
    first.save_weights(path)
    second = build_backbone("small_cnn", (16, 16, 1), str(path))
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="does not fit"):
        build_backbone("small_cnn", (16, 16, 3), str(path))
    keras.backend.clear_session()


def test_preprocessing_modes_and_safe_reload(tmp_path: Path) -> None:
    x = np.array([[[[0.0, 127.5, 255.0]]]], dtype="float32")
    assert np.allclose(ImagePreprocessing("unit")(x), [[[[0, 0.5, 1]]]])
    assert np.allclose(ImagePreprocessing("tf")(x), [[[[-1, 0, 1]]]])
    caffe = np.asarray(ImagePreprocessing("caffe")(x))
    assert np.allclose(caffe, [[[[255 - 103.939, 127.5 - 116.779, 0 - 123.68]]]])
    model, _ = build_model(
        "small_cnn", input_shape=(16, 16, 1), n_classes=2, weights=None, params=PARAMS
    )
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    batch = np.random.default_rng(1).integers(0, 255, (3, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(
        model.predict(batch, verbose=0), again.predict(batch, verbose=0), rtol=1e-5
    )
    keras.backend.clear_session()
