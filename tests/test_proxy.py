"""Workers behind Optuna's gRPC storage proxy (``hpo storage-proxy``), on benchmark
studies whose trials last seconds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo import keys
from tests.helpers import write
from tests.processes import (
    assert_ran_in_parallel,
    assert_requeued_once,
    assert_settled,
    bench,
    finished,
    start_worker,
    wait_for_running,
)

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[str]:
    """``hpo storage-proxy`` in front of a fresh PostgreSQL database: its grpc:// URL."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpo",
            "storage-proxy",
            "--storage",
            postgres_url,
            "--port",
            str(port),
        ],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "proxy did not start"
            time.sleep(0.3)
        yield f"grpc://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_four_workers_through_the_proxy(tmp_path: Path, postgres_url: str, proxy: str) -> None:
    # 12 trials of 3 s: every worker gets some, even one that starts seconds late.
    study_file = write(tmp_path, bench(3.0))
    budget = 12
    workers = [start_worker(study_file, proxy, budget, f"p{i}") for i in range(4)]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    study = optuna.load_study(study_name="par", storage=postgres_url)
    assert_settled(study, budget)
    assert_ran_in_parallel(finished(study), {"p0", "p1", "p2", "p3"})
    for t in study.trials:
        if t.state == TrialState.FAIL:
            assert t.user_attrs[keys.FAIL_REASON].startswith("surplus")


def test_a_worker_killed_behind_the_proxy_is_noticed(
    tmp_path: Path, postgres_url: str, proxy: str
) -> None:
    """No heartbeat table behind the proxy: workers watch each other's beat attr."""
    study_file = write(tmp_path, bench(3.0))
    budget = 5
    procs = {f"p{i}": start_worker(study_file, proxy, budget, f"p{i}") for i in range(3)}
    victim = wait_for_running(postgres_url, "par", "p0")
    procs["p0"].send_signal(signal.SIGKILL)
    procs["p0"].wait()
    for name, p in procs.items():
        if name != "p0":
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
    study = optuna.load_study(study_name="par", storage=postgres_url)
    assert_settled(study, budget)
    assert_requeued_once(study, victim, "worker lost")
