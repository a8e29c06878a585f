"""A benchmark study, whose trials need no training: the worker's own logic under test."""

from __future__ import annotations

import optuna
import pytest

from hpo.config import StudyConfig, validate_config
from hpo.storage import open_storage
from hpo.studies import make_study

CONFIG = {"study": {"name": "loop"}, "objective": {"benchmark": "branin"}}


@pytest.fixture
def config() -> StudyConfig:
    return validate_config(CONFIG)


@pytest.fixture
def study(config: StudyConfig, sqlite_url: str) -> optuna.Study:
    return make_study(config, open_storage(sqlite_url, heartbeat=True))


def quick(trial: optuna.Trial) -> float:
    """An objective of no duration."""
    return trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
