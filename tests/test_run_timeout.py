"""``hpo run --timeout SEC``: no trial starts after SEC seconds; the one running finishes."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo import data as data_mod
from tests.helpers import run_cli, write

pytestmark = pytest.mark.slow


def test_run_stops_starting_trials_after_the_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_file = write(
        tmp_path,
        {
            "study": {"name": "timed"},
            "dataset": {"source": "digits", "image_size": 16, "channels": 1, "max_per_class": 10},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 1},
            "search_space": {"batch_size": 16},
            "budget": {"trials": 50},
        },
    )
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    timeout = 6.0
    data_mod.clear_cache()
    t0 = time.monotonic()
    code, out, err = run_cli(
        capsys, "run", str(study_file), "--storage", url, "--timeout", str(timeout), "--quiet"
    )
    elapsed = time.monotonic() - t0
    assert code == 0, err
    trials = optuna.load_study(study_name="timed", storage=url).trials
    assert 1 <= len(trials) < 50, f"{len(trials)} trials: the 50-trial budget ignored --timeout"
    assert all(t.state == TrialState.COMPLETE for t in trials), "a trial was cut short"
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    last = max((s - min(starts)).total_seconds() for s in starts)
    assert last <= timeout, f"a trial started {last:.1f} s after the first, past --timeout"
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]  # type: ignore[operator]
    # Setup (TensorFlow, data) + the timeout + the trial running at the deadline.
    assert elapsed < 60 + timeout + max(durations), elapsed
    assert f"this run complete {len(trials)}" in " ".join(out.split())
