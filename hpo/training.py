"""Two-phase training of one trial's model and its validation scoring.

Phase 1 trains the head on a frozen pretrained backbone; phase 2 unfreezes
the backbone's top ``unfrozen_layers`` layers (batch norm stays frozen) at
``learning_rate * finetune_lr_factor``. A backbone without pretrained weights
has nothing to preserve, so it trains whole for all epochs at the base rate.
Validation macro F1 is computed after every epoch and handed to a reporter,
which is how pruners see the learning curve.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.errors import DataError, TrialFailedError
from hpo.metrics import Evaluation, evaluate, macro_f1

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from hpo.config import StudyConfig
    from hpo.data import Dataset


# Receives (epoch, validation F1) after each epoch; True asks training to stop (prune).
EpochReporter = Callable[[int, float], bool]


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


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    augment: bool = False,
) -> tf.data.Dataset:
    """An in-memory tf.data pipeline: cached, shuffled per epoch, prefetched."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment:
        flip = tf.keras.layers.RandomFlip("horizontal", seed=seed)
        rot = tf.keras.layers.RandomRotation(0.05, seed=seed)

        def aug(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            images = tf.cast(images, tf.float32)
            return rot(flip(images, training=True), training=True), labels

        ds = ds.map(aug, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


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
    out = model.predict(x, batch_size=batch_size, verbose=0)
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
    ) -> None:
        import keras

        outer = self

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
        self.pruned = False
        self.timed_out = False
        self.predict_seconds = 0.0

    def on_epoch_end(self, model: keras.Model, epoch: int) -> None:
        t0 = time.perf_counter()
        proba = predict_proba(model, self.x_val)
        self.predict_seconds += time.perf_counter() - t0
        f1 = macro_f1(self.y_val, proba.argmax(axis=1), self.n_classes)
        if not np.isfinite(proba).all():
            raise TrialFailedError("the model produced NaN predictions (diverged)")
        self.curve.append(f1)
        step = self.offset + epoch
        if self.reporter is not None and self.reporter(step, f1):
            self.pruned = True
            model.stop_training = True


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

    from hpo.models import build_model, freeze, set_trainable_top

    training = config.training
    batch_size = int(params["batch_size"])
    train = dataset.split(train_split) if train_split != "train+val" else None
    if train is None:
        x_train = np.concatenate([dataset.train.x, dataset.val.x])
        y_train = np.concatenate([dataset.train.y, dataset.val.y])
    else:
        x_train, y_train = train.x, train.y
    if batch_size > len(y_train):
        raise DataError(
            f"search_space.batch_size: {batch_size} is larger than the {len(y_train)} "
            "training images; lower the batch size or add images"
        )
    keras.utils.set_random_seed(training.seed)
    keras.mixed_precision.set_global_policy(
        "float32" if training.mixed_precision == "off" else f"mixed_{training.mixed_precision}"
    )
    weights = config.model.resolved_weights
    model, backbone = build_model(
        config.model.backbone,
        input_shape=dataset.input_shape,
        n_classes=dataset.n_classes,
        weights=weights,
        params=params,
        pooling=config.model.pooling,
    )
    cw = class_weights(y_train, dataset.n_classes) if training.class_weights == "balanced" else None
    ds_train = make_dataset(
        x_train, y_train, batch_size, shuffle=True, seed=training.seed, augment=training.augment
    )
    deadline = time.monotonic() + training.trial_timeout if training.trial_timeout else None
    curve: list[float] = []
    lr = float(params["learning_rate"])
    pretrained = weights is not None
    phases: list[tuple[str, int, float]] = []
    if pretrained:
        phases.append(("frozen", training.head_epochs, lr))
        if training.finetune_epochs:
            phases.append(
                ("finetune", training.finetune_epochs, lr * float(params["finetune_lr_factor"]))
            )
    else:
        phases.append(("full", training.head_epochs + training.finetune_epochs, lr))

    fit_seconds = 0.0
    epochs_run = 0
    predict_seconds = 0.0
    unfrozen: list[str] = []
    watch: _EpochWatch | None = None
    for phase, epochs, phase_lr in phases:
        if phase == "frozen":
            freeze(backbone)
        elif phase == "finetune":
            unfrozen = set_trainable_top(backbone, int(params["unfrozen_layers"]))
        else:
            backbone.trainable = True
        model.compile(
            optimizer=_optimizer(str(params["optimizer"]), phase_lr),
            loss="sparse_categorical_crossentropy",
            jit_compile=False,
        )
        if on_phase is not None:
            on_phase(phase, epochs)
        watch = _EpochWatch(
            dataset.val.x, dataset.val.y, dataset.n_classes, reporter, deadline, epochs_run, curve
        )
        t0 = time.perf_counter()
        history = model.fit(
            ds_train,
            epochs=epochs,
            class_weight=cw,
            callbacks=[watch.callback],
            verbose=0,
            shuffle=False,  # tf.data already reshuffles each epoch
        )
        fit_seconds += time.perf_counter() - t0
        predict_seconds += watch.predict_seconds
        epochs_run += len(history.epoch)
        losses = history.history.get("loss", [])
        if losses and not np.isfinite(losses[-1]):
            raise TrialFailedError(f"training loss became {losses[-1]} (diverged); lower the rate")
        if watch.timed_out:
            raise TrialFailedError(
                f"trial exceeded training.trial_timeout of {training.trial_timeout:g} s "
                f"after {epochs_run} epoch(s)"
            )
        if watch.pruned:
            break

    train_seconds = fit_seconds - predict_seconds
    proba = predict_proba(model, dataset.val.x)
    evaluation = evaluate(dataset.val.y, proba)
    result = TrainResult(
        evaluation=evaluation,
        epochs=epochs_run,
        train_seconds=train_seconds,
        images_per_second=len(y_train) * epochs_run / max(train_seconds, 1e-9),
        curve=curve,
        pruned=bool(watch is not None and watch.pruned),
        unfrozen=unfrozen,
        model=model if keep_model else None,
    )
    return result


def clear_session() -> None:
    """Free the graph and memory of the last trial (tensorflow#36465)."""
    import keras

    keras.backend.clear_session()
    gc.collect()
