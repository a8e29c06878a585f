"""hpo.training._cut: splitting a backbone so the lower part can be cached."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from hpo.config import HYPERPARAMETER_DEFAULTS
from hpo.training import (
    Cut,
    clear_session,
    configure_tensorflow,
    find_cut,
    lower_model,
    upper_model,
)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    configure_tensorflow()
    yield
    clear_session()


@pytest.mark.parametrize(
    ("unfrozen", "cut"),
    [
        (0, Cut(20, "block3_pool", "block3_pool")),
        (4, Cut(16, "block3_relu1", "block3_relu1")),
        (21, Cut(-1, None, None)),
    ],
)
def test_a_plain_stack_is_cut_just_below_the_unfrozen_layers(unfrozen: int, cut: Cut) -> None:
    from hpo.models import build_backbone

    assert find_cut(build_backbone("small_cnn", (16, 16, 1), None), unfrozen) == cut


@pytest.mark.parametrize(
    ("backbone", "unfrozen"),
    [("mobilenet_v2", 3), ("mobilenet_v2", 12), ("mobilenet_v2", 40), ("resnet50", 9)],
)
def test_the_cut_reproduces_residual_backbones(backbone: str, unfrozen: int) -> None:
    """Lower part then upper part equals the whole backbone, wherever the cut landed."""
    from hpo.models import build_model

    model, base = build_model(
        backbone,
        input_shape=(32, 32, 3),
        n_classes=3,
        weights=None,
        params=HYPERPARAMETER_DEFAULTS,
    )
    cut = find_cut(base, unfrozen)
    assert cut.layer is not None
    layers = [la.name for la in base.layers[1:]]
    # The cut lies at or below the unfrozen layers, never inside them.
    assert layers.index(cut.layer) <= len(layers) - unfrozen - 1
    images = np.random.default_rng(0).integers(0, 255, size=(4, 32, 32, 3)).astype(np.uint8)
    whole = keras_backbone_output(model, base, images)
    split = upper_model(base, cut.layer).predict(
        lower_model(model, base, cut.layer).predict(images, verbose=0), verbose=0
    )
    np.testing.assert_allclose(split, whole, rtol=1e-4, atol=1e-4)


def keras_backbone_output(model: object, base: object, images: np.ndarray) -> np.ndarray:
    import keras

    image = keras.Input(shape=(32, 32, 3))
    full = keras.Model(image, base(model.get_layer("preprocess")(image)))  # type: ignore[attr-defined, operator]
    return np.asarray(full.predict(images, verbose=0))


@pytest.mark.parametrize(
    ("backbone", "unfrozen", "expected"),
    [
        # The top 12 layers start at block_15_add. The layer below them,
        # block_15_project_BN, is inside block 15, whose shortcut runs from
        # block_14_add to block_15_add: only the block's input separates the graph.
        ("mobilenet_v2", 12, Cut(132, "block_14_add", "block_15_project_BN")),
        ("mobilenet_v2", 40, Cut(105, "block_11_add", "block_12_project")),
        # Inside conv5_block3 the cut moves to that block's input, conv5_block2_out.
        ("resnet50", 9, Cut(163, "conv5_block2_out", "conv5_block3_1_conv")),
        # Just below a block's output nothing bypasses: the cut stays.
        ("mobilenet_v2", 3, Cut(149, "block_16_project_BN", "block_16_project_BN")),
    ],
)
def test_a_cut_inside_a_residual_block_moves_to_the_blocks_input(
    backbone: str, unfrozen: int, expected: Cut
) -> None:
    from hpo.models import build_backbone

    base = build_backbone(backbone, (32, 32, 3), None)
    cut = find_cut(base, unfrozen)
    assert cut == expected, f"top {unfrozen} of {backbone}: cut at {cut}, expected {expected}"
    assert cut.moved is (expected.layer != expected.wanted)
    assert [layer.name for layer in base.layers[1:]][cut.index] == cut.layer
