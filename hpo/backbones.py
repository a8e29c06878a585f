"""The backbones a study can name, as plain facts.

Keras-free, so the study file's validation (``hpo.config``) and the model
builder (``hpo.models``) read one table without importing a Keras backend.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    name: str
    application: str | None  # keras.applications constructor; None for our small_cnn
    preprocessing: str  # mode of hpo.models.ImagePreprocessing
    min_size: int  # smallest input side (keras.applications checks 32)
    imagenet: bool  # ImageNet weights exist ("weights: imagenet")
    pretrained_needs_rgb: bool  # any pretrained weights (ImageNet or file) need 3 channels
    depth: int | None  # layers of the headless model, input layer excluded; None if unknown


def _application(name: str, ctor: str, preprocessing: str, depth: int) -> Backbone:
    return Backbone(name, ctor, preprocessing, 32, True, True, depth)


BACKBONES: dict[str, Backbone] = {
    "small_cnn": Backbone("small_cnn", None, "unit", 8, False, False, 21),
    "mobilenet_v2": _application("mobilenet_v2", "MobileNetV2", "tf", 153),
    "resnet50": _application("resnet50", "ResNet50", "caffe", 174),
    "vgg16": _application("vgg16", "VGG16", "caffe", 18),
    "efficientnet_b0": _application("efficientnet_b0", "EfficientNetB0", "raw", 236),
    "densenet121": _application("densenet121", "DenseNet121", "torch", 426),
}
NAMES = tuple(BACKBONES)


def backbone(name: str) -> Backbone:
    """The table entry for ``name``; ``KeyError`` names the allowed ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; allowed: {', '.join(NAMES)}") from None
