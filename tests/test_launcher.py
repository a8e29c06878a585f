"""Parallel workers with real processes on real databases: exact totals, nothing lost.

The rules (budget, heartbeat, re-queue, signals, replacement, recycling, a
database restart) are exercised on benchmark studies whose trials last
seconds without TensorFlow; one launch trains real tiny Keras models.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from hpo.worker import USER_ERROR_EXIT_CODE
from tests.helpers import hpo, write
from tests.processes import (
    FAST_HEARTBEAT,
    TINY,
    assert_ran_in_parallel,
    assert_requeued_once,
    assert_settled,
    bench,
    finished,
    pid_gone,
    start_launch,
    start_worker,
    wait_for_pids,
    wait_for_running,
)

pytestmark = pytest.mark.slow

__all__ = ["TINY", "start_worker"]  # imported from here by tests of the storage proxy


def test_four_workers_exact_total_with_one_killed(tmp_path: Path, postgres_url: str) -> None:
    study_file = write(tmp_path, bench(2.0))
    budget = 8
    procs = {f"w{i}": start_worker(study_file, postgres_url, budget, f"w{i}") for i in range(4)}
    victim = wait_for_running(postgres_url, "par", "w0")
    procs["w0"].send_signal(signal.SIGKILL)
    procs["w0"].wait()
    for name, p in procs.items():
        if name != "w0":
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
    study = optuna.load_study(study_name="par", storage=postgres_url)
    assert_settled(study, budget)
    assert_requeued_once(study, victim, "worker lost: no heartbeat for 4 s")


def test_sigterm_fails_and_requeues_at_once(tmp_path: Path, sqlite_url: str) -> None:
    study_file = write(tmp_path, bench(20.0))
    proc = start_worker(study_file, sqlite_url, 5, "solo")
    number = wait_for_running(sqlite_url, "par", "solo")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert time.monotonic() - started < 15, "stopped inside the trial, not after it"
    study = optuna.load_study(study_name="par", storage=sqlite_url)
    trial = study.trials[number]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs[keys.FAIL_REASON] == "interrupted (SIGTERM); re-queued"
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1
    assert waiting[0].params == trial.params  # the same point, tried again
    assert waiting[0].system_attrs["failed_trial"] == number
    assert (
        f"interrupted (SIGTERM): trial {number} failed and re-queued as trial {waiting[0].number};"
        in err
    )


def test_launch_runs_workers_in_parallel_to_an_exact_total(tmp_path: Path, sqlite_url: str) -> None:
    study_file = write(tmp_path, bench(2.0))
    result = hpo(
        "launch",
        str(study_file),
        "--gpus",
        "none",
        "--workers-per-gpu",
        "2",
        "--trials",
        "6",
        "--storage",
        sqlite_url,
        "-q",
        env=FAST_HEARTBEAT,
    )
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="par", storage=sqlite_url)
    assert_settled(study, 6)
    assert_ran_in_parallel(finished(study), {"cpu-w0", "cpu-w1"})


def test_launch_trains_real_models(tmp_path: Path, sqlite_url: str) -> None:
    """The one launch with real Keras training: the worker process trains and records."""
    study_file = write(tmp_path, {**TINY, "training": {"head_epochs": 1}})
    result = hpo(
        "launch",
        str(study_file),
        "--gpus",
        "none",
        "--workers-per-gpu",
        "1",
        "--trials",
        "1",
        "--storage",
        sqlite_url,
        "-q",
        env=FAST_HEARTBEAT,
    )
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="par", storage=sqlite_url)
    assert_settled(study, 1)
    for t in study.trials:
        assert t.user_attrs[keys.WORKER] == "cpu-w0"
        assert t.user_attrs[keys.BACKEND] == "tensorflow"
        assert t.value == t.user_attrs[keys.METRICS]["macro_f1"]
        assert len(t.user_attrs[keys.F1_PER_CLASS]) == 10


def test_consecutive_failures_stop_the_worker(tmp_path: Path, sqlite_url: str) -> None:
    # Every trial lasts 2 s but may take 0.2 s: each one fails at its first step.
    study_file = write(tmp_path, bench(2.0, training={"trial_timeout": 0.2}))
    result = hpo("worker", str(study_file), "--storage", sqlite_url, "--trials", "10")
    study = optuna.load_study(study_name="par", storage=sqlite_url)
    fails = [t for t in study.trials if t.state == TrialState.FAIL]
    assert result.returncode == USER_ERROR_EXIT_CODE, result.stderr
    assert "stopped after 3 failed trials in a row" in result.stderr
    assert len(study.trials) == len(fails) == 3
    for t in fails:
        assert t.user_attrs[keys.FAIL_REASON] == (
            "trial exceeded training.trial_timeout of 0.2 s after 1 step(s)"
        )


def _restart_postgres() -> None:
    versions = sorted(Path("/etc/postgresql").iterdir()) if Path("/etc/postgresql").is_dir() else []
    if not versions or os.geteuid() != 0:
        pytest.skip("needs a local PostgreSQL cluster this user may restart")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_study_survives_a_database_restart(tmp_path: Path, postgres_url: str) -> None:
    study_file = write(tmp_path, bench(2.0))
    proc = start_worker(study_file, postgres_url, 4, "steady")
    wait_for_running(postgres_url, "par", "steady")
    _restart_postgres()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    study = optuna.load_study(study_name="par", storage=postgres_url)
    assert_settled(study, 4)
    assert all(t.state != TrialState.FAIL for t in study.trials)


def test_workers_are_recycled_after_their_quota(tmp_path: Path, sqlite_url: str) -> None:
    study_file = write(tmp_path, bench(0.5))
    result = hpo(
        "launch",
        str(study_file),
        "--gpus",
        "none",
        "--workers-per-gpu",
        "1",
        "--trials",
        "3",
        "--max-trials-per-process",
        "1",
        "--storage",
        sqlite_url,
        "-q",
    )
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="par", storage=sqlite_url)
    assert_settled(study, 3)
    assert len({t.user_attrs[keys.PID] for t in study.trials}) == 3, "a fresh process per trial"
    assert all(t.state != TrialState.FAIL for t in study.trials)


def test_launch_replaces_a_dead_worker(tmp_path: Path, sqlite_url: str) -> None:
    study_file = write(tmp_path, bench(2.0))
    launcher = start_launch(study_file, sqlite_url, "--gpus", "none", "--trials", "3")
    (first,) = wait_for_pids(sqlite_url, "par", 1)
    victim = wait_for_running(sqlite_url, "par", "cpu-w0")
    os.kill(first, signal.SIGKILL)
    _, err = launcher.communicate(timeout=300)
    assert launcher.returncode == 0, err
    study = optuna.load_study(study_name="par", storage=sqlite_url)
    assert_settled(study, 3)
    assert_requeued_once(study, victim, "worker lost")
    later = {t.user_attrs[keys.PID] for t in finished(study)}
    assert first not in later and len(later) == 1, "one replacement process finished the study"


def test_launch_gives_up_after_three_replacements_per_slot(tmp_path: Path, sqlite_url: str) -> None:
    study_file = write(tmp_path, bench(60.0))
    launcher = start_launch(study_file, sqlite_url, "--gpus", "none", "--trials", "10")
    killed: list[int] = []
    try:
        for _ in range(4):  # the first worker and its three replacements
            (pid,) = wait_for_pids(sqlite_url, "par", 1, exclude=killed)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        _, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == USER_ERROR_EXIT_CODE, err
    assert "workers stopped with 0 of 10 trials finished (restarts used up)" in err
    assert "cpu-w0: killed by SIGKILL" in err
    study = optuna.load_study(study_name="par", storage=sqlite_url)
    pids = {t.user_attrs.get(keys.PID) for t in study.trials} - {None}
    assert pids == set(killed)  # no fifth process


def test_ctrl_c_on_launch_stops_every_worker(tmp_path: Path, sqlite_url: str) -> None:
    study_file = write(tmp_path, bench(60.0))
    launcher = start_launch(
        study_file, sqlite_url, "--gpus", "none", "--workers-per-gpu", "2", "--trials", "10"
    )
    pids = wait_for_pids(sqlite_url, "par", 2)
    launcher.send_signal(signal.SIGINT)
    out, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 130, err
    assert "interrupted: 2 worker(s) stopped" in out
    assert all(pid_gone(pid) for pid in pids), "a worker outlived its launcher"
    study = optuna.load_study(study_name="par", storage=sqlite_url)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in study.trials if t.state == TrialState.FAIL]
    assert {t.user_attrs[keys.PID] for t in interrupted} == set(pids)
    for t in interrupted:
        assert t.user_attrs[keys.FAIL_REASON] == "interrupted (SIGTERM); re-queued"
        (copy,) = [w for w in study.trials if w.system_attrs.get("failed_trial") == t.number]
        assert copy.state == TrialState.WAITING and copy.params == t.params


def test_launch_on_mariadb_to_an_exact_total(tmp_path: Path, mysql_url: str) -> None:
    study_file = write(tmp_path, bench(2.0))
    result = hpo(
        "launch",
        str(study_file),
        "--gpus",
        "none",
        "--workers-per-gpu",
        "2",
        "--trials",
        "4",
        "--storage",
        mysql_url,
        "-q",
        env=FAST_HEARTBEAT,
    )
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="par", storage=mysql_url)
    assert_settled(study, 4)
