"""Two-phase training of one trial's model and its validation scoring.

Phase 1 trains the head on a frozen pretrained backbone; phase 2 unfreezes
the backbone's top ``unfrozen_layers`` layers (batch norm stays frozen) at
``learning_rate * finetune_lr_factor``. A backbone without pretrained weights
has nothing to preserve, so it trains whole for all epochs at the base rate.
Validation macro F1 is computed after every epoch and handed to a reporter,
which is how pruners see the learning curve.

The fast path (``training.feature_cache``): a frozen layer's output does not
depend on the trial's parameters, so the backbone's pooled features of the
train and validation images are computed once (``hpo.cache``) and phase 1
trains a head-only model on them. Phase 2 starts from the activations at the
*cut*, the highest point below the unfrozen layers where one tensor separates
the lower and upper parts of the backbone, and trains the upper part + head.
Both paths start the head from the same seeded weights and see the batches in
the same order, so they agree within floating-point noise.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.errors import ConfigError, DataError, TrialFailedError
from hpo.metrics import Evaluation, evaluate, macro_f1

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from hpo.cache import FeatureCache
    from hpo.config import StudyConfig, TrainingSection
    from hpo.data import Dataset

log = logging.getLogger(__name__)

# Receives (epoch, validation F1) after each epoch; True asks training to stop (prune).
EpochReporter = Callable[[int, float], bool]

AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow here
HEAD_LAYERS = ("head_dense", "head_dropout", "predictions")  # hpo.models.build_head's names
# Parts of TrainResult.timing that are Keras' own work; everything else is harness overhead.
KERAS_PARTS = ("fit", "predict", "features")


@dataclass
class TrainResult:
    evaluation: Evaluation
    epochs: int
    train_seconds: float
    images_per_second: float
    curve: list[float]
    pruned: bool = False
    stopped_reason: str | None = None
    unfrozen: list[str] = field(default_factory=list)
    model: Any = None
    # Seconds per part: build, data, cache, features, fit, predict, metrics, report, total.
    timing: dict[str, float] = field(default_factory=dict)
    # What the feature cache did: {"features": "disk", "cut": "block_13_project_BN", ...}.
    cache: dict[str, Any] = field(default_factory=dict)


def configure_tensorflow() -> None:
    """Memory growth on every visible GPU, so workers sharing one don't starve."""
    from hpo._tf import import_tensorflow

    tf = import_tensorflow()

    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError):  # already initialised in this process
            tf.config.experimental.set_memory_growth(gpu, True)


def device_name() -> str:
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name.replace("/device:", "") if gpus else "cpu"


# --------------------------------------------------------------------------
# settings that depend on the device


@dataclass(frozen=True)
class RunSettings:
    """The study file's device settings, with every "auto" resolved."""

    jit_compile: bool
    policy: str  # Keras dtype policy: float32, mixed_float16, mixed_bfloat16
    cache: bool  # tf.data .cache()
    prefetch: int  # batches; AUTOTUNE lets tf.data choose
    parallel_calls: int


def resolve_settings(training: TrainingSection, *, gpu: bool | None = None) -> RunSettings:
    """XLA is on with a GPU and off on CPU unless the study file says otherwise.

    On CPU, XLA compiles each new model for seconds and gains little for
    convolutions; on a GPU it fuses the many small ops of MobileNet-like nets.
    """
    if gpu is None:
        gpu = device_name() != "cpu"
    data = training.data

    def auto(value: int | str) -> int:
        return AUTOTUNE if value == "auto" else int(value)

    return RunSettings(
        jit_compile=training.xla == "on" or (training.xla == "auto" and gpu),
        policy=(
            "float32" if training.mixed_precision == "off" else f"mixed_{training.mixed_precision}"
        ),
        cache=data.cache,
        prefetch=auto(data.prefetch),
        parallel_calls=auto(data.parallel_calls),
    )


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    augment: bool = False,
    cache: bool = True,
    prefetch: int = AUTOTUNE,
    parallel_calls: int = AUTOTUNE,
) -> tf.data.Dataset:
    """An in-memory tf.data pipeline: cached, shuffled per epoch, prefetched."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment:
        flip = tf.keras.layers.RandomFlip("horizontal", seed=seed)
        rot = tf.keras.layers.RandomRotation(0.05, seed=seed)

        def aug(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            images = tf.cast(images, tf.float32)
            return rot(flip(images, training=True), training=True), labels

        ds = ds.map(aug, num_parallel_calls=parallel_calls)
    return ds.prefetch(prefetch) if prefetch != 0 else ds


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced weights n / (k * count) for the classes present in training."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return {k: float(w) for k, w in enumerate(weights)}


def _optimizer(name: str, lr: float) -> keras.optimizers.Optimizer:
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr)
    return keras.optimizers.Adam(learning_rate=lr)


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.asarray(predict_batches(model, x, batch_size), dtype=np.float64)


def predict_batches(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``model.predict`` without its per-call set-up (~60 ms, a data adapter and
    callbacks), which outweighs a head's whole forward pass when run every epoch."""
    if len(x) == 0:
        return np.asarray(model.predict(x, verbose=0))
    parts = [
        np.asarray(model.predict_on_batch(x[i : i + batch_size]))
        for i in range(0, len(x), batch_size)
    ]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


