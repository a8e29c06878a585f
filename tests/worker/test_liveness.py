"""Liveness: beats, stale-trial reaping and the hang watchdog (in a real process)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from hpo.config import StudyConfig
from hpo.storage import BEAT_ATTR, REQUEUES_ATTR, open_storage
from hpo.studies import make_study
from hpo.worker import HUNG_EXIT_CODE, hang_margin
from hpo.worker._liveness import Heartbeat, StaleTrials

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")

SCRIPT = """
import sys, time
from hpo.config import validate_config
from hpo.studies import make_study
from hpo.storage import open_storage
from hpo.worker import run_worker

config = validate_config({
    "study": {"name": "hang"},
    "objective": {"benchmark": "branin"},
    "training": {"trial_timeout": 1},
})
study = make_study(config, open_storage(sys.argv[1], heartbeat=True))

def stuck(trial):
    trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    time.sleep(60)  # stands for an operation that never returns to Python
    return 0.0

run_worker(config, study, n_trials=1, objective=stuck)
"""


def test_a_hung_trial_is_failed_and_the_process_exits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    env = {**os.environ, "HPO_HANG_MARGIN": "1", "HPO_HEARTBEAT_INTERVAL": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, url], env=env, capture_output=True, text=True, timeout=50
    )
    assert result.returncode == HUNG_EXIT_CODE, result.stderr
    trial = optuna.load_study(study_name="hang", storage=url).trials[0]
    assert trial.state == TrialState.FAIL
    assert "hung past training.trial_timeout of 1 s" in trial.user_attrs[keys.FAIL_REASON]


def _running(study: optuna.Study) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    return trial


def _assert_lost_and_requeued(study: optuna.Study, grace: int) -> None:
    lost, queued = study.trials
    assert lost.state == TrialState.FAIL
    assert lost.user_attrs[keys.FAIL_REASON] == (
        f"worker lost: no heartbeat for {grace} s; re-queued once"
    )
    assert queued.state == TrialState.WAITING
    assert queued.params == lost.params
    assert queued.system_attrs[REQUEUES_ATTR] == {"lost": 1}


def test_a_trial_whose_beats_stop_is_failed_and_requeued(
    config: StudyConfig, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPO_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("HPO_GRACE_PERIOD", "1")
    study = make_study(config, open_storage(sqlite_url, heartbeat=True))
    trial = _running(study)
    with Heartbeat(study, trial) as beat:
        assert beat.native and beat.interval == 1.0
    assert StaleTrials()(study) == []  # just beat
    # The storage compares the last beat with its own clock: poll until it calls it stale.
    deadline = time.monotonic() + 30
    while not (reaped := StaleTrials()(study)):
        assert time.monotonic() < deadline, "a trial without beats was never reaped"
        time.sleep(0.2)
    assert reaped == [trial.number]
    _assert_lost_and_requeued(study, grace=1)


def test_without_a_heartbeat_table_a_beat_attr_is_watched(
    config: StudyConfig, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gRPC proxy's way: a trial is lost when its beat attr stops changing."""
    monkeypatch.setenv("HPO_GRACE_PERIOD", "0")
    study = make_study(config, open_storage(sqlite_url))  # no heartbeat table, like the proxy
    trial = _running(study)
    with Heartbeat(study, trial) as beat:
        assert not beat.native
    assert str(study.trials[0].system_attrs[BEAT_ATTR]).endswith(f":{os.getpid()}:1")
    stale = StaleTrials()
    assert stale(study) == []  # first sight of this beat
    assert stale(study) == [trial.number]  # unchanged since, for longer than 0 s
    _assert_lost_and_requeued(study, grace=0)


def test_hang_margin_is_read_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPO_HANG_MARGIN", raising=False)
    assert hang_margin() == 60.0
    monkeypatch.setenv("HPO_HANG_MARGIN", "2.5")
    assert hang_margin() == 2.5
