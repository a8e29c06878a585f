"""Ctrl-C on ``hpo run``: one line naming the trial, its record in the database,
``hpo status`` giving the reason, and a printed resume command that works."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from tests.helpers import hpo, run_cli, write

NAME = "interrupt me"
LINE = re.compile(
    r"^interrupted \(SIGINT\): trial (?P<failed>\d+) failed and re-queued as trial "
    r"(?P<queued>\d+); resume with: (?P<command>.+)$",
    re.M,
)


def study_file(root: Path) -> Path:
    return write(
        root,
        {
            "study": {"name": NAME},
            "dataset": {"source": "digits", "image_size": 16, "channels": 1, "max_per_class": 30},
            "model": {"backbone": "small_cnn", "weights": "none"},
            # Long enough to be caught mid-trial, short enough to resume in seconds.
            "training": {"head_epochs": 40, "validate_every_epoch": True},
            "search_space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}},
            "sampler": {"name": "random", "seed": 0},
            "pruner": {"name": "none"},
            "budget": {"trials": 1},
        },
        name="my study.yaml",  # a space: the printed command must quote it
    )


def wait_for_epoch(proc: subprocess.Popen[str], url: str, timeout: float = 300) -> int:
    """The number of the running trial once it has reported an epoch."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            study = optuna.load_study(study_name=NAME, storage=url)
        except KeyError:  # not created yet
            study = None
        if study is not None:
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if t.intermediate_values:
                    return t.number
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("no trial reported an epoch in time")


@pytest.mark.slow
def test_ctrl_c_requeues_the_trial_and_prints_a_resume_command_that_works(
    tmp_path: Path, capsys: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    optuna.storages.RDBStorage(url)  # the schema first, so polling never races its creation
    path = study_file(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpo", "run", str(path), "--storage", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = wait_for_epoch(proc, url)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    match = LINE.search(err)
    assert match is not None, err
    failed, queued = int(match["failed"]), int(match["queued"])
    assert failed == running and queued != failed

    study = optuna.load_study(study_name=NAME, storage=url)
    trials = {t.number: t for t in study.trials}
    assert trials[failed].state == TrialState.FAIL
    assert trials[failed].user_attrs[keys.FAIL_REASON] == "interrupted (SIGINT); re-queued"
    assert trials[queued].state == TrialState.WAITING
    assert trials[queued].params == trials[failed].params

    code, out, _ = run_cli(capsys, "status", NAME, "--storage", url)
    assert code == 0 and f"trial {failed} failed: interrupted (SIGINT); re-queued" in out
    code, out, _ = run_cli(capsys, "status", NAME, "--storage", url, "--format", "json")
    rows = json.loads(out)["failed"]
    assert [(r["number"], r["reason"]) for r in rows] == [
        (failed, "interrupted (SIGINT); re-queued")
    ]

    argv = shlex.split(match["command"])
    assert argv[:3] == ["hpo", "run", str(path)] and "--trials" in argv
    resumed = hpo(*argv[1:])
    assert resumed.returncode == 0, resumed.stderr
    after = {t.number: t for t in optuna.load_study(study_name=NAME, storage=url).trials}
    assert after[queued].state == TrialState.COMPLETE
    assert [t.state for t in after.values()].count(TrialState.COMPLETE) == 1  # --trials 1 again


def test_resume_command_hides_the_password_and_quotes_paths() -> None:
    from hpo.cli._run import resume_command

    line = resume_command(
        "run",
        Path("studies/brain mri.yaml"),
        "postgresql+psycopg://hpo:s3cret@db:5432/hpo",
        trials=7,
        study_name=None,
        sampler="gp",
    )
    assert "s3cret" not in line
    assert shlex.split(line) == [
        "hpo",
        "run",
        "studies/brain mri.yaml",
        "--storage",
        "postgresql+psycopg://hpo:***@db:5432/hpo",
        "--trials",
        "7",
        "--sampler",
        "gp",
    ]


def test_interrupt_between_trials_says_none_was_running() -> None:
    from hpo.worker import Interrupted, interrupted_line

    study = optuna.create_study()
    line = interrupted_line(study, Interrupted("SIGTERM"), "hpo run s.yaml")
    assert line == "interrupted (SIGTERM) with no trial running; resume with: hpo run s.yaml"