# --------------------------------------------------------------------------
# timing


class Timing:
    """Seconds per part of a trial; a nested part pauses the one around it.

    So ``fit`` is Keras' training alone: the validation predictions, metrics
    and reporter calls made from its callbacks are counted apart.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[list[Any]] = []  # [part, started]

    @contextlib.contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._stack:
            outer = self._stack[-1]
            self._add(outer[0], now - outer[1])
        self._stack.append([part, now])
        try:
            yield
        finally:
            now = time.perf_counter()
            name, started = self._stack.pop()
            self._add(name, now - started)
            if self._stack:
                self._stack[-1][1] = now

    def _add(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds

    def get(self, part: str) -> float:
        return self.seconds.get(part, 0.0)


# --------------------------------------------------------------------------
# one fit phase


class Inference:
    """Forward passes of one model through a ``tf.function`` of our own.

    Keras drops its predict function whenever a model is compiled, so the
    per-epoch validation predictions would be traced again in every phase;
    this one is traced once per model and trial, as a single ``predict`` at
    the end of a hand-written loop would be.
    """

    def __init__(self, jit_compile: bool = False) -> None:
        self.jit_compile = jit_compile
        self._fns: dict[int, tuple[Any, Any]] = {}

    def __call__(self, model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        import tensorflow as tf

        entry = self._fns.get(id(model))
        if entry is None or entry[0] is not model:

            def forward(batch: tf.Tensor) -> tf.Tensor:
                return model(batch, training=False)

            fn = tf.function(forward, reduce_retracing=True, jit_compile=self.jit_compile)
            entry = self._fns[id(model)] = (model, fn)
        fn = entry[1]
        if len(x) == 0:
            return predict_proba(model, x)
        parts = [
            np.asarray(fn(tf.constant(x[i : i + batch_size]))) for i in range(0, len(x), batch_size)
        ]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return np.asarray(out, dtype=np.float64)


class _EpochWatch:
    """Keras callback: validation F1 per epoch, pruning and the trial deadline."""

    def __init__(
        self,
        x_val: np.ndarray,
        y_val: np.ndarray,
        n_classes: int,
        reporter: EpochReporter | None,
        deadline: float | None,
        offset: int,
        curve: list[float],
        timing: Timing | None = None,
        inference: Inference | None = None,
    ) -> None:
        import keras

        outer = self
        self.inference = inference or Inference()
        self.every_epoch = True

        class Callback(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                outer.on_epoch_end(self.model, epoch)

            def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
                if outer.deadline is not None and time.monotonic() > outer.deadline:
                    outer.timed_out = True
                    self.model.stop_training = True

        self.callback = Callback()
        self.x_val, self.y_val, self.n_classes = x_val, y_val, n_classes
        self.reporter, self.deadline, self.offset, self.curve = reporter, deadline, offset, curve
        self.timing = timing or Timing()
        self.pruned = False
        self.timed_out = False
        self.last_proba: np.ndarray | None = None

    @property
    def predict_seconds(self) -> float:
        return self.timing.get("predict")

    def on_epoch_end(self, model: keras.Model, epoch: int) -> None:
        if not self.every_epoch:
            return
        with self.timing("predict"):
            proba = self.inference(model, self.x_val)
        with self.timing("metrics"):
            if not np.isfinite(proba).all():
                raise TrialFailedError("the model produced NaN predictions (diverged)")
            f1 = macro_f1(self.y_val, proba.argmax(axis=1), self.n_classes)
        self.last_proba = proba
        self.curve.append(f1)
        step = self.offset + epoch
        if self.reporter is not None:
            with self.timing("report"):
                stop = self.reporter(step, f1)
            if stop:
                self.pruned = True
                model.stop_training = True


class _Run:
    """The state of one trial across its phases: curve, epochs, timing, last scores."""

    def __init__(
        self,
        config: StudyConfig,
        dataset: Dataset,
        params: dict[str, Any],
        settings: RunSettings,
        *,
        reporter: EpochReporter | None,
        on_phase: Callable[[str, int], None] | None,
        class_weight: dict[int, float] | None,
    ) -> None:
        training = config.training
        self.config, self.dataset, self.params, self.settings = config, dataset, params, settings
        self.reporter, self.on_phase, self.class_weight = reporter, on_phase, class_weight
        self.timing = Timing()
        self.inference = Inference(settings.jit_compile)
        self.every_epoch = validates_every_epoch(config)
        self.curve: list[float] = []
        self.epochs_run = 0
        self.pruned = False
        self.last_proba: np.ndarray | None = None
        self.last_model: keras.Model | None = None
        self.last_val: np.ndarray | None = None
        self.deadline = (
            time.monotonic() + training.trial_timeout if training.trial_timeout else None
        )

    def fit(
        self,
        model: keras.Model,
        x: np.ndarray,
        y: np.ndarray,
        x_val: np.ndarray,
        *,
        phase: str,
        epochs: int,
        lr: float,
        index: int,
        augment: bool = False,
    ) -> bool:
        """Compile and fit one phase; False when the trial was pruned."""
        training = self.config.training
        with self.timing("build"):
            model.compile(
                optimizer=_optimizer(str(self.params["optimizer"]), lr),
                loss="sparse_categorical_crossentropy",
                jit_compile=self.settings.jit_compile,
            )
        if self.on_phase is not None:
            self.on_phase(phase, epochs)
        s = self.settings
        with self.timing("data"):
            # One shuffle seed per phase, so the cached and the image path
            # see the same batches in the same order.
            ds = make_dataset(
                x,
                y,
                int(self.params["batch_size"]),
                shuffle=True,
                seed=training.seed + index,
                augment=augment,
                cache=s.cache,
                prefetch=s.prefetch,
                parallel_calls=s.parallel_calls,
            )
        watch = _EpochWatch(
            x_val,
            self.dataset.val.y,
            self.dataset.n_classes,
            self.reporter,
            self.deadline,
            self.epochs_run,
            self.curve,
            self.timing,
            self.inference,
        )
        watch.every_epoch = self.every_epoch
        with self.timing("fit"):
            history = model.fit(
                ds,
                epochs=epochs,
                class_weight=self.class_weight,
                callbacks=[watch.callback],
                verbose=0,
                shuffle=False,  # tf.data already reshuffles each epoch
            )
        self.epochs_run += len(history.epoch)
        self.last_model, self.last_val = model, x_val
        self.last_proba = watch.last_proba
        losses = history.history.get("loss", [])
        if losses and not np.isfinite(losses[-1]):
            raise TrialFailedError(f"training loss became {losses[-1]} (diverged); lower the rate")
        if watch.timed_out:
            raise TrialFailedError(
                f"trial exceeded training.trial_timeout of {training.trial_timeout:g} s "
                f"after {self.epochs_run} epoch(s)"
            )
        self.pruned = watch.pruned
        return not watch.pruned

    def final_proba(self) -> np.ndarray:
        """Validation probabilities of the final model: the last epoch's, when it has one."""
        if self.last_proba is not None:
            return self.last_proba
        assert self.last_model is not None and self.last_val is not None
        with self.timing("predict"):
            return self.inference(self.last_model, self.last_val)


