"""Read-only commands: full names through a pipe, csv and json for scripts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import optuna
import pytest

from tests.helpers import run_cli

LONG = "brain-tumour-mri-" + "x" * 120


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    study = optuna.create_study(study_name=LONG, storage=url, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    return url


def test_table_through_a_pipe_keeps_full_names(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "studies", "--storage", url)
    assert code == 0
    assert LONG in out and "…" not in out


def test_studies_csv_and_json_agree(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out_csv, _ = run_cli(capsys, "studies", "--storage", url, "--format", "csv")
    _, out_json, _ = run_cli(capsys, "studies", "--storage", url, "--format", "json")
    rows = list(csv.DictReader(io.StringIO(out_csv)))
    data = json.loads(out_json)
    assert [r["name"] for r in rows] == [LONG] == [d["name"] for d in data]
    best = optuna.load_study(study_name=LONG, storage=url).best_value
    assert float(rows[0]["best_value"]) == pytest.approx(best) == data[0]["best_value"]
    assert rows[0]["complete"] == "3"


def test_best_csv_lists_parameters(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "best", LONG, "--storage", url, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    best = optuna.load_study(study_name=LONG, storage=url).best_params
    assert rows == [{"parameter": "x", "value": str(best["x"])}]


def test_status_csv_counts_states(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "status", LONG, "--storage", url, "--format", "csv")
    assert code == 0
    assert list(csv.DictReader(io.StringIO(out))) == [{"state": "COMPLETE", "trials": "3"}]
