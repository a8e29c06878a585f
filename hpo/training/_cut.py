"""Where a backbone can be split so fine-tuning starts from cached activations."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cut:
    """Where the backbone is split for fine-tuning from cached activations.

    ``index`` counts the backbone's layers without its input layer (as
    ``set_trainable_top`` does); -1 means the cut is the input itself, which
    leaves nothing to cache. ``wanted`` is the layer just below the top
    ``unfrozen_layers`` layers; ``layer`` is where the cut landed after moving
    down past skip connections.
    """

    index: int
    layer: str | None
    wanted: str | None

    @property
    def moved(self) -> bool:
        return self.layer != self.wanted


def body_layers(backbone: keras.Model) -> list[Any]:
    """The backbone's layers without its input layer, as ``set_trainable_top`` counts them."""
    import keras

    return [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]


def find_cut(backbone: keras.Model, unfrozen_layers: int) -> Cut:
    """The highest layer at or below the top ``unfrozen_layers`` whose output alone
    feeds everything above it.

    With skip connections (ResNet, MobileNetV2) the layer just below the
    unfrozen ones may sit inside a residual block whose shortcut bypasses it;
    caching its output alone could not reproduce the block. Layer k's output
    separates the graph when no layer after k reads a tensor made before k.
    """
    layers = body_layers(backbone)
    want = len(layers) - max(0, int(unfrozen_layers)) - 1
    if want < 0:
        return Cut(-1, None, None)
    graph = _inbound(backbone)
    position = {layer.name: i for i, layer in enumerate(layers)}
    earliest = [
        min((position.get(p, -1) for p in graph.get(layer.name, ((), 0))[0]), default=-1)
        for layer in layers
    ]
    # after[k] = the earliest producer read by any layer after k
    after = [math.inf] * (len(layers) + 1)
    for j in range(len(layers) - 1, -1, -1):
        after[j] = min(after[j + 1], earliest[j])
    for k in range(want, -1, -1):
        name = layers[k].name
        if after[k + 1] >= k and graph.get(name, ((), 0))[1] == 1:
            return Cut(k, name, layers[want].name)
    return Cut(-1, None, layers[want].name)


def lower_model(model: keras.Model, backbone: keras.Model, cut: str) -> keras.Model:
    """Image -> preprocessing -> backbone up to ``cut``: what the cache stores."""
    import keras

    lower = keras.Model(backbone.inputs, backbone.get_layer(cut).output)
    image = keras.Input(shape=tuple(model.input_shape[1:]), name="image")
    return keras.Model(image, lower(model.get_layer("preprocess")(image)), name="lower")


def upper_model(backbone: keras.Model, cut: str) -> keras.Model:
    """Activations at ``cut`` -> the backbone's output, sharing the backbone's layers."""
    import keras

    return keras.Model(backbone.get_layer(cut).output, backbone.output, name="upper")


def _inbound(backbone: keras.Model) -> dict[str, tuple[set[str], int]]:
    """Layer name -> (names of the layers it reads, number of times it is called).

    Read from the model's config, the public description of its graph.
    """
    try:
        layer_configs = backbone.get_config()["layers"]
    except (KeyError, TypeError, NotImplementedError) as exc:
        # No readable graph: find_cut then finds no separating layer, and the
        # trial fine-tunes on images instead of cached activations.
        log.info("feature cache: cannot read %s's graph (%s)", backbone.name, exc)
        return {}
    out: dict[str, tuple[set[str], int]] = {}
    for lc in layer_configs:
        nodes = lc.get("inbound_nodes") or []
        parents: set[str] = set()
        _histories(nodes, parents)
        out[str(lc.get("name") or lc["config"]["name"])] = (parents, len(nodes))
    return out


def _histories(obj: Any, acc: set[str]) -> None:
    if isinstance(obj, dict):
        hist = obj.get("keras_history")
        if isinstance(hist, (list, tuple)) and hist and isinstance(hist[0], str):
            acc.add(hist[0])
        for value in obj.values():
            _histories(value, acc)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _histories(value, acc)
