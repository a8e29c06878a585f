"""The Ray executor on a local Ray with 4 logical GPUs: one task per worker slot."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from optuna.trial import TrialState

from hpo import keys
from hpo.executors import Plan, RayExecutor
from hpo.storage import open_storage
from hpo.studies import create_or_resume
from tests.executors.conftest import FAST_HEARTBEAT, bench_config
from tests.executors.fault import run_fault_test

pytestmark = pytest.mark.slow


def test_gpu_tasks_see_their_own_device_and_a_killed_worker_is_replaced(
    ray_cluster: Any, postgres_url: str
) -> None:
    config = bench_config("ray-fault", trials=6)
    study = create_or_resume(config, postgres_url)
    plan = Plan(config, postgres_url, workers=2, gpus=True, per_process=None, env=FAST_HEARTBEAT)
    executor = RayExecutor(plan, study, poll=0.3)
    launch = executor.start()
    assert launch.engine == "ray" and launch.workers == 2
    summary: dict[str, Any] = {}
    result = run_fault_test(
        open_storage(postgres_url),
        "ray-fault",
        6,
        kill=lambda t: os.kill(t.user_attrs[keys.PID], signal.SIGKILL),
        finish=lambda: summary.update(executor.wait()),
    )
    assert sum(summary["restarts"].values()) == 1, summary
    devices = {t.user_attrs[keys.PID]: t.user_attrs[keys.VISIBLE_DEVICES] for t in result.trials}
    assert set(devices.values()) <= {"0", "1", "2", "3"}, devices
    # Workers running at the same time hold different logical GPUs. A killed
    # worker's trial ends only when it is reaped, after its GPU went to the
    # replacement, so only finished trials mark when a worker was alive.
    spans = [
        (t.user_attrs[keys.PID], t.datetime_start, t.datetime_complete)
        for t in result.trials
        if t.state != TrialState.FAIL
    ]
    for pid_a, start_a, end_a in spans:
        for pid_b, start_b, end_b in spans:
            assert start_a and end_a and start_b and end_b
            if pid_a != pid_b and start_a < end_b and start_b < end_a:
                assert devices[pid_a] != devices[pid_b], (pid_a, pid_b)
    assert len(set(devices.values())) >= 2


def test_stop_fails_and_requeues_the_running_trials(ray_cluster: Any, postgres_url: str) -> None:
    from tests.executors.fault import wait_for_running

    config = bench_config("ray-stop", trials=4, seconds=30.0)
    study = create_or_resume(config, postgres_url)
    plan = Plan(config, postgres_url, workers=1, per_process=None, env=FAST_HEARTBEAT)
    executor = RayExecutor(plan, study, poll=0.3)
    executor.start()
    running = wait_for_running(open_storage(postgres_url), "ray-stop")
    executor.stop()
    trial = study.trials[running.number]
    assert trial.state.name == "FAIL"
    assert "interrupted (SIGTERM)" in trial.user_attrs[keys.FAIL_REASON]
    assert [t.state.name for t in study.trials].count("WAITING") == 1
