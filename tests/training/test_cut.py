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


def test_a_cut_inside_a_residual_block_moves_down() -> None:
    from hpo.models import build_backbone

    base = build_backbone("mobilenet_v2", (32, 32, 3), None)
    # The top 12 layers end inside block_16; block_15's output feeds both its
    # add and block_16's expansion, so the cut must move to a separating layer.
    cut = find_cut(base, 12)
    assert cut.moved, cut
    assert cut.wanted is not None and cut.layer is not None
