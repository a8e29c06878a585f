"""Two-phase training of one trial's model and its validation scoring.

Phase 1 trains the head on a frozen pretrained backbone; phase 2 unfreezes
the backbone's top ``unfrozen_layers`` layers (batch norm stays frozen) at
``learning_rate * finetune_lr_factor``. A backbone without pretrained weights
has nothing to preserve, so it trains whole for all epochs at the base rate.
The study's ``objective.metric`` on validation is computed after every epoch
and handed to a reporter, which is how pruners see the learning curve.

With ``training.feature_cache`` the frozen backbone's activations are
computed once per study (``_cached``, ``_cut``); both paths start the head
from the same seeded weights and see the batches in the same order, so they
agree within floating-point noise.

Keras runs on TensorFlow, JAX or PyTorch (``training.backend``, else
``KERAS_BACKEND``), chosen once per process before Keras is imported.

Modules: ``_train`` (entry point), ``_phases`` (phase plan, epoch watch, the
one ``fit``), ``_cached`` and ``_cut`` (feature-cache path), ``_pipeline``
(tf.data or NumPy batches, class weights), ``_inference``, ``_timing``,
``_backend`` (which Keras backend), ``_device`` (GPU check, settings).
"""

from __future__ import annotations

from hpo.training._backend import BACKENDS, loaded_backend, requested_backend, select_backend
from hpo.training._cached import feature_cache_enabled
from hpo.training._cut import Cut, find_cut, lower_model, upper_model
from hpo.training._device import (
    RunSettings,
    check_gpu,
    configure_backend,
    configure_tensorflow,
    device_name,
    diagnose_gpu,
    resolve_settings,
    training_device,
    trial_globals,
)
from hpo.training._inference import Inference, predict_batches, predict_proba
from hpo.training._phases import (
    HEAD_LAYERS,
    EpochReporter,
    make_optimizer,
    validates_every_epoch,
)
from hpo.training._pipeline import AUTOTUNE, class_weights, make_dataset
from hpo.training._timing import KERAS_PARTS, Timing
from hpo.training._train import TrainResult, clear_session, train_and_evaluate

__all__ = [
    "AUTOTUNE",
    "BACKENDS",
    "HEAD_LAYERS",
    "KERAS_PARTS",
    "Cut",
    "EpochReporter",
    "Inference",
    "RunSettings",
    "Timing",
    "TrainResult",
    "check_gpu",
    "class_weights",
    "clear_session",
    "configure_backend",
    "configure_tensorflow",
    "device_name",
    "diagnose_gpu",
    "feature_cache_enabled",
    "find_cut",
    "loaded_backend",
    "lower_model",
    "make_dataset",
    "make_optimizer",
    "predict_batches",
    "predict_proba",
    "requested_backend",
    "resolve_settings",
    "select_backend",
    "train_and_evaluate",
    "training_device",
    "trial_globals",
    "upper_model",
    "validates_every_epoch",
]
