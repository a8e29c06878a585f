"""Grad-CAM: which regions of an image drove the model's score for a class.

Our classifiers are a chain ``image -> preprocess -> backbone (a nested
Functional model) -> pooling -> head``. The feature map Grad-CAM needs lives
*inside* the nested backbone, where the outer model's graph cannot reach it,
so the backbone is split at that map (image -> map, map -> backbone output) and
the outer chain is replayed around it with the same layers (same weights). The
replayed chain is checked against the model's own predictions before any
heatmap is trusted. The gradient is taken by the active Keras backend
(``gradient``: TensorFlow, JAX or PyTorch), with respect to the feature map.

The class score is the pre-softmax logit (Selvaraju et al. 2017): softmax
probabilities saturate near 1 on a confident model and their gradients vanish.
"""

from __future__ import annotations

import io
from collections.abc import Callable
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


def gradient(fn: Callable[[Any], tuple[Any, Any]], x: Any) -> tuple[Any, Any]:
    """(d fn(x)[0] / dx, fn(x)[1]) on the active Keras backend; fn returns (scalar, aux).

    The one backend-specific piece of Grad-CAM: TensorFlow's tape, ``jax.value_and_grad``
    or torch's autograd, each differentiating a function of the feature map.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        (_, aux), grad = jax.value_and_grad(fn, has_aux=True)(x)
        return grad, aux
    if backend == "torch":
        import torch

        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            value, aux = fn(x)
            (grad,) = torch.autograd.grad(value, x, allow_unused=True)
        return grad, aux
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        value, aux = fn(x)
    return tape.gradient(value, x), aux


class GradCam:
    """Heatmaps for a classifier built by ``hpo.models.build_model`` (or any chain
    of single-input layers around one nested backbone)."""

    def __init__(self, model: keras.Model, *, layer: str | None = None) -> None:
        import keras

        self.model = model
        backbone = _find_backbone(model)
        feature = backbone.get_layer(layer) if layer else _find_feature_layer(backbone)
        # The backbone split at the feature map: image -> map, map -> backbone output.
        self._lower = keras.Model(backbone.inputs, feature.output, name="gradcam_lower")
        if feature.output is backbone.outputs[0]:
            self._upper: Callable[..., Any] | None = None
        else:
            try:
                self._upper = keras.Model(feature.output, backbone.outputs[0], name="gradcam_upper")
            except ValueError as exc:
                raise HpoError(
                    f"Grad-CAM: layer '{feature.name}' does not separate backbone "
                    f"'{backbone.name}' ({str(exc).splitlines()[0][:120]})"
                ) from None
        self._backbone = backbone
        self._chain = [lyr for lyr in model.layers if not isinstance(lyr, keras.layers.InputLayer)]
        if backbone not in self._chain:
            raise HpoError("Grad-CAM: the backbone is not a layer of the outer model")
        at = self._chain.index(backbone)
        if at == len(self._chain) - 1:
            raise HpoError("Grad-CAM: the backbone must come before the last layer")
        self._before, self._after = self._chain[:at], self._chain[at + 1 :]
        shape = feature.output.shape
        self.target = GradCamTarget(
            backbone.name, feature.name, (int(shape[1]), int(shape[2]), int(shape[3]))
        )

    def _feature_map(self, images: Any) -> Any:
        x = images
        for layer in self._before:
            x = layer(x, training=False)
        return self._lower(x, training=False)

    def _head(self, fmap: Any) -> tuple[Any, Any]:
        """(logits, probabilities) from the feature map, replaying the rest of the chain."""
        import keras

        x = fmap if self._upper is None else self._upper(fmap, training=False)
        last = self._after[-1]
        for layer in self._after[:-1]:
            x = layer(x, training=False)
        if isinstance(last, keras.layers.Dense) and last.activation is keras.activations.softmax:
            logits = keras.ops.matmul(keras.ops.cast(x, last.kernel.dtype), last.kernel)
            if last.use_bias:
                logits = logits + last.bias
            logits = keras.ops.cast(logits, "float32")
            return logits, keras.ops.softmax(logits, axis=-1)
        probs = last(x, training=False)
        return probs, probs

    def heatmaps(
        self, images: np.ndarray, classes: np.ndarray | None = None, *, batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """(heatmaps (n, h, w) in [0, 1] at input size, probabilities (n, k)).

        ``classes`` picks the class explained per image; by default the predicted one.
        """
        import keras

        ops = keras.ops
        maps: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            fmap = self._feature_map(ops.convert_to_tensor(images[start : start + batch_size]))
            given = None if classes is None else np.asarray(classes[start : start + batch_size])

            def score(fmap: Any, given: np.ndarray | None = given) -> tuple[Any, Any]:
                logits, p = self._head(fmap)
                chosen = (
                    ops.argmax(p, axis=-1)
                    if given is None
                    else ops.convert_to_tensor(given.astype(np.int32))
                )
                # Softmax ignores a shift shared by all logits; centring removes
                # evidence common to every class, which explains none of them.
                centred = logits - ops.mean(logits, axis=-1, keepdims=True)
                picked = ops.take_along_axis(centred, ops.expand_dims(chosen, -1), axis=1)
                return ops.sum(picked), p

            grads, p = gradient(score, fmap)
            if grads is None:
                raise HpoError(f"Grad-CAM: no gradient reaches layer '{self.target.layer}'")
            g = ops.convert_to_numpy(grads).astype(np.float32)
            f = ops.convert_to_numpy(fmap).astype(np.float32)
            weights = g.mean(axis=(1, 2), keepdims=True)
            cam = np.maximum((weights * f).sum(axis=-1), 0.0)
            cam = ops.convert_to_numpy(
                ops.image.resize(cam[..., None], images.shape[1:3], interpolation="bilinear")
            )[..., 0]
            peak = cam.max(axis=(1, 2), keepdims=True)
            cam = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
            maps.append(cam)
            probs.append(np.asarray(ops.convert_to_numpy(p), dtype=np.float64))
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
