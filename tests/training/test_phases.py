"""hpo.training._phases: what the pruner sees after each epoch is the study's metric."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import optuna
import pytest

from hpo import data as data_mod
from hpo import keys
from hpo.config import StudyConfig, validate_config
from hpo.data import Dataset, Split, load_dataset
from hpo.objective import Objective
from hpo.training import clear_session

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    data_mod.clear_cache()
    yield
    data_mod.clear_cache()
    clear_session()


def study(metric: str, every_epoch: bool) -> StudyConfig:
    return validate_config(
        {
            "study": {"name": "metric"},
            "dataset": {"source": "digits", "image_size": 16, "channels": 1},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 3, "validate_every_epoch": every_epoch},
            "objective": {"metric": metric},
            "search_space": {"batch_size": 16},
        }
    )


def imbalanced(config: StudyConfig) -> Dataset:
    """Digits 0, 1 and 2 at 12:2:1, so accuracy and macro F1 part ways."""
    full = load_dataset(config.dataset)

    def take(part: Split, counts: tuple[int, ...]) -> Split:
        idx = np.concatenate([np.flatnonzero(part.y == k)[:n] for k, n in enumerate(counts)])
        return Split(part.x[idx], part.y[idx])

    return Dataset(
        class_names=full.class_names[:3],
        train=take(full.train, (96, 16, 8)),
        val=take(full.val, (24, 4, 2)),
        test=take(full.test, (3, 3, 3)),
        sha256="imbalanced",
        source="digits",
    )


@pytest.mark.parametrize("every_epoch", [True, False], ids=["every-epoch", "at-the-end"])
def test_the_pruner_sees_the_configured_metric(every_epoch: bool) -> None:
    config = study("accuracy", every_epoch)
    dataset = imbalanced(config)
    n_val = len(dataset.val)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.create_study(direction="maximize")
    trials.optimize(Objective(config, dataset), n_trials=1)
    trial = trials.trials[0]
    scores = trial.user_attrs[keys.METRICS]
    # The premise: on this imbalanced set the two metrics differ.
    assert scores["accuracy"] != pytest.approx(scores["macro_f1"], abs=1e-3), scores
    steps = trial.intermediate_values
    assert sorted(steps) == ([0, 1, 2] if every_epoch else [2])
    # Every reported value is an accuracy (a multiple of 1/n_val), not a macro F1,
    for value in steps.values():
        assert value * n_val == pytest.approx(round(value * n_val), abs=1e-9), steps
    # and the last one is the value the trial returns.
    assert steps[2] == pytest.approx(scores["accuracy"])
    assert trial.value == pytest.approx(scores["accuracy"])
