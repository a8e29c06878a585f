from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.config import HYPERPARAMETER_DEFAULTS, validate_config
from hpo.space import SearchSpace

CONFIG = validate_config(
    {
        "study": {"name": "s"},
        "dataset": {"source": "digits"},
        "model": {"backbone": "small_cnn", "weights": "none"},
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
            "dense_units": {"type": "int", "low": 32, "high": 256, "step": 32},
            "unfrozen_layers": {"type": "int", "low": 1, "high": 64, "log": True},
            "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
            "l2": 0.001,
        },
    }
)


def test_distributions_and_fixed_values() -> None:
    space = SearchSpace.from_config(CONFIG)
    d = space.distributions
    assert d["learning_rate"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert d["dropout"] == FloatDistribution(0.0, 0.5, step=0.1)
    assert d["dense_units"] == IntDistribution(32, 256, step=32)
    assert d["unfrozen_layers"] == IntDistribution(1, 64, log=True)
    assert d["batch_size"] == CategoricalDistribution((16, 32, 64))
    assert space.fixed["l2"] == 0.001
    assert space.fixed["l1"] == HYPERPARAMETER_DEFAULTS["l1"]
    assert set(space.fixed) | set(d) == set(HYPERPARAMETER_DEFAULTS)


def test_suggest_gives_every_hyperparameter_inside_the_space() -> None:
    space = SearchSpace.from_config(CONFIG)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        params = space.suggest(trial)
        assert set(params) == set(HYPERPARAMETER_DEFAULTS)
        for name, dist in space.distributions.items():
            assert dist._contains(dist.to_internal_repr(params[name])), (name, params[name])
        study.tell(trial, 0.5)
    full = space.complete(study.trials[0].params)
    assert full["l2"] == 0.001 and full["learning_rate"] == study.trials[0].params["learning_rate"]


def test_describe() -> None:
    text = SearchSpace.from_config(CONFIG).describe()
    assert "(log)" in text["learning_rate"] and text["l2"] == "fixed 0.001"
    assert text["batch_size"].startswith("one of")


@pytest.mark.parametrize("entry", [{"type": "float", "low": 1, "high": 300}])
def test_integer_hyperparameters_must_be_int(entry: dict) -> None:  # type: ignore[type-arg]
    from hpo.errors import ConfigError

    with pytest.raises(ConfigError, match="must be of type int"):
        validate_config({**CONFIG.to_dict(), "search_space": {"dense_units": entry}})
