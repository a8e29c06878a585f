"""hpo.backbones: one keras-free table read by the study file and the model builder."""

from __future__ import annotations

import pytest

from hpo import backbones, config, models
from hpo.config import validate_config
from hpo.errors import ConfigError


def test_config_and_models_read_the_one_table() -> None:
    assert config.BACKBONES == backbones.NAMES == tuple(models.BACKBONES)
    assert models.BACKBONES is backbones.BACKBONES
    assert {n: b.min_size for n, b in backbones.BACKBONES.items()} == config.BACKBONE_MIN_SIZE


def test_unknown_backbone_names_the_allowed_ones() -> None:
    with pytest.raises(KeyError, match="allowed: small_cnn, mobilenet_v2"):
        backbones.backbone("alexnet")


def test_only_our_cnn_lacks_imagenet_weights() -> None:
    without = [b.name for b in backbones.BACKBONES.values() if not b.imagenet]
    assert without == ["small_cnn"]
    data = {
        "study": {"name": "t"},
        "dataset": {"source": "digits", "image_size": 16, "channels": 1},
        "model": {"backbone": "small_cnn", "weights": "imagenet"},
    }
    with pytest.raises(ConfigError, match="small_cnn has no ImageNet weights"):
        validate_config(data)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["small_cnn", "vgg16", "mobilenet_v2"])
def test_depth_matches_the_built_backbone(name: str) -> None:
    keras = pytest.importorskip("keras")
    spec = backbones.backbone(name)
    built = models.build_backbone(name, (32, 32, 3), None)
    layers = [la for la in built.layers if not isinstance(la, keras.layers.InputLayer)]
    assert len(layers) == spec.depth
    keras.backend.clear_session()
