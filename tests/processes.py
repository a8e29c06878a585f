"""Worker and launcher processes for tests: start them, poll the database, check the result.

Shared by the launcher, proxy and storage tests. Waiting is always polling the
database for a state, never a fixed sleep that a busy machine can break.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo import keys

T = TypeVar("T")

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
"""A tiny image study (real Keras training)."""

FAST_HEARTBEAT = {
    "HPO_HEARTBEAT_INTERVAL": "1",
    "HPO_GRACE_PERIOD": "4",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


def bench(seconds: float, **sections: Any) -> dict[str, Any]:
    """A benchmark study named ``par`` whose trials last ``seconds`` (reported in steps)."""
    return {
        "study": {"name": "par"},
        "objective": {"benchmark": "hartmann6", "seconds": seconds},
        "sampler": {"name": "tpe", "seed": 0},
        "pruner": {"name": "median", "options": {"n_startup_trials": 1000}},
        **sections,
    }


def start_worker(study_file: Path, url: str, budget: int, name: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", **FAST_HEARTBEAT}
    env.pop("HPO_STORAGE", None)
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


def start_launch(study_file: Path, url: str, *args: str) -> subprocess.Popen[str]:
    """``hpo launch`` in the background, in its own session like a terminal's job."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **FAST_HEARTBEAT}
    env.pop("HPO_STORAGE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "hpo", "launch", str(study_file), "--storage", url, "-q", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def poll_study(
    url: str, name: str, found: Callable[[list[FrozenTrial]], T | None], what: str, timeout: float
) -> T:
    """Read the study's trials until ``found`` returns something: no fixed sleeps."""
    # One storage for all polls: a new one per poll leaves a connection open
    # each time, until PostgreSQL refuses more clients.
    storage = optuna.storages.RDBStorage(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                trials = optuna.load_study(study_name=name, storage=storage).get_trials()
            except KeyError:
                trials = []
            result = found(trials)
            if result is not None:
                return result
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
    finally:
        storage.engine.dispose()


def wait_for_running(url: str, name: str, worker: str, timeout: float = 120) -> int:
    """The number of a trial ``worker`` is running and has reported for."""

    def running(trials: list[FrozenTrial]) -> int | None:
        for t in trials:
            mine = t.state == TrialState.RUNNING and t.user_attrs.get(keys.WORKER) == worker
            if mine and t.intermediate_values:
                return t.number
        return None

    return poll_study(url, name, running, f"{worker} to run a trial", timeout)


def wait_for_pids(url: str, name: str, count: int, exclude: Iterable[int] = ()) -> list[int]:
    """Pids of ``count`` worker processes with a RUNNING trial, none of ``exclude``."""
    skip = set(exclude)

    def pids(trials: list[FrozenTrial]) -> list[int] | None:
        found = {
            int(t.user_attrs[keys.PID])
            for t in trials
            if t.state == TrialState.RUNNING
            and keys.PID in t.user_attrs
            and t.user_attrs[keys.PID] not in skip
        }
        return sorted(found) if len(found) >= count else None

    return poll_study(url, name, pids, f"{count} new worker process(es)", 120)


def finished(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def assert_ran_in_parallel(trials: list[FrozenTrial], workers: set[str]) -> None:
    """Every worker finished a trial, and trials of different workers overlapped in time."""
    by_worker = {w: [t for t in trials if t.user_attrs.get(keys.WORKER) == w] for w in workers}
    assert all(by_worker.values()), {w: len(ts) for w, ts in by_worker.items()}
    assert {t.user_attrs.get(keys.WORKER) for t in trials} == workers

    def overlap(a: FrozenTrial, b: FrozenTrial) -> bool:
        assert a.datetime_start and a.datetime_complete and b.datetime_start
        assert b.datetime_complete
        return a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete

    assert any(
        overlap(a, b)
        for a in trials
        for b in trials
        if a.user_attrs[keys.WORKER] != b.user_attrs[keys.WORKER]
    ), "no two workers ever ran a trial at the same time"


def assert_settled(study: optuna.Study, budget: int) -> None:
    """Exactly ``budget`` finished trials, none left running, no number twice.

    A trial queued again after its worker was lost may still wait when the budget
    filled first (the study needs no more trials); nothing else may be left waiting.
    """
    table = [
        (t.number, t.state.name, t.user_attrs.get(keys.WORKER), t.user_attrs.get(keys.FAIL_REASON))
        for t in study.trials
    ]
    assert not [t for t in study.trials if t.state == TrialState.RUNNING], table
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert all("failed_trial" in t.system_attrs for t in waiting), table
    assert len(finished(study)) == budget, table
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))


def assert_requeued_once(study: optuna.Study, number: int, reason: str) -> None:
    lost = study.trials[number]
    assert lost.state == TrialState.FAIL
    assert reason in lost.user_attrs[keys.FAIL_REASON]
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == number]
    assert len(retries) == 1, "re-queued once"
    assert retries[0].params == lost.params


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