def _seed_head(model: keras.Model, seed: int) -> None:
    """Start the head from weights and a dropout stream that depend on the seed only.

    The cached path builds no backbone before the head, so the global random
    state differs from the image path's there; seeding the head itself makes
    both paths start from the same point.
    """
    import keras

    for k, name in enumerate(("head_dense", "predictions")):
        layer = model.get_layer(name)
        init = keras.initializers.GlorotUniform(seed=seed * 7919 + k)
        layer.kernel.assign(init(tuple(layer.kernel.shape), dtype=layer.kernel.dtype))
        if layer.bias is not None:
            layer.bias.assign(np.zeros(tuple(layer.bias.shape), dtype="float32"))
    gen = getattr(model.get_layer("head_dropout"), "seed_generator", None)
    if gen is not None:
        gen.state.assign(np.array([seed, 0], dtype=str(gen.state.dtype)))


def _copy_head(source: keras.Model, target: keras.Model) -> None:
    for name in HEAD_LAYERS:
        target.get_layer(name).set_weights(source.get_layer(name).get_weights())


def _phases(config: StudyConfig, params: dict[str, Any]) -> list[tuple[str, int, float]]:
    training = config.training
    lr = float(params["learning_rate"])
    if config.model.resolved_weights is None:
        return [("full", training.head_epochs + training.finetune_epochs, lr)]
    phases = [("frozen", training.head_epochs, lr)]
    if training.finetune_epochs:
        phases.append(
            ("finetune", training.finetune_epochs, lr * float(params["finetune_lr_factor"]))
        )
    return phases


