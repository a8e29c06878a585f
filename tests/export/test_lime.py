"""LIME's top superpixels lie on the region that decides the class.

The model and images of ``test_gradcam``: a bright square in the top-left
quadrant for one class, a dark square in the top-right for the other.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from hpo.data import Split
from tests.export.test_gradcam import HALF, QUADRANT, SIZE, trained  # noqa: F401

SAMPLES = 80  # small: a test, not a card
N_IMAGES = 16


@pytest.mark.slow
def test_top_superpixels_lie_on_the_deciding_square(
    trained: tuple[object, Split],  # noqa: F811
) -> None:
    from hpo.export._lime import N_SEGMENTS, explain

    model, test = trained
    hits = 0
    for i in range(N_IMAGES):
        lime = explain(model, test.x[i], n_samples=SAMPLES, seed=i)  # type: ignore[arg-type]
        assert lime.segments.shape == (SIZE, SIZE)
        assert 4 <= lime.segments.max() + 1 <= 2 * N_SEGMENTS
        assert lime.explained_class == int(test.y[i])  # the model gets these right
        best = lime.segments == lime.top[0]
        rows, cols = np.nonzero(best)
        want = QUADRANT[int(test.y[i])]
        centre = (int(rows.mean() >= HALF), int(cols.mean() >= HALF))
        hits += int(centre == want)
    assert hits >= 0.8 * N_IMAGES, f"{hits}/{N_IMAGES} top superpixels on the deciding square"


@pytest.mark.slow
def test_explanation_is_seeded_and_drawn(trained: tuple[object, Split]) -> None:  # noqa: F811
    from PIL import Image

    from hpo.export._lime import explain, lime_png

    model, test = trained
    a = explain(model, test.x[0], n_samples=20, seed=3)  # type: ignore[arg-type]
    b = explain(model, test.x[0], n_samples=20, seed=3)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a.weights, b.weights)
    heat = a.heatmap()
    assert heat.shape == (SIZE, SIZE) and heat.min() >= 0.0 and heat.max() <= 1.0
    with Image.open(io.BytesIO(lime_png(test.x[0], a, size=160))) as img:
        assert img.format == "PNG" and img.size == (160, 160)
        rgb = np.asarray(img.convert("RGB"))
    assert ((rgb == (255, 220, 0)).all(axis=-1)).any()  # the top superpixels are outlined


def test_too_few_samples_is_refused() -> None:
    from hpo.export._lime import explain

    image = np.zeros((8, 8, 1), dtype=np.uint8)
    with pytest.raises(ValueError, match="at least 2 samples"):
        explain(None, image, n_samples=1)  # type: ignore[arg-type]


def test_card_shows_lime_beside_gradcam_and_states_the_method() -> None:
    from dataclasses import replace
    from html import unescape

    from hpo.export._card import render_card
    from hpo.export._lime import method
    from tests.export.card_inputs import PNG, gradcam, metadata, sample_metrics

    meta = metadata()
    samples = [replace(s, lime_png=PNG) for s in gradcam()]
    meta["gradcam"] = {**meta["gradcam"], "lime": method(150)}
    page = unescape(render_card(metadata=meta, metrics=sample_metrics(), gradcam=samples))
    assert page.count('alt="LIME of ') == len(samples)
    assert 'id="lime-method"' in page and "150" in page and "SLIC (scikit-image)" in page
    # Without LIME the card says so and draws no LIME panel.
    meta["gradcam"]["lime"] = None
    page = unescape(render_card(metadata=meta, metrics=sample_metrics(), gradcam=gradcam()))
    assert 'alt="LIME of ' not in page and "--lime-samples 0" in page
