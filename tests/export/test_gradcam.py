"""Grad-CAM points at the region that decides the class.

Synthetic 32x32 noise images: class "bright" has a bright square somewhere in
the top-left quadrant, class "dark" a dark square somewhere in the top-right.
The two quadrants are not mirror images across the diagonal, so a transposed
or flipped heatmap lands in a wrong quadrant and fails.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from hpo.config import HYPERPARAMETER_DEFAULTS, validate_config
from hpo.data import Dataset, Split

SIZE = 32
HALF = SIZE // 2
SQUARE = 8
# (row, column) of each class's quadrant, in quadrant units.
QUADRANT = {0: (0, 0), 1: (0, 1)}


def _images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(60, 180, size=(n, SIZE, SIZE, 1)).astype(np.uint8)
    y = (np.arange(n) % 2).astype(np.int64)
    for i, k in enumerate(y):
        qr, qc = QUADRANT[int(k)]
        r, c = rng.integers(1, HALF - SQUARE, size=2)
        x[i, qr * HALF + r : qr * HALF + r + SQUARE, qc * HALF + c : qc * HALF + c + SQUARE] = (
            255 if k == 0 else 0
        )
    return x, y


def _quadrant_shares(heat: np.ndarray) -> np.ndarray:
    """(2, 2) share of the heatmap's mass per quadrant."""
    shares = heat.reshape(2, HALF, 2, HALF).sum(axis=(1, 3))
    return np.asarray(shares / max(float(shares.sum()), 1e-12))


@pytest.fixture(scope="module")
def trained() -> tuple[object, Split]:
    from hpo.training import configure_tensorflow, train_and_evaluate

    configure_tensorflow()
    rng = np.random.default_rng(0)
    dataset = Dataset(
        ["bright, top-left", "dark, top-right"],
        Split(*_images(160, rng)),
        Split(*_images(40, rng)),
        Split(*_images(40, rng)),
        sha256="synthetic",
        source="synthetic",
    )
    config = validate_config(
        {
            "study": {"name": "gradcam"},
            "dataset": {"source": "digits", "image_size": SIZE, "channels": 1},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 6},
        }
    )
    params = {**HYPERPARAMETER_DEFAULTS, "learning_rate": 3e-3, "dropout": 0.0, "batch_size": 16}
    params["dense_units"] = 32
    result = train_and_evaluate(config, dataset, params, keep_model=True)
    assert result.evaluation.accuracy >= 0.95, result.curve  # the premise: it learned the task
    return result.model, dataset.test


@pytest.mark.slow
def test_heatmap_lies_on_the_deciding_region(trained: tuple[object, Split]) -> None:
    from hpo.export import GradCam

    model, test = trained
    cam = GradCam(model)  # type: ignore[arg-type]
    # small_cnn ends in a max pool; the map before it has twice the resolution.
    assert cam.target.layer == "block3_relu2"
    assert cam.target.feature_shape[:2] == (8, 8)
    cam.check(test.x)

    heat, proba = cam.heatmaps(test.x, test.y)
    assert heat.shape == (len(test), SIZE, SIZE)
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    assert (proba.argmax(axis=1) == test.y).mean() >= 0.9

    hits = 0
    for h, k in zip(heat, test.y, strict=True):
        shares = _quadrant_shares(h)
        peak = np.unravel_index(h.argmax(), h.shape)
        want = QUADRANT[int(k)]
        in_quadrant = (int(peak[0] >= HALF), int(peak[1] >= HALF)) == want
        hits += int(in_quadrant and shares[want] == shares.max() and shares[want] > 0.4)
    assert hits >= 0.85 * len(test), f"{hits}/{len(test)} heatmaps on the deciding square"

    # Explaining the predicted class (the default) gives the same maps here.
    default, _ = cam.heatmaps(test.x)
    assert np.allclose(default, heat, atol=1e-5)


def test_nested_keras_application_backbone() -> None:
    """A keras.applications backbone: the last conv map inside it, checked against the model."""
    from hpo.export import GradCam
    from hpo.training import configure_tensorflow

    configure_tensorflow()
    from hpo.models import build_model

    model, _ = build_model(
        "mobilenet_v2",
        input_shape=(32, 32, 3),
        n_classes=3,
        weights=None,
        params=HYPERPARAMETER_DEFAULTS,
    )
    images = np.random.default_rng(1).integers(0, 255, size=(4, 32, 32, 3)).astype(np.uint8)
    cam = GradCam(model)
    assert cam.target.backbone.startswith("mobilenetv2")
    assert cam.target.layer == "out_relu"
    cam.check(images)
    heat, proba = cam.heatmaps(images, np.array([0, 1, 2, 0]))
    assert heat.shape == (4, 32, 32) and proba.shape == (4, 3)
    assert np.isfinite(heat).all()


def test_overlay_is_a_png_of_image_and_heatmap_side_by_side() -> None:
    from PIL import Image

    from hpo.export import overlay_png

    image = np.zeros((16, 16, 1), dtype=np.uint8)
    heat = np.zeros((16, 16))
    heat[:8, :8] = 1.0
    png = overlay_png(image, heat, size=64)
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG" and img.size == (64 * 2 + 6, 64)
        rgb = np.asarray(img.convert("RGB")).astype(int)
    left, right = rgb[:, :64], rgb[:, 70:]
    assert left.max() == 0  # the black image, untouched
    hot, cold = right[:32, :32].mean(axis=(0, 1)), right[32:, 32:].mean(axis=(0, 1))
    assert hot[0] > cold[0] + 50 and cold[2] > hot[2]  # red where the map is high, blue elsewhere
