"""The fast path: train on backbone activations cached once per study (``hpo.cache``).

A frozen layer's output does not depend on the trial's parameters, so the
backbone's pooled features of the train and validation images are computed
once and phase 1 trains a head-only model on them. Phase 2 starts from the
activations at the *cut* (``_cut``) and trains the upper backbone + head.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.errors import ConfigError
from hpo.training._cut import Cut, body_layers, find_cut, lower_model, upper_model
from hpo.training._inference import predict_batches
from hpo.training._phases import Run, copy_head, plan, seed_head

if TYPE_CHECKING:
    import keras

    from hpo.cache import FeatureCache
    from hpo.config import StudyConfig
    from hpo.data import Dataset

log = logging.getLogger(__name__)


def feature_cache_enabled(config: StudyConfig) -> bool:
    """auto: on when there is a frozen pretrained phase and images are not augmented."""
    training = config.training
    mode = training.feature_cache
    if mode == "off" or training.augment:
        return False
    if config.model.resolved_weights is None:
        if mode == "on":  # validate_config refuses this; kept for hand-built configs
            raise ConfigError(
                "training.feature_cache: on needs pretrained weights (model.weights); "
                "a randomly initialised backbone trains whole, so nothing is frozen to cache"
            )
        return False
    return True


def _key_base(run: Run) -> dict[str, Any]:
    """Key parts shared by every entry of this study's backbone."""
    import keras

    from hpo.cache import FORMAT, file_digest

    weights = run.config.model.resolved_weights
    assert weights is not None
    return {
        "format": FORMAT,
        "backbone": run.config.model.backbone,
        "weights": weights if weights == "imagenet" else f"sha256:{file_digest(weights)}",
        "input_shape": list(run.dataset.input_shape),
        "policy": run.settings.policy,
        "augment": False,
        "keras": keras.__version__,
        "backend": run.settings.backend,  # each backend's kernels round differently
    }


def _split_parts(dataset: Dataset, split: str) -> dict[str, Any]:
    from hpo.cache import array_digest

    part = dataset.split(split)
    return {
        "dataset": dataset.sha256,
        "split": split,
        "images": array_digest(part.x),
        "n": len(part),
    }


def _storable(arr: Any) -> np.ndarray:
    out = np.asarray(arr)
    return out if out.dtype in (np.float16, np.float32) else out.astype(np.float32)


