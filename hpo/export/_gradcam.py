"""Grad-CAM: which regions of an image drove the model's score for a class.

Our classifiers are a chain ``image -> preprocess -> backbone (a nested
Functional model) -> pooling -> head``. The feature map Grad-CAM needs lives
*inside* the nested backbone, where the outer model's graph cannot reach it,
so the backbone is re-wrapped to return that map and its own output, and the
outer chain is replayed around it with the same layers (same weights). The
replayed chain is checked against the model's own predictions before any
heatmap is trusted.

The class score is the pre-softmax logit (Selvaraju et al. 2017): softmax
probabilities saturate near 1 on a confident model and their gradients vanish.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.errors import HpoError

if TYPE_CHECKING:
    import keras

_POOLING = ("MaxPooling2D", "AveragePooling2D")


@dataclass(frozen=True)
class GradCamTarget:
    """Where the heatmap is taken: the backbone layer and the replayable chain."""

    backbone: str
    layer: str
    feature_shape: tuple[int, int, int]


def _is_4d(layer: keras.layers.Layer) -> bool:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return False
    return len(shape) == 4


def _find_backbone(model: keras.Model) -> keras.Model:
    import keras

    nested = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.Model) and len(layer.outputs) == 1 and _is_4d(layer)
    ]
    if not nested:
        raise HpoError(f"Grad-CAM: model '{model.name}' has no backbone with a 4-D feature map")
    return nested[-1]


def _find_feature_layer(backbone: keras.Model) -> keras.layers.Layer:
    """The last 4-D output inside the backbone, before any trailing pooling.

    A trailing max/average pool only coarsens the last convolution's map;
    taking the map before it doubles the heatmap's resolution.
    """
    import keras

    candidates = [
        layer
        for layer in backbone.layers
        if not isinstance(layer, keras.layers.InputLayer) and _is_4d(layer)
    ]
    if not candidates:
        raise HpoError(f"Grad-CAM: backbone '{backbone.name}' has no 4-D layer")
    while len(candidates) > 1 and candidates[-1].__class__.__name__ in _POOLING:
        candidates.pop()
    return candidates[-1]


class GradCam:
    """Heatmaps for a classifier built by ``hpo.models.build_model`` (or any chain
    of single-input layers around one nested backbone)."""

    def __init__(self, model: keras.Model, *, layer: str | None = None) -> None:
        import keras

        self.model = model
        backbone = _find_backbone(model)
        feature = backbone.get_layer(layer) if layer else _find_feature_layer(backbone)
        self._features = keras.Model(
            backbone.inputs, [feature.output, backbone.outputs[0]], name="gradcam_backbone"
        )
        self._backbone = backbone
        self._chain = [lyr for lyr in model.layers if not isinstance(lyr, keras.layers.InputLayer)]
        if backbone not in self._chain:
            raise HpoError("Grad-CAM: the backbone is not a layer of the outer model")
        shape = feature.output.shape
        self.target = GradCamTarget(
            backbone.name, feature.name, (int(shape[1]), int(shape[2]), int(shape[3]))
        )

    def _forward(self, images: Any) -> tuple[Any, Any, Any]:
        """(feature map, logits, probabilities), replaying the outer chain."""
        import keras

        x = images
        fmap = None
        last = self._chain[-1]
        for layer in self._chain[:-1]:
            if layer is self._backbone:
                fmap, x = self._features(x, training=False)
            else:
                x = layer(x, training=False)
        if fmap is None:
            raise HpoError("Grad-CAM: the backbone must come before the last layer")
        if isinstance(last, keras.layers.Dense) and last.activation is keras.activations.softmax:
            logits = keras.ops.matmul(keras.ops.cast(x, last.kernel.dtype), last.kernel)
            if last.use_bias:
                logits = logits + last.bias
            logits = keras.ops.cast(logits, "float32")
            return fmap, logits, keras.ops.softmax(logits, axis=-1)
        probs = last(x, training=False)
        return fmap, probs, probs

    def heatmaps(
        self, images: np.ndarray, classes: np.ndarray | None = None, *, batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """(heatmaps (n, h, w) in [0, 1] at input size, probabilities (n, k)).

        ``classes`` picks the class explained per image; by default the predicted one.
        """
        import tensorflow as tf

        maps: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            batch = tf.convert_to_tensor(images[start : start + batch_size])
            with tf.GradientTape() as tape:
                fmap, logits, p = self._forward(batch)
                chosen = (
                    tf.argmax(p, axis=-1)
                    if classes is None
                    else tf.constant(classes[start : start + batch_size], dtype=tf.int64)
                )
                # Softmax ignores a shift shared by all logits; centring removes
                # evidence common to every class, which explains none of them.
                centred = logits - tf.reduce_mean(logits, axis=-1, keepdims=True)
                score = tf.gather(centred, chosen, axis=1, batch_dims=1)
            grads = tape.gradient(score, fmap)
            if grads is None:
                raise HpoError(f"Grad-CAM: no gradient reaches layer '{self.target.layer}'")
            weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(weights * tf.cast(fmap, tf.float32), axis=-1))
            cam = tf.image.resize(cam[..., None], images.shape[1:3], method="bilinear")[..., 0]
            peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
            cam = tf.math.divide_no_nan(cam, peak)
            maps.append(cam.numpy())
            probs.append(np.asarray(p, dtype=np.float64))
        heat = np.concatenate(maps) if maps else np.zeros((0, *images.shape[1:3]))
        proba = np.concatenate(probs) if probs else np.zeros((0, 0))
        return heat, proba

    def check(self, images: np.ndarray, *, atol: float = 1e-4) -> None:
        """The replayed chain must reproduce the model, or its heatmaps would be fiction."""
        _, proba = self.heatmaps(images[:8])
        expected = np.asarray(self.model.predict(images[:8], verbose=0), dtype=np.float64)
        if not np.allclose(proba, expected, atol=atol):
            raise HpoError(
                f"Grad-CAM: model '{self.model.name}' is not a simple chain around its backbone; "
                "heatmaps would not explain its predictions"
            )


# --------------------------------------------------------------------------
# drawing: heatmap over image, as PNG bytes


def _colormap(values: np.ndarray) -> np.ndarray:
    """A blue-cyan-yellow-red ramp ("jet"-like) for values in [0, 1] -> uint8 RGB."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.concatenate([r, g, b], axis=-1) * 255).astype(np.uint8)


def overlay_png(
    image: np.ndarray, heatmap: np.ndarray, *, size: int = 160, alpha: float = 0.45
) -> bytes:
    """The image and the heatmap blended over it, side by side, enlarged to ``size`` px."""
    from PIL import Image

    rgb = image[..., 0] if image.shape[-1] == 1 else image
    base = Image.fromarray(rgb).convert("RGB")
    h, w = image.shape[:2]
    scale = size / max(h, w)
    shown = (max(1, round(w * scale)), max(1, round(h * scale)))
    base = base.resize(shown, Image.Resampling.NEAREST)
    heat = Image.fromarray(_colormap(heatmap)).resize(shown, Image.Resampling.BILINEAR)
    blended = Image.blend(base, heat, alpha)
    gap = 6
    canvas = Image.new("RGB", (shown[0] * 2 + gap, shown[1]), "white")
    canvas.paste(base, (0, 0))
    canvas.paste(blended, (shown[0] + gap, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
