"""The Slurm executor on a real single-node Slurm started by the test session."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from hpo.executors import Plan, SlurmExecutor, record_launch
from hpo.storage import open_storage
from hpo.studies import create_or_resume
from hpo.summary import study_status
from tests.executors.conftest import FAST_HEARTBEAT, bench_config
from tests.executors.fault import run_fault_test


@pytest.mark.slow
def test_scancel_of_one_task_mid_trial_keeps_the_total_exact(
    slurm: dict[str, str], postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    config = bench_config("slurm-fault", trials=6)
    study = create_or_resume(config, postgres_url)
    plan = Plan(
        config, postgres_url, workers=2, per_process=None, job_dir=tmp_path, env=FAST_HEARTBEAT
    )
    executor = SlurmExecutor(plan, partition="debug", time_limit="10:00", poll=0.5)
    launch = executor.start()
    record_launch(study, launch, gpus=False)
    assert study_status(study)["executor"]["job_id"] == launch.job_id
    script = executor.script_path.read_text()
    assert postgres_url not in script and "HPO_STORAGE" in script

    def cancel(trial: object) -> None:
        worker = trial.user_attrs["worker"]  # type: ignore[attr-defined]
        task = worker.removeprefix("slurm-")  # JOBID_TASKID
        assert task.startswith(f"{launch.job_id}_"), worker
        subprocess.run(["scancel", task], check=True, env=os.environ)

    result = run_fault_test(
        open_storage(postgres_url),
        "slurm-fault",
        6,
        kill=cancel,
        finish=lambda: executor.wait(timeout=120),
    )
    assert "interrupted (SIGTERM)" in result.trials[result.victim.number].user_attrs["fail_reason"]
    killed_task = result.victim.user_attrs["worker"]
    assert result.retry.user_attrs["worker"] != killed_task, "the other task ran it again"


def test_dry_run_prints_the_array_script_and_submits_nothing(tmp_path: Path) -> None:
    from tests.helpers import hpo

    study_file = tmp_path / "b.yaml"
    url = "postgresql://hpo:hunter2@db.example:5432/hpo"
    study_file.write_text(
        "study: {name: dry}\nobjective: {benchmark: branin, seconds: 1.0}\n"
        f"budget: {{trials: 9}}\nstorage: {url}\n"
    )
    result = hpo(
        "launch",
        str(study_file),
        "--on",
        "slurm",
        "--workers",
        "3",
        "--partition",
        "gpu",
        "--time",
        "2:00:00",
        "--account",
        "lab",
        "--job-dir",
        str(tmp_path / "job"),
        "--dry-run",
    )
    assert result.returncode == 0, result.stderr
    script = result.stdout
    for line in (
        "#SBATCH --array=0-2",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=2:00:00",
        "#SBATCH --account=lab",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:TERM@120",
    ):
        assert line in script.splitlines(), line
    assert "--trials 9" in script and "hunter2" not in script
    assert not (tmp_path / "job").exists(), "a dry run writes nothing"
    none = hpo("launch", str(study_file), "--on", "slurm", "--gpus", "none", "--dry-run")
    assert none.returncode == 0 and "--gres" not in none.stdout


@pytest.mark.slow
def test_term_to_the_batch_shell_reaches_the_worker(
    slurm: dict[str, str], postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What --signal=B:TERM@N does before the time limit: only the shell gets SIGTERM."""
    from hpo.storage import open_storage as opened
    from tests.executors.fault import wait_for_running

    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    config = bench_config("slurm-warned", trials=3, seconds=60.0)
    study = create_or_resume(config, postgres_url)
    plan = Plan(config, postgres_url, workers=1, per_process=None, job_dir=tmp_path)
    executor = SlurmExecutor(plan, poll=0.5)
    launch = executor.start()
    running = wait_for_running(opened(postgres_url), "slurm-warned")
    subprocess.run(
        ["scancel", "--batch", "--signal=TERM", f"{launch.job_id}_0"], check=True, env=os.environ
    )
    deadline = time.monotonic() + 30
    while executor.tasks() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not executor.tasks(), "the task ended after its warning"
    trial = study.trials[running.number]
    assert trial.state.name == "FAIL"
    assert "interrupted (SIGTERM)" in trial.user_attrs["fail_reason"]
    assert [t.state.name for t in study.trials].count("WAITING") == 1


@pytest.mark.parametrize(
    ("codes", "runs", "exit_code"),
    [
        ([76, 76, 0], 3, 0),  # per-process quota twice, then the budget is reached
        ([2], 1, 2),  # a user error: no restart
        ([143], 1, 143),  # stopped by SIGTERM: no restart
        ([1, 137, 1, 1, 1], 4, 1),  # crashes: three replacements, then give up
    ],
)
def test_the_task_loop_restarts_as_the_local_supervisor_does(
    tmp_path: Path, codes: list[int], runs: int, exit_code: int
) -> None:
    """The script's loop around ``hpo worker``, run by bash with a stand-in for Python."""
    calls = tmp_path / "calls"
    stand_in = tmp_path / "python"
    stand_in.write_text(
        "#!/bin/bash\n"
        f'echo "$HPO_STORAGE $*" >> {calls}\n'
        f"n=$(wc -l < {calls})\n"
        f"codes=({' '.join(map(str, codes))})\n"
        'exit "${codes[$((n - 1))]}"\n'
    )
    stand_in.chmod(0o755)
    plan = Plan(bench_config("loop", trials=5), "postgresql://db/x", workers=1, job_dir=tmp_path)
    script = SlurmExecutor(plan, python=str(stand_in)).write()
    env = {
        "PATH": os.environ["PATH"],
        "HPO_STORAGE": "postgresql://db/x",
        "SLURM_ARRAY_JOB_ID": "7",
        "SLURM_ARRAY_TASK_ID": "1",
    }
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, timeout=30)
    assert done.returncode == exit_code, done.stderr
    lines = calls.read_text().splitlines()
    assert len(lines) == runs
    assert lines[0].startswith("postgresql://db/x -m hpo worker")
    assert "--worker-name slurm-7_1 " in lines[0] and "--trials 5" in lines[0]
    missing = subprocess.run(
        ["bash", str(script)], env={**env, "HPO_STORAGE": ""}, capture_output=True, timeout=30
    )
    assert missing.returncode == 2 and b"HPO_STORAGE is not set" in missing.stderr
