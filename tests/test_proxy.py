"""Workers behind Optuna's gRPC storage proxy (``hpo storage-proxy``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo import attrs
from tests.helpers import write
from tests.test_launcher import TINY, start_worker

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_four_workers_through_the_proxy(tmp_path: Path, postgres_url: str) -> None:
    port = free_port()
    proxy = subprocess.Popen(
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
            assert proxy.poll() is None, proxy.communicate()[1]
            assert time.monotonic() < deadline, "proxy did not start"
            time.sleep(0.3)
        study_file = write(tmp_path, {**TINY, "training": {"head_epochs": 1}})
        url = f"grpc://127.0.0.1:{port}"
        workers = [start_worker(study_file, url, 6, f"p{i}") for i in range(4)]
        for w in workers:
            _, err = w.communicate(timeout=400)
            assert w.returncode == 0, err
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    study = optuna.load_study(study_name="par", storage=postgres_url)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6
    assert {t.user_attrs[attrs.WORKER] for t in finished} <= {"p0", "p1", "p2", "p3"}
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    for t in study.trials:
        if t.state == TrialState.FAIL:
            assert t.user_attrs[attrs.FAIL_REASON].startswith("surplus")
