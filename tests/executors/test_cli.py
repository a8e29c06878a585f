"""``hpo launch --on ENGINE`` flags, refusals and ``hpo status`` rows, through the entry point."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hpo.executors import Launch, executor_line, record_launch
from hpo.storage import open_storage
from hpo.studies import make_study
from tests.executors.conftest import bench_config
from tests.helpers import run_cli

STUDY = "study: {name: cli}\nobjective: {benchmark: branin, seconds: 1.0}\nbudget: {trials: 4}\n"
SERVER = "postgresql://hpo@db.example:5432/hpo"


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "b.yaml"
    path.write_text(STUDY)
    return path


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--on", "nomad"], "--on: unknown engine 'nomad'; allowed: local, slurm, ray, k8s"),
        (["--on", "slurm", "--storage", "sqlite:///x.db"], "is a SQLite file on this host"),
        (["--on", "ray", "--storage", "sqlite:///x.db"], "ray workers on other hosts"),
        (["--on", "k8s", "--image", "i", "--storage", "sqlite:///x.db"], "'database is locked'"),
        (["--on", "slurm", "--storage", "redis://h/0"], "is not a server database"),
        (["--on", "slurm", "--storage", SERVER, "--gpus", "0,1"], "the scheduler picks them"),
        (["--on", "slurm", "--storage", SERVER, "--workers-per-gpu", "2"], "whole GPU"),
        (["--on", "ray", "--storage", SERVER, "--partition", "gpu"], "--partition: applies only"),
        (["--on", "slurm", "--storage", SERVER, "--image", "x"], "--image: applies only with"),
        (["--on", "slurm", "--storage", SERVER, "--time", "soon"], "--time: 'soon' is not"),
        (["--on", "slurm", "--storage", SERVER, "--partition", "a\nb"], "--partition: 'a"),
        (["--on", "k8s", "--storage", SERVER], "--image: --on k8s needs the container image"),
        (["--on", "k8s", "--storage", SERVER, "--image", "i", "--namespace", "A_b"], "--namespace"),
        (["--workers", "2"], "--workers: applies to slurm, ray and k8s"),
        (["--on", "slurm", "--storage", SERVER, "--workers", "0"], "--workers: must be at least 1"),
        (["--dry-run", "--gpus", "none"], "--dry-run: applies only with --on slurm or k8s"),
    ],
)
def test_bad_engine_flags_are_one_line_exit_2(
    study_file: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, _, err = run_cli(capsys, "launch", str(study_file), *args)
    assert code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1, err


def test_a_password_on_the_command_line_is_refused_for_remote_engines(
    study_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://hpo:hunter2@db.example/hpo"
    code, out, err = run_cli(capsys, "launch", str(study_file), "--on", "slurm", "--storage", url)
    assert code == 2 and "export HPO_STORAGE instead" in err
    assert "hunter2" not in out + err


def test_k8s_dry_run_writes_manifests_and_prints_the_apply_command(
    study_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HPO_STORAGE", "postgresql://hpo:hunter2@db.example/hpo")
    job_dir = tmp_path / "job"
    code, out, err = run_cli(
        capsys,
        "launch",
        str(study_file),
        "--on",
        "k8s",
        "--image",
        "reg/hpo:1",
        "--workers",
        "4",
        "--gpus",
        "none",
        "--job-dir",
        str(job_dir),
        "--dry-run",
    )
    assert code == 0, err
    assert "completionMode: Indexed" in out and "completions: 4" in out
    assert f"kubectl apply -f {job_dir / 'secret.yaml'} -f {job_dir / 'job.yaml'}" in out
    assert "hunter2" not in out + err
    assert "hunter2" in (job_dir / "secret.yaml").read_text()
    assert stat.S_IMODE((job_dir / "secret.yaml").stat().st_mode) == 0o600


def test_status_shows_the_engine_and_job_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = make_study(bench_config("shown"), open_storage(url))
    launch = Launch("slurm", "4242", 3, detail="/jobs/worker.sbatch")
    record_launch(study, launch, gpus=True)
    code, out, err = run_cli(capsys, "status", "shown", "--storage", url)
    assert code == 0, err
    assert "executor: slurm job 4242: 3 worker(s), one GPU each" in out
    code, out, _ = run_cli(capsys, "status", "shown", "--storage", url, "--json")
    assert '"job_id": "4242"' in out
    assert executor_line({"engine": "local", "job_id": "pid 7", "workers": 2}).startswith(
        "local launcher pid 7: 2 worker(s)"
    )
