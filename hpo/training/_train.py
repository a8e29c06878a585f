"""The entry point: one trial's model, trained in phases and scored on validation."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.errors import DataError, TrialFailedError
from hpo.metrics import Evaluation, evaluate
from hpo.training._backend import select_backend
from hpo.training._cached import feature_cache_enabled, train_cached
from hpo.training._device import resolve_settings, trial_globals
from hpo.training._phases import EpochReporter, Run, plan, seed_head
from hpo.training._pipeline import class_weights

if TYPE_CHECKING:
    import keras

    from hpo.config import StudyConfig
    from hpo.data import Dataset


@dataclass
class TrainResult:
    evaluation: Evaluation
    epochs: int
    train_seconds: float
    images_per_second: float
    curve: list[float]  # objective.metric on validation, per reported epoch
    pruned: bool = False
    stopped_reason: str | None = None
    unfrozen: list[str] = field(default_factory=list)
    model: Any = None
    # Seconds per part: build, data, cache, features, fit, predict, metrics, report, total.
    timing: dict[str, float] = field(default_factory=dict)
    # What the feature cache did: {"features": "disk", "cut": "block_13_project_BN", ...}.
    cache: dict[str, Any] = field(default_factory=dict)
    backend: str = "tensorflow"  # the Keras backend that trained the model


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
    """Build, train (two phases) and score one model on the validation split.

    The reporter gets ``objective.metric`` after each epoch (or once at the
    end without per-epoch validation); Keras' dtype policy and the Python and
    NumPy random states are the caller's again when this returns or raises.
    The Keras backend is ``training.backend`` (else ``KERAS_BACKEND``); a
    process that imported Keras with another one is refused (``HpoError``).
    """
    t_start = time.perf_counter()
    training = config.training
    backend = select_backend(training.backend)
    batch_size = int(params["batch_size"])
    splits = ["train", "val"] if train_split == "train+val" else [train_split]
    x_train, y_train = _concat(dataset, splits)
    if batch_size > len(y_train):
        raise DataError(
            f"search_space.batch_size: {batch_size} is larger than the {len(y_train)} "
            "training images; lower the batch size or add images"
        )
    use_cache = feature_cache_enabled(config)
    settings = resolve_settings(training, backend=backend)
    cw = class_weights(y_train, dataset.n_classes) if training.class_weights == "balanced" else None
    run = Run(
        config,
        dataset,
        params,
        settings,
        reporter=reporter,
        on_phase=on_phase,
        class_weight=cw,
    )
    with trial_globals(seed=training.seed, policy=settings.policy):
        if use_cache:
            model, unfrozen, cache_info = train_cached(run, splits, x_train, y_train, keep_model)
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
        value = evaluation.scalars()[run.metric]
        assert value is not None
        run.curve.append(value)
        if reporter is not None:
            with run.timing("report"):
                reporter(run.epochs_run - 1, value)
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
        backend=backend,
    )


def _concat(dataset: Dataset, splits: list[str]) -> tuple[np.ndarray, np.ndarray]:
    if len(splits) == 1:
        part = dataset.split(splits[0])
        return part.x, part.y
    return (
        np.concatenate([dataset.split(s).x for s in splits]),
        np.concatenate([dataset.split(s).y for s in splits]),
    )


def _train_images(
    run: Run, x_train: np.ndarray, y_train: np.ndarray
) -> tuple[keras.Model, list[str]]:
    """The normal path: every epoch runs the images through the whole model."""
    from hpo.models import freeze, set_trainable_top

    model, backbone = run.build()
    seed_head(model, run.config.training.seed)
    unfrozen: list[str] = []
    for index, (phase, epochs, lr) in enumerate(plan(run.config, run.params)):
        if phase == "frozen":
            freeze(backbone)
        elif phase == "finetune":
            unfrozen = set_trainable_top(backbone, int(run.params["unfrozen_layers"]))
        else:
            backbone.trainable = True
        go_on = run.run_phase(
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


def clear_session() -> None:
    """Free the graph and memory of the last trial (tensorflow#36465)."""
    import keras

    keras.backend.clear_session()
    gc.collect()
