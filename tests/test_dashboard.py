"""optuna-dashboard opens hpo's databases (the README's promise of an unchanged schema).

Starts the real ``optuna-dashboard`` on 127.0.0.1 and a free port, on a copy
of a database written by hpo 0.1.0 plus a study created by today's hpo, and
reads the studies and trials back through its HTTP API.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from hpo import keys
from hpo.config import load_config
from hpo.studies import create_or_resume

FIXTURES = Path(__file__).parent / "fixtures"
DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def database(tmp_path: Path) -> str:
    shutil.copy(FIXTURES / "study-0.1.0.db", tmp_path / "hpo.db")
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    config = load_config(FIXTURES / "study-0.1.0.yaml").with_overrides(study_name="today")
    study = create_or_resume(config, url)
    study.add_trial(
        optuna.trial.create_trial(
            params={"dropout": 0.1},
            distributions={"dropout": optuna.distributions.FloatDistribution(0.0, 0.3)},
            value=0.75,
            user_attrs={keys.METRICS: {"macro_f1": 0.75}},
        )
    )
    return url


@pytest.fixture
def dashboard(database: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    exe = Path(sys.executable).with_name("optuna-dashboard")
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen(
        [str(exe), database, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                get(f"{base}/api/studies")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        f"optuna-dashboard did not answer within {DEADLINE_S:.0f} s: "
                        + (tmp_path / "dashboard.log").read_text()[-2000:]
                    )
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_dashboard_lists_and_reads_hpo_studies(dashboard: str, database: str) -> None:
    studies = {s["study_name"]: s for s in get(f"{dashboard}/api/studies")["study_summaries"]}
    assert set(studies) == {"fixture-0.1.0", "today"}, studies
    for name, study in studies.items():
        detail = get(f"{dashboard}/api/studies/{study['study_id']}?after=0")
        stored = optuna.load_study(study_name=name, storage=database)
        assert len(detail["trials"]) == len(stored.trials), name
        values = sorted(t["values"][0] for t in detail["trials"] if t.get("values"))
        assert values == sorted(t.value for t in stored.trials if t.value is not None), name
        attrs = {a["key"] for a in detail["user_attrs"]}
        assert keys.STUDY_CONFIG in attrs, f"{name}: hpo's study file not shown"
