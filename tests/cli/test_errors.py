"""Bad input through the entry point: one line, exit 2, nothing stored changed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.helpers import run_cli, write

TINY: dict[str, Any] = {
    "study": {"name": "tiny"},
    "dataset": {"source": "digits", "image_size": 12, "channels": 1, "max_per_class": 20},
    "model": {"backbone": "small_cnn", "weights": "none"},
    "training": {"head_epochs": 1},
    "search_space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    "budget": {"trials": 2},
}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "missing.yaml"], "missing.yaml: study file not found"),
        (["run", "{bad}", "--trials", "0"], "--trials: must be at least 1, got 0"),
        (["launch", "{bad}", "--trials", "-3"], "--trials: must be at least 1, got -3"),
        (["worker", "{bad}", "--max-trials-per-process", "0"], "--max-trials-per-process"),
        (["launch", "{bad}", "--max-trials-per-process", "-1"], "--max-trials-per-process"),
        (["compare", "{bad}", "--repeats", "0"], "--repeats: must be at least 1, got 0"),
        (["run", "{bad}", "--storage", "nonsense://"], "storage"),
        (["run", "{bad}", "--sampler", "annealing"], "unknown sampler 'annealing'"),
        (["studies", "--format", "xml"], "--format: must be one of table, csv, json, got 'xml'"),
        (["predict", ".", "x.png", "--format", "yaml"], "--format"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    bad = write(tmp_path, TINY)
    db = tmp_path / "x.db"
    args = [a.replace("{bad}", str(bad)) for a in args]
    if args[0] not in ("studies", "predict") and "--storage" not in args:
        args += ["--storage", f"sqlite:///{db}"]
    code, out, err = run_cli(capsys, *args)
    assert code == 2, (out, err)
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    # Refused before the study was created: the database holds nothing.
    if db.exists():
        assert optuna.get_all_study_names(f"sqlite:///{db}") == []


@pytest.mark.parametrize("command", ["status", "best"])
def test_read_only_command_never_creates_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    db = tmp_path / "storage" / "hpo.db"
    code, _, err = run_cli(capsys, command, "nope", "--storage", f"sqlite:///{db}")
    assert code == 2
    assert err.startswith(f"error: storage: no database at sqlite:///{db}")
    assert not db.exists() and not db.parent.exists()


def test_missing_study_names_the_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    optuna.create_study(study_name="other", storage=url)
    code, _, err = run_cli(capsys, "status", "nope", "--storage", url)
    assert code == 2
    assert err.strip() == f"error: no study named 'nope' in {url}; existing: other"


def test_storage_from_environment_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    optuna.create_study(study_name="from-env", storage=url)
    monkeypatch.setenv("HPO_STORAGE", url)
    code, out, _ = run_cli(capsys, "studies", "--format", "csv")
    assert code == 0
    assert out.splitlines()[1].startswith("from-env,")


def test_dataset_error_names_the_study_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = copy.deepcopy(TINY)
    data["dataset"] = {"source": "directory", "path": str(tmp_path / "nope"), "image_size": 12}
    study_file = write(tmp_path, data)
    db = tmp_path / "x.db"
    code, _, err = run_cli(capsys, "run", str(study_file), "--storage", f"sqlite:///{db}")
    assert code == 2
    assert err.startswith(f"error: {study_file}: dataset.path: folder"), err
    assert optuna.get_all_study_names(f"sqlite:///{db}") == []


def test_version_and_help_show_flags_as_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata

    code, out, _ = run_cli(capsys, "--version")
    assert (code, out.strip()) == (0, f"hpo {metadata.version('hpo')}")
    code, out, _ = run_cli(capsys, "run", "--help")
    assert code == 0
    assert "-q, --quiet" in out and "<bool>" not in out
    code, out, _ = run_cli(capsys, "export", "--help")
    assert "study file" not in " ".join(out.split())


def test_launch_on_a_gpu_the_backend_cannot_see_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # This machine has no GPU and a CPU-only TensorFlow: `--gpus 0` must not
    # quietly train on the CPU.
    db = tmp_path / "x.db"
    code, _, err = run_cli(
        capsys, "launch", str(write(tmp_path, TINY)), "--gpus", "0", "--storage", f"sqlite:///{db}"
    )
    assert code == 2
    assert err.startswith("error: --gpus 0: CUDA_VISIBLE_DEVICES=0 gives this worker a GPU, but")
    assert "CPU-only" in err and len(err.strip().splitlines()) == 1
    assert not db.exists()


def test_worker_given_a_gpu_it_cannot_see_takes_no_trial(tmp_path: Path) -> None:
    from tests.helpers import hpo

    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = hpo(
        "worker",
        str(write(tmp_path, TINY)),
        "--storage",
        url,
        "--trials",
        "2",
        env={"CUDA_VISIBLE_DEVICES": "0"},
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "CUDA_VISIBLE_DEVICES=0 gives this worker a GPU, but" in errors[0]
    assert "Traceback" not in result.stderr
    assert optuna.load_study(study_name="tiny", storage=url).trials == []
