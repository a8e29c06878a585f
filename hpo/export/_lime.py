"""LIME for images: which superpixels, switched off, lower the explained class's score.

A second opinion beside Grad-CAM that needs no access to the network's
layers, only its predictions. Our own small LIME (Ribeiro et al., 2016):

* segmentation: SLIC superpixels from scikit-image (``N_SEGMENTS`` asked,
  ``COMPACTNESS``), on the image as the model sees it;
* ``n_samples`` perturbed copies, each superpixel kept with probability 1/2,
  the others filled with the image's mean grey (or colour); the first copy
  is the untouched image;
* weights: exponential kernel (width 0.25) on the cosine distance between a
  copy's on/off vector and the all-on one;
* a weighted ridge regression (scikit-learn, alpha 1) of the class's
  probability on the on/off vector; its coefficients rank the superpixels.

Seeded, so the card is the same on every export of the same model.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

N_SEGMENTS = 25
COMPACTNESS = 0.3  # SLIC on [0, 1] intensities, not Lab: far below scikit-image's default 10
KERNEL_WIDTH = 0.25
TOP = 3  # superpixels outlined as the explanation
_BATCH = 256


def method(n_samples: int) -> dict[str, Any]:
    """How the card and ``model.json`` state the explanation was made."""
    return {
        "samples": n_samples,
        "segmentation": f"SLIC (scikit-image), {N_SEGMENTS} superpixels asked, "
        f"compactness {COMPACTNESS}",
        "hidden_with": "the image's mean value",
        "kernel": f"exponential on cosine distance, width {KERNEL_WIDTH}",
        "surrogate": "weighted ridge regression (scikit-learn, alpha 1)",
        "top": TOP,
    }


@dataclass(frozen=True)
class LimeExplanation:
    segments: np.ndarray  # (h, w) superpixel label per pixel, 0..n-1
    weights: np.ndarray  # (n,) ridge coefficient per superpixel
    explained_class: int
    score: float  # weighted R^2 of the surrogate on its samples

    @property
    def top(self) -> list[int]:
        """Superpixels that most raised the class's probability, best first."""
        order = np.argsort(-self.weights)
        return [int(s) for s in order[:TOP] if self.weights[s] > 0]

    def heatmap(self) -> np.ndarray:
        """(h, w) in [0, 1]: each pixel's superpixel weight, positives only, scaled."""
        heat = np.clip(self.weights[self.segments], 0.0, None)
        peak = float(heat.max())
        return np.asarray(heat / peak if peak > 0 else heat, dtype=np.float64)


def segment(image: np.ndarray) -> np.ndarray:
    """SLIC superpixels, labels 0..n-1."""
    from skimage.segmentation import slic

    img = image.astype(np.float64) / 255.0
    gray = img.shape[-1] == 1
    labels = slic(
        img[..., 0] if gray else img,
        n_segments=N_SEGMENTS,
        compactness=COMPACTNESS,
        channel_axis=None if gray else -1,
        start_label=0,
        enforce_connectivity=True,
    )
    _, dense = np.unique(labels, return_inverse=True)  # no gaps in the numbering
    return np.asarray(dense.reshape(labels.shape), dtype=np.int64)


def explain(
    model: keras.Model,
    image: np.ndarray,
    explained_class: int | None = None,
    *,
    n_samples: int = 300,
    seed: int = 0,
) -> LimeExplanation:
    """LIME of one (h, w, c) uint8 image; by default for its predicted class."""
    from sklearn.linear_model import Ridge

    from hpo.training import predict_proba

    if n_samples < 2:
        raise ValueError(f"LIME needs at least 2 samples, got {n_samples}")
    segments = segment(image)
    n_seg = int(segments.max()) + 1
    rng = np.random.default_rng(seed)
    on = rng.integers(0, 2, size=(n_samples, n_seg)).astype(bool)
    on[0] = True  # the image itself
    fill = image.reshape(-1, image.shape[-1]).mean(axis=0).round().astype(image.dtype)
    proba_parts = []
    for start in range(0, n_samples, _BATCH):
        block = on[start : start + _BATCH]
        batch = np.repeat(image[None], len(block), axis=0)
        hidden = ~block[:, segments]  # (b, h, w)
        batch[hidden] = fill
        proba_parts.append(predict_proba(model, batch))
    proba = np.concatenate(proba_parts)
    k = int(proba[0].argmax()) if explained_class is None else int(explained_class)
    target = proba[:, k]
    on_f = on.astype(np.float64)
    cosine = on_f.sum(axis=1) / (np.sqrt(on_f.sum(axis=1)) * np.sqrt(n_seg) + 1e-12)
    distance = 1.0 - cosine
    weights = np.sqrt(np.exp(-(distance**2) / KERNEL_WIDTH**2))
    ridge = Ridge(alpha=1.0, random_state=seed)
    ridge.fit(on_f, target, sample_weight=weights)
    score = float(ridge.score(on_f, target, sample_weight=weights))
    return LimeExplanation(segments, np.asarray(ridge.coef_, dtype=np.float64), k, score)


def lime_png(image: np.ndarray, lime: LimeExplanation, *, size: int = 160) -> bytes:
    """The positive weights over the image, the top superpixels outlined in yellow."""
    from PIL import Image
    from skimage.segmentation import find_boundaries

    from hpo.export._gradcam import _colormap

    rgb = image[..., 0] if image.shape[-1] == 1 else image
    base = np.asarray(Image.fromarray(rgb).convert("RGB"), dtype=np.float64)
    heat = _colormap(lime.heatmap()).astype(np.float64)
    blended = 0.55 * base + 0.45 * heat
    h, w = image.shape[:2]
    scale = max(1, round(size / max(h, w)))
    big = np.repeat(np.repeat(blended, scale, axis=0), scale, axis=1)
    seg_big = np.repeat(np.repeat(lime.segments, scale, axis=0), scale, axis=1)
    chosen = np.isin(seg_big, lime.top)
    edge = find_boundaries(np.where(chosen, seg_big, -1), mode="inner") & chosen  # type: ignore[no-untyped-call]
    big[edge] = (255.0, 220.0, 0.0)
    out = Image.fromarray(big.clip(0, 255).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
