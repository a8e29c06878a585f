"""The local executor: worker processes on this host, supervised and replaced."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from hpo.executors import LocalExecutor, Plan
from hpo.gpus import plan_slots
from hpo.storage import open_storage
from hpo.studies import create_or_resume
from tests.executors.conftest import FAST_HEARTBEAT, bench_config
from tests.executors.fault import run_fault_test

pytestmark = pytest.mark.slow


def test_worker_killed_mid_trial_is_replaced_and_the_total_exact(postgres_url: str) -> None:
    config = bench_config("local-fault", trials=6)
    study = create_or_resume(config, postgres_url)
    plan = Plan(config, postgres_url, workers=2, per_process=None, env=FAST_HEARTBEAT)
    executor = LocalExecutor(plan, study, plan_slots("none", 2), poll=0.3)
    executor.start()
    summary: dict[str, object] = {}

    def finish() -> None:
        summary.update(executor.wait())

    result = run_fault_test(
        open_storage(postgres_url),
        "local-fault",
        6,
        kill=lambda t: os.kill(t.user_attrs["pid"], signal.SIGKILL),
        finish=finish,
    )
    restarts = summary["restarts"]
    assert isinstance(restarts, dict) and sum(restarts.values()) == 1, "the killed worker replaced"
    codes = summary["exit_codes"]
    assert isinstance(codes, dict) and any(-signal.SIGKILL in c for c in codes.values())
    assert result.victim.user_attrs["worker"] in restarts


def test_storage_url_reaches_workers_only_through_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    config = bench_config("local-env", trials=1, seconds=2.0)
    study = create_or_resume(config, url)
    plan = Plan(config, url, workers=1, per_process=None)
    executor = LocalExecutor(plan, study, plan_slots("none", 1), poll=0.2)
    executor.start()
    proc = executor.supervisor.workers[0].proc
    assert proc is not None and proc.pid is not None
    argv: list[bytes] = []
    deadline = time.monotonic() + 10
    while b"worker" not in argv and time.monotonic() < deadline:  # until exec has happened
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
    assert b"worker" in argv and b"--worker-name" in argv
    assert not any(url.encode() in a for a in argv) and b"--storage" not in argv
    assert f"HPO_STORAGE={url}".encode() in environ
    assert executor.wait()["finished"] == 1
