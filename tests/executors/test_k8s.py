"""The Kubernetes executor: manifests checked against the API schema offline, and its
pods' command run as local processes, one per completion index, against PostgreSQL."""

from __future__ import annotations

import signal
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo.executors import K8sExecutor, Plan
from hpo.storage import open_storage
from hpo.studies import create_or_resume
from tests.executors.conftest import FAST_HEARTBEAT, bench_config
from tests.executors.engines import mount_config_map, run_pod
from tests.executors.fault import run_fault_test

KUBERNETES = "1.31.0"
SECRET = "hunter2-k8s"


def _executor(tmp_path: Path, *, workers: int = 3, gpus: bool = True, url: str = "") -> K8sExecutor:
    url = url or f"postgresql://hpo:{SECRET}@db:5432/hpo"
    plan = Plan(
        bench_config("k8s-study", trials=6),
        url,
        workers=workers,
        gpus=gpus,
        per_process=None,
        job_dir=tmp_path / "job",
        env=FAST_HEARTBEAT,
    )
    return K8sExecutor(plan, image="registry.example/hpo:0.1", namespace="lab", kubectl="")


def test_manifests_are_valid_kubernetes_objects(tmp_path: Path) -> None:
    validate = pytest.importorskip("kubernetes_validate").validate
    executor = _executor(tmp_path)
    secret_path, job_path = executor.write()
    documents = list(yaml.safe_load_all(job_path.read_text()))
    documents.append(yaml.safe_load(secret_path.read_text()))
    assert [d["kind"] for d in documents] == ["ConfigMap", "Job", "Secret"]
    for document in documents:
        validate(document, KUBERNETES, strict=True)
    # A misspelled field is caught: the check above is not vacuous.
    broken = yaml.safe_load_all(job_path.read_text())
    job = next(d for d in broken if d["kind"] == "Job")
    job["spec"]["completionsMode"] = job["spec"].pop("completionMode")
    with pytest.raises(Exception, match="completionsMode"):
        validate(job, KUBERNETES, strict=True)


def test_job_spec_indexes_gpus_failure_policy_and_secret(tmp_path: Path) -> None:
    executor = _executor(tmp_path)
    secret_path, job_path = executor.write()
    spec = executor.job()["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 3
    assert spec["backoffLimitPerIndex"] >= 1
    rules = spec["podFailurePolicy"]["rules"]
    by_action = {(r["action"], tuple(r.get("onExitCodes", {}).get("values", []))) for r in rules}
    assert ("FailIndex", (2,)) in by_action
    disruption = [r for r in rules if "onPodConditions" in r]
    assert disruption[0]["action"] == "Ignore"
    assert disruption[0]["onPodConditions"][0]["type"] == "DisruptionTarget"
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert pod["restartPolicy"] == "Never"
    assert container["image"] == "registry.example/hpo:0.1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    storage_env = next(e for e in container["env"] if e["name"] == "HPO_STORAGE")
    assert storage_env["valueFrom"]["secretKeyRef"]["key"] == "HPO_STORAGE"
    assert SECRET not in job_path.read_text()
    assert SECRET in secret_path.read_text()
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    cpu = _executor(tmp_path / "cpu", gpus=False).job()["spec"]["template"]["spec"]
    assert "resources" not in cpu["containers"][0]


@pytest.mark.slow
def test_pods_as_local_workers_one_killed_keep_the_total_exact(
    tmp_path: Path, postgres_url: str
) -> None:
    executor = _executor(tmp_path, workers=3, gpus=False, url=postgres_url)
    create_or_resume(executor.plan.config, postgres_url)
    mount = mount_config_map(executor, tmp_path / "etc-hpo")
    pods = {i: run_pod(executor, i, mount) for i in range(3)}

    def kill(trial: Any) -> None:
        index = int(trial.user_attrs["worker"].removeprefix("k8s-"))
        pods[index].send_signal(signal.SIGKILL)
        pods[index].wait()
        pods[index] = run_pod(executor, index, mount)  # the Job's retry for that index

    def finish() -> None:
        for index, pod in pods.items():
            _, err = pod.communicate(timeout=120)
            assert pod.returncode == 0, (index, err)

    result = run_fault_test(open_storage(postgres_url), "k8s-study", 6, kill=kill, finish=finish)
    assert {t.user_attrs["worker"] for t in result.trials} <= {"k8s-0", "k8s-1", "k8s-2"}


def test_start_without_a_cluster_writes_the_manifests_and_says_how_to_apply(
    tmp_path: Path,
) -> None:
    launch = _executor(tmp_path).start()
    assert launch.job_id == "hpo-k8s-study" and not launch.submitted
    assert (
        "kubectl apply -f" in launch.detail and str(tmp_path / "job" / "job.yaml") in launch.detail
    )