def validates_every_epoch(config: StudyConfig) -> bool:
    """auto: per-epoch validation F1 only when a pruner can act on it."""
    every = config.training.validate_every_epoch
    return config.pruner.name != "none" if every == "auto" else bool(every)


def feature_cache_enabled(config: StudyConfig) -> bool:
    """auto: on when there is a frozen pretrained phase and images are not augmented."""
    training = config.training
    mode = training.feature_cache
    if mode == "off" or training.augment:
        return False
    if config.model.resolved_weights is None:
        if mode == "on":
            raise ConfigError(
                "training.feature_cache: on needs pretrained weights (model.weights); "
                "a randomly initialised backbone trains whole, so nothing is frozen to cache"
            )
        return False
    return True


# --------------------------------------------------------------------------
# the entry point


def train_and_evaluate(
    config: StudyConfig,
    dataset: Dataset,
    params: dict[str, Any],
    *,
    reporter: EpochReporter | None = None,
    on_phase: Callable[[str, int], None] | None = None,
    keep_model: bool = False,
    train_split: str = "train",
) -> TrainResult:
    """Build, train (two phases) and score one model on the validation split."""
    import keras

    t_start = time.perf_counter()
    training = config.training
    batch_size = int(params["batch_size"])
    splits = ["train", "val"] if train_split == "train+val" else [train_split]
    x_train, y_train = _concat(dataset, splits)
    if batch_size > len(y_train):
        raise DataError(
            f"search_space.batch_size: {batch_size} is larger than the {len(y_train)} "
            "training images; lower the batch size or add images"
        )
    use_cache = feature_cache_enabled(config)
    settings = resolve_settings(training)
    keras.utils.set_random_seed(training.seed)
    keras.mixed_precision.set_global_policy(settings.policy)
    cw = class_weights(y_train, dataset.n_classes) if training.class_weights == "balanced" else None
    run = _Run(
        config,
        dataset,
        params,
        settings,
        reporter=reporter,
        on_phase=on_phase,
        class_weight=cw,
    )
    if use_cache:
        model, unfrozen, cache_info = _train_cached(run, splits, x_train, y_train, keep_model)
    else:
        model, unfrozen = _train_images(run, x_train, y_train)
        cache_info = {"features": "off"}

    proba = run.final_proba()
    with run.timing("metrics"):
        if not np.isfinite(proba).all():
            raise TrialFailedError("the model produced NaN predictions (diverged)")
        evaluation = evaluate(dataset.val.y, proba)
    if not run.every_epoch and run.epochs_run:
        # One point on the learning curve: the final score, at the last epoch.
        run.curve.append(evaluation.macro_f1)
        if reporter is not None:
            with run.timing("report"):
                reporter(run.epochs_run - 1, evaluation.macro_f1)
    timing = dict(run.timing.seconds)
    timing["total"] = time.perf_counter() - t_start
    train_seconds = timing.get("fit", 0.0)
    return TrainResult(
        evaluation=evaluation,
        epochs=run.epochs_run,
        train_seconds=train_seconds,
        images_per_second=len(y_train) * run.epochs_run / max(train_seconds, 1e-9),
        curve=run.curve,
        pruned=run.pruned,
        unfrozen=unfrozen,
        model=model if keep_model else None,
        timing={k: round(v, 4) for k, v in timing.items()},
        cache=cache_info,
    )


def _concat(dataset: Dataset, splits: list[str]) -> tuple[np.ndarray, np.ndarray]:
    if len(splits) == 1:
        part = dataset.split(splits[0])
        return part.x, part.y
    return (
        np.concatenate([dataset.split(s).x for s in splits]),
        np.concatenate([dataset.split(s).y for s in splits]),
    )


def _build(run: _Run) -> tuple[keras.Model, keras.Model]:
    from hpo.models import build_model

    config, dataset = run.config, run.dataset
    with run.timing("build"):
        return build_model(
            config.model.backbone,
            input_shape=dataset.input_shape,
            n_classes=dataset.n_classes,
            weights=config.model.resolved_weights,
            params=run.params,
            pooling=config.model.pooling,
        )


