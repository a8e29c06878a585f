"""A database written by an earlier hpo release still opens and continues.

The session's ``image_study`` copied ``tests/fixtures/study-0.1.0.db`` and ran
``hpo run tests/fixtures/study-0.1.0.yaml --trials 1`` on it with today's hpo.
"""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from tests.helpers import hpo
from tests.image_study import FIXTURES, OLD_NAME, ImageStudy, trial_rows

pytestmark = pytest.mark.slow


def test_the_fixture_was_written_by_release_0_1_0() -> None:
    study = optuna.load_study(
        study_name=OLD_NAME, storage=f"sqlite:///{FIXTURES / 'study-0.1.0.db'}"
    )
    assert study.user_attrs[keys.STUDY_VERSIONS]["hpo"] == "0.1.0"
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3


def test_continue_a_study_written_by_release_0_1_0(image_study: ImageStudy) -> None:
    assert image_study.continued.returncode == 0, image_study.continued.stderr
    old = image_study.old_trials
    assert len(old) == 3
    after = trial_rows(image_study.url, OLD_NAME)
    assert len(after) == 4  # one more trial, added by today's hpo
    assert after[:3] == old  # the old trials keep their states, values and params
    number, state, value, params = after[3]
    assert (number, state) == (3, "COMPLETE") and value is not None
    assert set(params) == {"learning_rate", "dropout", "batch_size"}

    study = optuna.load_study(study_name=OLD_NAME, storage=image_study.url)
    best = hpo("best", OLD_NAME, "--storage", image_study.url, "--json")
    assert best.returncode == 0, best.stderr
    info = json.loads(best.stdout)
    assert info["number"] == study.best_trial.number
    assert info["value"] == max(v for _, _, v, _ in after if v is not None)
    assert info["params"] == study.best_trial.params
