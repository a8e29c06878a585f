"""Backbones and the classification head.

Every model takes raw uint8-range pixels; the backbone's own ImageNet
preprocessing is a registered layer inside the model, so an exported
``.keras`` file is self-describing and loads in Keras safe mode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
import numpy as np

from hpo.backbones import BACKBONES as BACKBONES  # re-exported: the table lives there
from hpo.backbones import Backbone
from hpo.errors import ConfigError, HpoError

BackboneSpec = Backbone  # the name this module used before hpo.backbones

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="hpo")
class ImagePreprocessing(keras.layers.Layer):  # type: ignore[misc]
    """The ImageNet input convention of each backbone, as a serializable layer.

    Modes: ``unit`` scales to [0, 1]; ``tf`` to [-1, 1]; ``torch`` scales and
    normalises by ImageNet mean/std; ``caffe`` flips RGB to BGR and subtracts
    the ImageNet mean; ``raw`` passes 0-255 through (EfficientNet rescales itself).
    """

    def __init__(self, mode: str = "unit", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("unit", "tf", "torch", "caffe", "raw"):
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode = mode

    def call(self, inputs: Any) -> Any:
        ops = keras.ops
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "raw":
            return x
        channels = x.shape[-1]
        if self.mode == "torch":
            mean = np.array(_IMAGENET_MEAN[:channels], dtype="float32")
            std = np.array(_IMAGENET_STD[:channels], dtype="float32")
            return (x / 255.0 - ops.cast(mean, x.dtype)) / ops.cast(std, x.dtype)
        # caffe
        if channels == 3:
            x = ops.flip(x, axis=-1)
        mean = np.array(_CAFFE_MEAN_BGR[:channels], dtype="float32")
        return x - ops.cast(mean, x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


def _small_cnn(input_shape: tuple[int, int, int]) -> keras.Model:
    """Three conv blocks (32-64-128), each halving the resolution.

    Deep enough that global pooling at the end still sees shapes, which a
    two-layer network with early pooling does not (it stays near chance).
    """
    inputs = keras.Input(shape=input_shape, name="backbone_input")
    x = inputs
    for i, filters in enumerate((32, 64, 128), start=1):
        for j in (1, 2):
            x = keras.layers.Conv2D(
                filters, 3, padding="same", use_bias=False, name=f"block{i}_conv{j}"
            )(x)
            # Momentum 0.9: with a few dozen steps per epoch the default 0.99
            # leaves the moving statistics far from the data.
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{i}_bn{j}")(x)
            x = keras.layers.ReLU(name=f"block{i}_relu{j}")(x)
        if min(x.shape[1], x.shape[2]) >= 2:
            x = keras.layers.MaxPooling2D(name=f"block{i}_pool")(x)
    return keras.Model(inputs, x, name="small_cnn")


def check_input(backbone: str, input_shape: tuple[int, int, int], weights: str | None) -> None:
    spec = BACKBONES[backbone]
    h, w, c = input_shape
    if min(h, w) < spec.min_size:
        raise ConfigError(
            f"dataset.image_size: {h}x{w} is too small for {backbone}; "
            f"it needs at least {spec.min_size}x{spec.min_size}"
        )
    if spec.pretrained_needs_rgb and c != 3 and weights is not None:
        raise ConfigError(
            f"dataset.channels: {backbone} with pretrained weights needs 3 channels, got {c}"
        )


def build_backbone(
    backbone: str, input_shape: tuple[int, int, int], weights: str | None
) -> keras.Model:
    """A headless backbone; ``weights`` is None, "imagenet" or a local file."""
    check_input(backbone, input_shape, weights)
    spec = BACKBONES[backbone]
    if spec.application is None:
        model = _small_cnn(input_shape)
        if weights is not None:
            _load_weights_file(model, weights, backbone)
        return model
    ctor = getattr(keras.applications, spec.application)
    if weights is not None and weights != "imagenet":
        model = ctor(include_top=False, weights=None, input_shape=input_shape)
        _load_weights_file(model, weights, backbone)
        return model
    try:
        return ctor(include_top=False, weights=weights, input_shape=input_shape)
    except Exception as exc:
        if weights == "imagenet" and _looks_like_download_error(exc):
            cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
            raise HpoError(
                f"model.weights: ImageNet weights for {backbone} could not be downloaded "
                f"({exc.__class__.__name__}); this machine may be offline. Put the "
                f"'*_notop.h5' file in {cache}, set 'weights:' to a local weights file, "
                "or use 'weights: none'"
            ) from None
        raise


def _looks_like_download_error(exc: BaseException) -> bool:
    text = f"{exc.__class__.__name__} {exc}".lower()
    return any(
        key in text
        for key in ("url", "http", "fetch", "download", "connection", "resolve", "network")
    )


def _load_weights_file(model: keras.Model, path: str, backbone: str) -> None:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"model.weights: file '{p}' does not exist")
    try:
        model.load_weights(str(p))
    except Exception as exc:
        raise ConfigError(
            f"model.weights: '{p}' does not fit {backbone} at this input size "
            f"({exc.__class__.__name__}: {str(exc)[:120]})"
        ) from None


def build_model(
    backbone: str,
    *,
    input_shape: tuple[int, int, int],
    n_classes: int,
    weights: str | None,
    params: dict[str, Any],
    pooling: str = "avg",
) -> tuple[keras.Model, keras.Model]:
    """The full classifier and its backbone (returned to freeze/unfreeze it)."""
    base = build_backbone(backbone, input_shape, weights)
    inputs = keras.Input(shape=input_shape, name="image")
    x = ImagePreprocessing(BACKBONES[backbone].preprocessing, name="preprocess")(inputs)
    x = base(x)
    pool = (
        keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    )
    x = pool(name="pool")(x)
    head_input = x
    outputs = build_head(head_input, n_classes, params)
    return keras.Model(inputs, outputs, name=f"hpo_{backbone}"), base


def build_head(features: Any, n_classes: int, params: dict[str, Any]) -> Any:
    """Dense(width) with L1/L2, dropout, softmax; float32 output for mixed precision."""
    reg = keras.regularizers.L1L2(l1=float(params["l1"]), l2=float(params["l2"]))
    x = keras.layers.Dense(
        int(params["dense_units"]), activation="relu", kernel_regularizer=reg, name="head_dense"
    )(features)
    x = keras.layers.Dropout(float(params["dropout"]), name="head_dropout")(x)
    return keras.layers.Dense(n_classes, activation="softmax", dtype="float32", name="predictions")(
        x
    )


def set_trainable_top(backbone: keras.Model, n_layers: int) -> list[str]:
    """Unfreeze the top ``n_layers`` layers of the backbone; batch-norm stays frozen.

    Returns the names of the layers made trainable, so callers (and tests)
    can see exactly what fine-tuning touches.
    """
    layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    backbone.trainable = True
    cut = max(0, len(layers) - n_layers)
    unfrozen: list[str] = []
    for i, layer in enumerate(layers):
        trainable = i >= cut and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        if trainable:
            unfrozen.append(layer.name)
    return unfrozen


def freeze(backbone: keras.Model) -> None:
    backbone.trainable = False