def _train_images(
    run: _Run, x_train: np.ndarray, y_train: np.ndarray
) -> tuple[keras.Model, list[str]]:
    """The normal path: every epoch runs the images through the whole model."""
    from hpo.models import freeze, set_trainable_top

    model, backbone = _build(run)
    _seed_head(model, run.config.training.seed)
    unfrozen: list[str] = []
    for index, (phase, epochs, lr) in enumerate(_phases(run.config, run.params)):
        if phase == "frozen":
            freeze(backbone)
        elif phase == "finetune":
            unfrozen = set_trainable_top(backbone, int(run.params["unfrozen_layers"]))
        else:
            backbone.trainable = True
        go_on = run.fit(
            model,
            x_train,
            y_train,
            run.dataset.val.x,
            phase=phase,
            epochs=epochs,
            lr=lr,
            index=index,
            augment=run.config.training.augment,
        )
        if not go_on:
            break
    return model, unfrozen


# --------------------------------------------------------------------------
# the cached path


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


def find_cut(backbone: keras.Model, unfrozen_layers: int) -> Cut:
    """The highest layer at or below the top ``unfrozen_layers`` whose output alone
    feeds everything above it.

    With skip connections (ResNet, MobileNetV2) the layer just below the
    unfrozen ones may sit inside a residual block whose shortcut bypasses it;
    caching its output alone could not reproduce the block. Layer k's output
    separates the graph when no layer after k reads a tensor made before k.
    """
    import keras

    layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
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


def _key_base(run: _Run) -> dict[str, Any]:
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

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.model: keras.Model | None = None
        self.backbone: keras.Model | None = None

    def get(self) -> tuple[keras.Model, keras.Model]:
        if self.model is None or self.backbone is None:
            self.model, self.backbone = _build(self.run)
            self.backbone.trainable = False
        return self.model, self.backbone


def _cached_arrays(
    run: _Run,
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


def _train_cached(
    run: _Run,
    splits: list[str],
    x_train: np.ndarray,
    y_train: np.ndarray,
    keep_model: bool,
) -> tuple[keras.Model | None, list[str], dict[str, Any]]:
    """The fast path: head on cached features, then fine-tuning from the cut."""
    import keras

    from hpo.cache import FeatureCache, resolve_dir
    from hpo.models import build_head, set_trainable_top

    config, dataset, params = run.config, run.dataset, run.params
    training = config.training
    cache = FeatureCache(resolve_dir(training.cache_dir))
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
        _seed_head(head, training.seed)
    phases = _phases(config, params)
    _, epochs, lr = phases[0]
    go_on = run.fit(
        head,
        _join(feats, splits),
        y_train,
        feats["val"],
        phase="frozen",
        epochs=epochs,
        lr=lr,
        index=0,
    )
    trained_whole = False  # the full model itself was fine-tuned (fallback)
    unfrozen: list[str] = []
    if go_on and len(phases) > 1:
        _, epochs, lr = phases[1]
        n = int(params["unfrozen_layers"])
        model, backbone = lazy.get()
        cut = find_cut(backbone, n)
        info["cut"] = cut.layer
        if cut.moved:
            info["cut_wanted"] = cut.wanted
        top = len([la for la in backbone.layers if not isinstance(la, keras.layers.InputLayer)]) - 1
        reason = None
        if cut.index == top:
            # Nothing above the cut: fine-tuning trains the head alone, on the features.
            unfrozen = set_trainable_top(backbone, n)
            run.fit(
                head,
                _join(feats, splits),
                y_train,
                feats["val"],
                phase="finetune",
                epochs=epochs,
                lr=lr,
                index=1,
            )
        else:
            reason = _too_big(run, backbone, cut, splits)
        if reason is None and cut.index != top:
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
            run.fit(
                tuned,
                _join(acts, splits),
                y_train,
                acts["val"],
                phase="finetune",
                epochs=epochs,
                lr=lr,
                index=1,
            )
        elif reason is not None:
            log.info("feature cache: fine-tuning on images, not from the cut: %s", reason)
            info["activations"] = f"fallback: {reason}"
            with run.timing("build"):
                _copy_head(head, model)
                unfrozen = set_trainable_top(backbone, n)
            run.fit(
                model,
                x_train,
                y_train,
                dataset.val.x,
                phase="finetune",
                epochs=epochs,
                lr=lr,
                index=1,
            )
            trained_whole = True
    if not keep_model:
        return None, unfrozen, info
    model, _ = lazy.get()  # the backbone's layers are shared with the fine-tuned upper part
    if not trained_whole:
        with run.timing("build"):
            _copy_head(head, model)
    return model, unfrozen, info


def _too_big(run: _Run, backbone: keras.Model, cut: Cut, splits: list[str]) -> str | None:
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


def clear_session() -> None:
    """Free the graph and memory of the last trial (tensorflow#36465)."""
    import keras

    keras.backend.clear_session()
    gc.collect()
