"""Parallel workers with real processes on real databases: exact totals, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from tests.helpers import hpo, write

pytestmark = pytest.mark.slow

TINY = {
    "study": {"name": "par"},
    "dataset": {"source": "digits", "image_size": 12, "channels": 1, "max_per_class": 15},
    "model": {"backbone": "small_cnn", "weights": "none"},
    "training": {"head_epochs": 3},
    "search_space": {
        "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    },
    "sampler": {"name": "tpe", "seed": 0},
    # A pruner that never prunes: trials report every epoch, which the tests wait for.
    "pruner": {"name": "median", "options": {"n_startup_trials": 1000}},
}
FAST_HEARTBEAT = {
    "HPO_HEARTBEAT_INTERVAL": "1",
    "HPO_GRACE_PERIOD": "4",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


def start_worker(study_file: Path, url: str, budget: int, name: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", **FAST_HEARTBEAT}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpo",
            "worker",
            str(study_file),
            "--storage",
            url,
            "--trials",
            str(budget),
            "--worker-name",
            name,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_running(url: str, name: str, worker: str, timeout: float = 120) -> int:
    # One storage for all polls: a new one per poll leaves a connection open
    # each time, until PostgreSQL refuses more clients.
    storage = optuna.storages.RDBStorage(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                study = optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                time.sleep(0.5)
                continue
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if t.user_attrs.get(keys.WORKER) == worker and t.intermediate_values:
                    return t.number
            time.sleep(0.3)
        raise AssertionError(f"{worker} never ran a trial")
    finally:
        storage.engine.dispose()


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def test_four_workers_exact_total_with_one_killed(tmp_path: Path, postgres_url: str) -> None:
    study_file = write(tmp_path, TINY)
    budget = 8
    procs = {f"w{i}": start_worker(study_file, postgres_url, budget, f"w{i}") for i in range(4)}
    victim = wait_for_running(postgres_url, "par", "w0")
    procs["w0"].send_signal(signal.SIGKILL)
    procs["w0"].wait()
    for name, p in procs.items():
        if name != "w0":
            _, err = p.communicate(timeout=400)
            assert p.returncode == 0, err
    study = optuna.load_study(study_name="par", storage=postgres_url)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert len(finished(study)) == budget
    killed = study.trials[victim]
    assert killed.state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim]
    assert len(retries) == 1, "re-queued once"
    assert retries[0].params == killed.params


def test_sigterm_fails_and_requeues_at_once(tmp_path: Path, sqlite_url: str) -> None:
    study_file = write(tmp_path, {**TINY, "training": {"head_epochs": 30}})
    proc = start_worker(study_file, sqlite_url, 5, "solo")
    number = wait_for_running(sqlite_url, "par", "solo")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    study = optuna.load_study(study_name="par", storage=sqlite_url)
    trial = study.trials[number]
    assert trial.state == TrialState.FAIL
    assert "interrupted (SIGTERM)" in trial.user_attrs[keys.FAIL_REASON]
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1
    assert waiting[0].params == trial.params  # the same point, tried again
    assert waiting[0].system_attrs["failed_trial"] == number


def test_launch_cpu_workers_to_an_exact_total(tmp_path: Path, sqlite_url: str) -> None:
    study_file = write(tmp_path, {**TINY, "training": {"head_epochs": 1}})
    result = hpo(
        "launch",
        str(study_file),
        "--gpus",
        "none",
        "--workers-per-gpu",
        "2",
        "--trials",
        "5",
        "--storage",
        sqlite_url,
        "-q",
        env=FAST_HEARTBEAT,
    )
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="par", storage=sqlite_url)
    assert len(finished(study)) == 5
    assert {t.user_attrs[keys.WORKER] for t in finished(study)} <= {"cpu-w0", "cpu-w1"}
    assert all(t.state != TrialState.RUNNING for t in study.trials)


def test_consecutive_failures_stop_the_worker(tmp_path: Path, sqlite_url: str) -> None:
    # SGD at rate 10 diverges to NaN within the first epoch: each trial fails.
    broken = {**TINY, "search_space": {"learning_rate": 10.0, "optimizer": "sgd"}}
    broken["training"] = {"head_epochs": 2, "class_weights": "none"}
    study_file = write(tmp_path, broken)
    result = hpo("worker", str(study_file), "--storage", sqlite_url, "--trials", "10")
    study = optuna.load_study(study_name="par", storage=sqlite_url)
    fails = [t for t in study.trials if t.state == TrialState.FAIL]
    assert result.returncode == 2, result.stderr
    assert "failed trials in a row" in result.stderr
    assert len(fails) == 3 and all(keys.FAIL_REASON in t.user_attrs for t in fails)


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
    study_file = write(tmp_path, {**TINY, "training": {"head_epochs": 4}})
    proc = start_worker(study_file, postgres_url, 4, "steady")
    wait_for_running(postgres_url, "par", "steady")
    _restart_postgres()
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    study = optuna.load_study(study_name="par", storage=postgres_url)
    assert len(finished(study)) == 4
    assert all(t.state != TrialState.RUNNING for t in study.trials)


def test_workers_are_recycled_after_their_quota(tmp_path: Path, sqlite_url: str) -> None:
    study_file = write(tmp_path, {**TINY, "training": {"head_epochs": 1}})
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
    done = finished(study)
    assert len(done) == 3
    assert len({t.user_attrs[keys.PID] for t in done}) == 3, "a fresh process per trial"
    assert all(t.state != TrialState.FAIL for t in study.trials)


def test_launch_on_mariadb_to_an_exact_total(tmp_path: Path, mysql_url: str) -> None:
    study_file = write(tmp_path, {**TINY, "training": {"head_epochs": 1}})
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
    assert len(finished(study)) == 4
    assert all(t.state != TrialState.RUNNING for t in study.trials)
