"""The worker loop itself, in real processes: the hang watchdog."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from hpo import keys
from hpo.worker import HUNG_EXIT_CODE

SCRIPT = """
import sys, time
from hpo.config import validate_config
from hpo.studies import make_study
from hpo.storage import open_storage
from hpo.worker import run_worker

config = validate_config({
    "study": {"name": "hang"},
    "dataset": {"source": "digits", "image_size": 8, "channels": 1},
    "model": {"backbone": "small_cnn", "weights": "none"},
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
