"""hpo.hyperparameters: the one table of defaults, ranges and optimizers."""

from __future__ import annotations

import math

import pytest

from hpo import hyperparameters as hp
from hpo.config import HYPERPARAMETER_DEFAULTS, validate_config
from hpo.errors import ConfigError


def test_every_numeric_default_is_within_its_bounds() -> None:
    for name, value in hp.DEFAULTS.items():
        hp.check_value(name, value)
    assert set(hp.BOUNDS) | {"optimizer"} == set(hp.DEFAULTS)
    assert HYPERPARAMETER_DEFAULTS is hp.DEFAULTS  # the old import path reads the same table


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("learning_rate", 0.0, "out of range"),
        ("learning_rate", math.nan, "out of range"),
        ("dropout", 1.0, "between 0 and 0.99"),
        ("batch_size", 16.5, "must be an integer from 1 to 65536"),
        ("dense_units", True, "is not a number"),
        ("optimizer", "adagrad", "allowed: adam, sgd, rmsprop, adamw"),
        ("optimizer", 3, "is not allowed"),
    ],
)
def test_values_outside_the_trainer_ranges(name: str, value: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=f"search_space.{name}: .*{fragment}"):
        hp.check_value(name, value)


def test_integer_hyperparameters_cannot_be_searched_as_floats() -> None:
    with pytest.raises(ConfigError, match="batch_size: must be of type int"):
        hp.check_searched("batch_size", "float", (8.0, 64.0))
    hp.check_searched("batch_size", "int", (8, 64))


def test_unknown_optimizer_is_an_error_not_adam() -> None:
    with pytest.raises(ConfigError, match="'adagrad' is not allowed"):
        hp.optimizer("adagrad")
    assert hp.optimizer("sgd").keras_class == "SGD"
    assert dict(hp.optimizer("sgd").options) == {"momentum": 0.9}


def test_study_file_refuses_an_unknown_optimizer() -> None:
    data = {
        "study": {"name": "t"},
        "dataset": {"source": "digits", "image_size": 16, "channels": 1},
        "model": {"backbone": "small_cnn", "weights": "none"},
        "search_space": {"optimizer": {"type": "categorical", "choices": ["adam", "adagrad"]}},
    }
    with pytest.raises(ConfigError, match=r"study file: search_space\.optimizer: 'adagrad'"):
        validate_config(data)


def test_optimizer_classes_exist_in_keras() -> None:
    keras = pytest.importorskip("keras")
    for spec in hp.OPTIMIZERS.values():
        assert hasattr(keras.optimizers, spec.keras_class), spec
