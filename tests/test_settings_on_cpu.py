"""The GPU settings also run on a CPU (README, "GPU settings"): mixed precision,
XLA and augmentation each train a real model, which shows what it used, and a
trial with all of them completes and records them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import optuna
import pytest

from hpo import data as data_mod
from hpo import keys
from hpo.config import HYPERPARAMETER_DEFAULTS, StudyConfig, validate_config
from hpo.data import load_dataset
from hpo.objective import Objective
from hpo.training import TrainResult, clear_session, train_and_evaluate

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    data_mod.clear_cache()
    yield
    data_mod.clear_cache()
    clear_session()


def config(**training: Any) -> StudyConfig:
    return validate_config(
        {
            "study": {"name": "settings"},
            "dataset": {"source": "digits", "image_size": 16, "channels": 1, "max_per_class": 20},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 2, "validate_every_epoch": True, **training},
            "search_space": {"batch_size": 16},
        }
    )


def train(**training: Any) -> TrainResult:
    cfg = config(**training)
    params = {**HYPERPARAMETER_DEFAULTS, "batch_size": 16}
    result = train_and_evaluate(cfg, load_dataset(cfg.dataset), params, keep_model=True)
    assert result.epochs == 2 and all(np.isfinite(result.curve)), result.curve
    return result


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_trains_on_cpu(precision: str) -> None:
    model = train(mixed_precision=precision).model
    assert model.get_layer("head_dense").dtype_policy.name == f"mixed_{precision}"
    assert model.get_layer("head_dense").compute_dtype == precision
    # The softmax stays float32, so probabilities sum to 1 at full precision.
    assert model.get_layer("predictions").compute_dtype == "float32"


def test_xla_on_compiles_on_cpu() -> None:
    assert train(xla="on").model.jit_compile is True
    clear_session()
    assert train(xla="auto").model.jit_compile is False  # auto: only with a GPU


def test_augmentation_changes_what_is_trained() -> None:
    plain = train(augment=False)
    clear_session()
    augmented = train(augment=True)
    # Same seed, same batches: only the random flips and rotations differ.
    assert augmented.curve != plain.curve or not np.allclose(
        augmented.model.get_layer("predictions").get_weights()[0],
        plain.model.get_layer("predictions").get_weights()[0],
    ), "augment: true trained exactly the model augment: false did"
    assert augmented.cache == {"features": "off"}


def test_a_trial_with_every_setting_completes_and_records_them() -> None:
    cfg = config(mixed_precision="bfloat16", xla="on", augment=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(cfg, load_dataset(cfg.dataset)), n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get(keys.FAIL_REASON)
    assert trial.value == pytest.approx(trial.user_attrs[keys.METRICS]["macro_f1"])
    assert trial.user_attrs[keys.EPOCHS] == 2
    assert trial.user_attrs[keys.BACKEND] == "tensorflow"
    assert trial.user_attrs[keys.FEATURE_CACHE] == {"features": "off"}
    assert trial.user_attrs[keys.TIMING]["fit"] > 0
    training = trial.user_attrs[keys.RECIPE]["training"]  # what export rebuilds from
    used = {k: training[k] for k in ("mixed_precision", "xla", "augment")}
    assert used == {"mixed_precision": "bfloat16", "xla": "on", "augment": True}
