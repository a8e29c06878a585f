"""One trial's phases: the plan, the per-epoch watch, and the one place that fits.

Every phase of either path (images or cached features) goes through
``Run.run_phase``, the only caller of ``model.fit``: it compiles, builds the
input (tf.data on TensorFlow, NumPy batches on JAX and PyTorch), fits with the
epoch watch, and turns divergence or the trial deadline into ``TrialFailedError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo import hyperparameters
from hpo.errors import TrialFailedError
from hpo.metrics import score
from hpo.training._inference import Inference
from hpo.training._pipeline import make_dataset
from hpo.training._timing import Timing

if TYPE_CHECKING:
    import keras

    from hpo.config import StudyConfig
    from hpo.data import Dataset
    from hpo.training._device import RunSettings

# Receives (epoch, validation value of objective.metric) after each epoch;
# True asks training to stop (prune).
EpochReporter = Callable[[int, float], bool]

HEAD_LAYERS = ("head_dense", "head_dropout", "predictions")  # hpo.models.build_head's names


def make_optimizer(name: str, lr: float) -> keras.optimizers.Optimizer:
    """The Keras optimizer named in ``hpo.hyperparameters``; unknown names are refused."""
    import keras

    spec = hyperparameters.optimizer(name)
    cls = getattr(keras.optimizers, spec.keras_class)
    return cls(learning_rate=lr, **spec.options)


def plan(config: StudyConfig, params: dict[str, Any]) -> list[tuple[str, int, float]]:
    """(phase, epochs, learning rate) for each phase the trial runs."""
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
    """auto: per-epoch validation only when a pruner can act on it."""
    every = config.training.validate_every_epoch
    return config.pruner.name != "none" if every == "auto" else bool(every)


class EpochWatch:
    """Keras callback: the objective metric per epoch, pruning and the trial deadline."""

    def __init__(
        self,
        x_val: np.ndarray,
        y_val: np.ndarray,
        n_classes: int,
        reporter: EpochReporter | None,
        deadline: float | None,
        offset: int,
        curve: list[float],
        *,
        metric: str = "macro_f1",
        every_epoch: bool = True,
        timing: Timing | None = None,
        inference: Inference | None = None,
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
        self.metric, self.every_epoch = metric, every_epoch
        self.timing = timing or Timing()
        self.inference = inference or Inference()
        self.pruned = False
        self.timed_out = False
        self.last_proba: np.ndarray | None = None

    def on_epoch_end(self, model: keras.Model, epoch: int) -> None:
        if not self.every_epoch:
            return
        with self.timing("predict"):
            proba = self.inference(model, self.x_val)
        with self.timing("metrics"):
            if not np.isfinite(proba).all():
                raise TrialFailedError("the model produced NaN predictions (diverged)")
            value = score(self.metric, self.y_val, proba.argmax(axis=1), self.n_classes)
        self.last_proba = proba
        self.curve.append(value)
        if self.reporter is not None:
            with self.timing("report"):
                stop = self.reporter(self.offset + epoch, value)
            if stop:
                self.pruned = True
                model.stop_training = True


class Run:
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
        self.metric = config.objective.metric
        self.timing = Timing()
        self.inference = Inference(settings.jit_compile, settings.backend)
        self.every_epoch = validates_every_epoch(config)
        self.curve: list[float] = []  # objective.metric on validation, per epoch
        self.epochs_run = 0
        self.pruned = False
        self.last_proba: np.ndarray | None = None
        self.last_model: keras.Model | None = None
        self.last_val: np.ndarray | None = None
        self.deadline = (
            time.monotonic() + training.trial_timeout if training.trial_timeout else None
        )

    def build(self) -> tuple[keras.Model, keras.Model]:
        """The full classifier and its backbone for this trial."""
        from hpo.models import build_model

        config, dataset = self.config, self.dataset
        with self.timing("build"):
            return build_model(
                config.model.backbone,
                input_shape=dataset.input_shape,
                n_classes=dataset.n_classes,
                weights=config.model.resolved_weights,
                params=self.params,
                pooling=config.model.pooling,
            )

    def run_phase(
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
                optimizer=make_optimizer(str(self.params["optimizer"]), lr),
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
                backend=s.backend,
            )
        watch = EpochWatch(
            x_val,
            self.dataset.val.y,
            self.dataset.n_classes,
            self.reporter,
            self.deadline,
            self.epochs_run,
            self.curve,
            metric=self.metric,
            every_epoch=self.every_epoch,
            timing=self.timing,
            inference=self.inference,
        )
        with self.timing("fit"):
            history = model.fit(
                ds,
                epochs=epochs,
                class_weight=self.class_weight,
                callbacks=[watch.callback],
                verbose=0,
                shuffle=False,  # the input already reshuffles each epoch
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


def seed_head(model: keras.Model, seed: int) -> None:
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


def copy_head(source: keras.Model, target: keras.Model) -> None:
    for name in HEAD_LAYERS:
        target.get_layer(name).set_weights(source.get_layer(name).get_weights())