class _Backbone:
    """The full model and its backbone, built on first need (a cache hit needs none)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.model: keras.Model | None = None
        self.backbone: keras.Model | None = None

    def get(self) -> tuple[keras.Model, keras.Model]:
        if self.model is None or self.backbone is None:
            self.model, self.backbone = self.run.build()
            self.backbone.trainable = False
        return self.model, self.backbone


def _cached_arrays(
    run: Run,
    cache: FeatureCache,
    splits: list[str],
    extra: dict[str, Any],
    compute: Callable[[np.ndarray], np.ndarray],
) -> tuple[dict[str, np.ndarray], str]:
    """Arrays for each split from the cache (computing the missing ones)."""
    base = _key_base(run)
    arrays: dict[str, np.ndarray] = {}
    sources: list[str] = []
    for split in dict.fromkeys([*splits, "val"]):
        with run.timing("cache"):
            parts = {**base, **extra, **_split_parts(run.dataset, split)}
            images = run.dataset.split(split).x

            def work(images: np.ndarray = images) -> np.ndarray:
                with run.timing("features"):
                    return compute(images)

            arrays[split], source = cache.get_or_compute(parts, work)
        sources.append(source)
    source = "computed" if "computed" in sources else ("disk" if "disk" in sources else "memory")
    return arrays, source


def _join(arrays: dict[str, np.ndarray], splits: list[str]) -> np.ndarray:
    return arrays[splits[0]] if len(splits) == 1 else np.concatenate([arrays[s] for s in splits])


@dataclass
class _Target:
    """What the fine-tuning phase fits: a model and its train/validation inputs."""

    model: keras.Model
    x: np.ndarray
    x_val: np.ndarray
    whole: bool  # the full image model itself (fallback), not a part fed from the cache
    unfrozen: list[str]


def train_cached(
    run: Run,
    splits: list[str],
    x_train: np.ndarray,
    y_train: np.ndarray,
    keep_model: bool,
) -> tuple[keras.Model | None, list[str], dict[str, Any]]:
    """Head on cached features, then fine-tuning from the cut."""
    import keras

    from hpo.cache import FeatureCache, resolve_dir
    from hpo.models import build_head

    config, dataset, params = run.config, run.dataset, run.params
    cache = FeatureCache(resolve_dir(config.training.cache_dir))
    lazy = _Backbone(run)
    info: dict[str, Any] = {}

    def pooled(images: np.ndarray) -> np.ndarray:
        model, _ = lazy.get()
        extractor = keras.Model(model.inputs, model.get_layer("pool").output)
        return _storable(predict_batches(extractor, images))

    feats, info["features"] = _cached_arrays(
        run, cache, splits, {"cut": "pool", "pooling": config.model.pooling}, pooled
    )
    with run.timing("build"):
        inputs = keras.Input(shape=feats["val"].shape[1:], name="features")
        head = keras.Model(inputs, build_head(inputs, dataset.n_classes, params), name="hpo_head")
        seed_head(head, config.training.seed)
    phases = plan(config, params)
    _, epochs, lr = phases[0]
    go_on = run.run_phase(
        head,
        _join(feats, splits),
        y_train,
        feats["val"],
        phase="frozen",
        epochs=epochs,
        lr=lr,
        index=0,
    )
    target: _Target | None = None
    if go_on and len(phases) > 1:
        _, epochs, lr = phases[1]
        target = _finetune_target(run, cache, lazy, head, feats, splits, x_train, info)
        run.run_phase(
            target.model,
            target.x,
            y_train,
            target.x_val,
            phase="finetune",
            epochs=epochs,
            lr=lr,
            index=1,
        )
    unfrozen = target.unfrozen if target is not None else []
    if not keep_model:
        return None, unfrozen, info
    model, _ = lazy.get()  # the backbone's layers are shared with the fine-tuned upper part
    if target is None or not target.whole:
        with run.timing("build"):
            copy_head(head, model)
    return model, unfrozen, info


def _finetune_target(
    run: Run,
    cache: FeatureCache,
    lazy: _Backbone,
    head: keras.Model,
    feats: dict[str, np.ndarray],
    splits: list[str],
    x_train: np.ndarray,
    info: dict[str, Any],
) -> _Target:
    """The model phase 2 fits: the head alone, upper backbone + head, or the whole model."""
    import keras

    from hpo.models import set_trainable_top

    n = int(run.params["unfrozen_layers"])
    model, backbone = lazy.get()
    cut = find_cut(backbone, n)
    info["cut"] = cut.layer
    if cut.moved:
        info["cut_wanted"] = cut.wanted
    if cut.index == len(body_layers(backbone)) - 1:
        # Nothing above the cut: fine-tuning trains the head alone, on the features.
        unfrozen = set_trainable_top(backbone, n)
        return _Target(head, _join(feats, splits), feats["val"], False, unfrozen)
    reason = _too_big(run, backbone, cut, splits)
    if reason is not None:
        log.info("feature cache: fine-tuning on images, not from the cut: %s", reason)
        info["activations"] = f"fallback: {reason}"
        with run.timing("build"):
            copy_head(head, model)
            unfrozen = set_trainable_top(backbone, n)
        return _Target(model, x_train, run.dataset.val.x, True, unfrozen)
    assert cut.layer is not None
    layer = backbone.get_layer(cut.layer)

    def below(images: np.ndarray) -> np.ndarray:
        with run.timing("build"):
            lower_full = lower_model(model, backbone, layer.name)
        return _storable(predict_batches(lower_full, images))

    acts, info["activations"] = _cached_arrays(
        run, cache, splits, {"cut": cut.layer, "pooling": None}, below
    )
    with run.timing("build"):
        unfrozen = set_trainable_top(backbone, n)
        upper = upper_model(backbone, layer.name)
        a_in = keras.Input(shape=acts["val"].shape[1:], name="activations")
        pool = model.get_layer("pool")
        x = type(pool).from_config(pool.get_config())(upper(a_in))
        tuned = keras.Model(a_in, head(x), name="hpo_upper")
    return _Target(tuned, _join(acts, splits), acts["val"], False, unfrozen)


def _too_big(run: Run, backbone: keras.Model, cut: Cut, splits: list[str]) -> str | None:
    """Why activations at ``cut`` should not be cached, or None when they may."""
    if cut.layer is None:
        return "no single tensor separates the unfrozen layers from the rest"
    shape = backbone.get_layer(cut.layer).output.shape[1:]
    per_image = int(np.prod([int(s) for s in shape]))
    itemsize = 2 if run.settings.policy == "mixed_float16" else 4
    n = sum(len(run.dataset.split(s)) for s in dict.fromkeys([*splits, "val"]))
    size = n * per_image * itemsize
    budget = run.config.training.cache_max_gb * 2**30
    if size > budget:
        dims = "x".join(str(int(s)) for s in shape)
        return (
            f"activations at {cut.layer} ({dims}) would take {size / 2**30:.2f} GiB, "
            f"over training.cache_max_gb {run.config.training.cache_max_gb:g}"
        )
    return None
