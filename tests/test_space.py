"""The search space: study-file entries as Optuna distributions."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.config import HYPERPARAMETER_DEFAULTS, validate_config
from hpo.errors import ConfigError
from hpo.space import SearchSpace

ENTRIES: dict[str, Any] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
    "dense_units": {"type": "int", "low": 32, "high": 256, "step": 32},
    "unfrozen_layers": {"type": "int", "low": 1, "high": 64, "log": True},
    "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    "l2": 0.001,
}


def config_with(entries: dict[str, Any]) -> Any:
    return validate_config(
        {
            "study": {"name": "s"},
            "dataset": {"source": "digits"},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "search_space": entries,
        }
    )


CONFIG = config_with(ENTRIES)


def test_distributions() -> None:
    d = SearchSpace.from_config(CONFIG).distributions
    assert d["learning_rate"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert d["dropout"] == FloatDistribution(0.0, 0.5, step=0.1)
    assert d["dense_units"] == IntDistribution(32, 256, step=32)
    assert d["unfrozen_layers"] == IntDistribution(1, 64, log=True)
    assert d["batch_size"] == CategoricalDistribution((16, 32, 64))
    assert d["optimizer"] == CategoricalDistribution(("adam", "sgd"))
    assert set(d) == set(ENTRIES) - {"l2"}


def test_fixed_values_and_defaults() -> None:
    space = SearchSpace.from_config(CONFIG)
    assert space.fixed["l2"] == 0.001
    for name in ("l1", "finetune_lr_factor"):
        assert space.fixed[name] == HYPERPARAMETER_DEFAULTS[name]
    # Every hyperparameter is either searched or fixed, never both.
    assert set(space.fixed) | set(space.distributions) == set(HYPERPARAMETER_DEFAULTS)
    assert not set(space.fixed) & set(space.distributions)


def test_empty_space_is_all_defaults() -> None:
    space = SearchSpace.from_config(config_with({}))
    assert space.distributions == {}
    assert space.fixed == HYPERPARAMETER_DEFAULTS
    trial = optuna.create_study().ask()
    assert space.suggest(trial) == HYPERPARAMETER_DEFAULTS
    assert trial.params == {}


def _inside(dist: Any, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if not dist.low <= value <= dist.high:
        return False
    if isinstance(dist, IntDistribution):
        return isinstance(value, int) and (value - dist.low) % dist.step == 0
    if dist.step is not None:
        k = (value - dist.low) / dist.step
        return math.isclose(k, round(k), abs_tol=1e-9)
    return isinstance(value, float)


@pytest.mark.parametrize(
    "sampler",
    [optuna.samplers.RandomSampler(seed=0), optuna.samplers.TPESampler(seed=0)],
    ids=["random", "tpe"],
)
def test_suggest_returns_every_hyperparameter_inside_the_space(
    sampler: optuna.samplers.BaseSampler,
) -> None:
    space = SearchSpace.from_config(CONFIG)
    study = optuna.create_study(sampler=sampler)
    for i in range(15):
        trial = study.ask()
        params = space.suggest(trial)
        assert set(params) == set(HYPERPARAMETER_DEFAULTS)
        for name, dist in space.distributions.items():
            assert _inside(dist, params[name]), (name, params[name])
            assert trial.params[name] == params[name]
        assert set(trial.params) == set(space.distributions)  # fixed values are not asked
        assert params["l2"] == 0.001
        study.tell(trial, float(i % 4))
    assert {t.distributions["batch_size"] for t in study.trials} == {
        CategoricalDistribution((16, 32, 64))
    }


def test_complete_adds_the_fixed_values() -> None:
    space = SearchSpace.from_config(CONFIG)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    suggested = space.suggest(trial)
    study.tell(trial, 0.5)
    stored = study.trials[0].params
    assert space.complete(stored) == suggested
    assert space.complete({}) == space.fixed
    # A stored value wins over the fixed one.
    assert space.complete({"l2": 0.5})["l2"] == 0.5


def test_describe() -> None:
    text = SearchSpace.from_config(CONFIG).describe()
    assert text["learning_rate"] == "1e-05 .. 0.01 (log)"
    assert text["dense_units"] == "32 .. 256 step 32"
    assert text["batch_size"] == "one of 16, 32, 64"
    assert text["l2"] == "fixed 0.001"
    assert set(text) == set(HYPERPARAMETER_DEFAULTS)


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ({"dense_units": {"type": "float", "low": 1.0, "high": 300.0}}, "must be of type int"),
        ({"batch_size": {"type": "categorical", "choices": [8, 0]}}, "0 is out of range"),
        ({"optimizer": {"type": "categorical", "choices": ["adam", "lion"]}}, "'lion'"),
        ({"learning_rate": {"type": "float", "low": 1e-4, "high": 20.0}}, "20.0 is out of range"),
        ({"dropout": "high"}, "'high' is not a number"),
        ({"unfrozen_layers": -1}, "-1 is out of range"),
    ],
)
def test_from_entries_checks_values_against_the_trainer(
    entries: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config_with(entries)
    assert fragment in str(info.value)
    name = next(iter(entries))
    assert f"search_space.{name}: " in str(info.value)
