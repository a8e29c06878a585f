"""Workers as a Kubernetes Indexed Job: one pod per completion index.

``hpo launch --on k8s`` writes three manifests into the job folder: a
Secret holding the storage URL (mode 600; the pods read it through
``secretKeyRef``, so it is in no manifest but that one and on no command
line), a ConfigMap with the resolved study file, and the Job. The Job's pod
failure policy steers restarts: exit code 2 (a bad study file or dataset)
fails that index at once, a worker that reached its per-process quota
(exit 76) or a pod evicted or preempted (``DisruptionTarget``) is replaced
without counting as a failure, and anything else (a crash, out of memory)
is retried up to ``backoffLimitPerIndex`` times. The study's storage keeps
the budget, so replacement pods never run a trial too many.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

import yaml

from hpo.errors import ConfigError, FatalError, HpoError
from hpo.executors._base import (
    MAX_RESTARTS,
    STUDY_FILE_NAME,
    Executor,
    Launch,
    Plan,
    default_job_dir,
    job_name,
    study_yaml,
    write_private,
)
from hpo.storage import ENV_VAR
from hpo.worker._exit_codes import RECYCLE_EXIT_CODE, USER_ERROR_EXIT_CODE

CONTAINER = "worker"
STUDY_MOUNT = "/etc/hpo"
STOP_GRACE_SECONDS = 60  # a deleted or preempted pod's time to fail and re-queue its trial
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


class K8sExecutor(Executor):
    """An Indexed Job on the cluster ``kubectl`` points at (or manifests to apply later)."""

    engine: ClassVar[str] = "k8s"

    def __init__(
        self,
        plan: Plan,
        *,
        image: str | None,
        namespace: str = "default",
        kubectl: str | None = None,
        poll: float = 5.0,
    ) -> None:
        super().__init__(plan)
        if not image:
            raise ConfigError("--image: --on k8s needs the container image that has hpo installed")
        if not _IMAGE.match(image):
            raise ConfigError(f"--image: '{image}' is not a container image reference")
        if not _DNS_LABEL.match(namespace):
            raise ConfigError(
                f"--namespace: '{namespace}' is not a Kubernetes name; "
                "allowed: lowercase letters, digits and '-'"
            )
        self.image, self.namespace, self.poll = image, namespace, poll
        self.kubectl = kubectl if kubectl is not None else shutil.which("kubectl")
        self.name = job_name(plan.study_name)
        self.job_dir = (plan.job_dir or default_job_dir(plan.study_name)).resolve()
        self.applied = False

    # --- manifests ------------------------------------------------------------------

    def _meta(self, name: str) -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": "hpo", "app.kubernetes.io/instance": self.name}
        return {"name": name, "namespace": self.namespace, "labels": labels}

    def secret(self) -> dict[str, Any]:
        """The storage URL, the only place it is written."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": self._meta(f"{self.name}-storage"),
            "type": "Opaque",
            "stringData": {ENV_VAR: self.plan.storage_url},
        }

    def config_map(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self._meta(f"{self.name}-study"),
            "data": {STUDY_FILE_NAME: study_yaml(self.plan.config)},
        }

    def job(self) -> dict[str, Any]:
        plan = self.plan
        env: list[dict[str, Any]] = [
            {
                "name": ENV_VAR,
                "valueFrom": {"secretKeyRef": {"name": f"{self.name}-storage", "key": ENV_VAR}},
            },
            {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "3"},
        ]
        if plan.gpus:
            env.append({"name": "TF_FORCE_GPU_ALLOW_GROWTH", "value": "true"})
        env += [{"name": k, "value": v} for k, v in plan.env.items() if k != ENV_VAR]
        container: dict[str, Any] = {
            "name": CONTAINER,
            "image": self.image,
            "command": ["hpo", "worker", f"{STUDY_MOUNT}/{STUDY_FILE_NAME}"],
            # Kubernetes puts each pod's index in JOB_COMPLETION_INDEX and expands $(...).
            "args": plan.worker_args("k8s-$(JOB_COMPLETION_INDEX)"),
            "env": env,
            "volumeMounts": [{"name": "study", "mountPath": STUDY_MOUNT, "readOnly": True}],
        }
        if plan.gpus:
            container["resources"] = {"limits": {"nvidia.com/gpu": 1}}
        on_exit = [
            # A bad study file or dataset: the same on every retry.
            ("FailIndex", USER_ERROR_EXIT_CODE),
            # The per-process quota: a fresh pod continues, not a failure.
            ("Ignore", RECYCLE_EXIT_CODE),
        ]
        rules: list[dict[str, Any]] = [
            {
                "action": action,
                "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [code]},
            }
            for action, code in on_exit
        ]
        # Evicted, preempted or its node drained: the trial was re-queued; just run again.
        rules.append(
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            }
        )
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": self._meta(self.name),
            "spec": {
                "completionMode": "Indexed",
                "completions": plan.workers,
                "parallelism": plan.workers,
                "backoffLimitPerIndex": MAX_RESTARTS,
                "podFailurePolicy": {"rules": rules},
                "template": {
                    "metadata": {"labels": self._meta(self.name)["labels"]},
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": STOP_GRACE_SECONDS,
                        "containers": [container],
                        "volumes": [{"name": "study", "configMap": {"name": f"{self.name}-study"}}],
                    },
                },
            },
        }

    @property
    def secret_path(self) -> Path:
        return self.job_dir / "secret.yaml"

    @property
    def job_path(self) -> Path:
        return self.job_dir / "job.yaml"

    def render(self) -> str:
        """ConfigMap and Job as one YAML stream (the Secret stays in its own file)."""
        return yaml.safe_dump_all([self.config_map(), self.job()], sort_keys=False)

    def write(self) -> tuple[Path, Path]:
        """``secret.yaml`` (owner-only) and ``job.yaml`` in the job folder."""
        write_private(self.secret_path, yaml.safe_dump(self.secret(), sort_keys=False))
        self.job_path.parent.mkdir(parents=True, exist_ok=True)
        self.job_path.write_text(self.render(), encoding="utf-8")
        return self.secret_path, self.job_path

    def apply_command(self) -> list[str]:
        return ["kubectl", "apply", "-f", str(self.secret_path), "-f", str(self.job_path)]

    # --- the executor ---------------------------------------------------------------

    def can_apply(self) -> bool:
        """kubectl is installed and points at a cluster (a current context)."""
        if not self.kubectl:
            return False
        try:
            done = subprocess.run(
                [self.kubectl, "config", "current-context"],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0 and bool(done.stdout.strip())

    def start(self) -> Launch:
        """Write the manifests; apply them when kubectl has a cluster, else say how."""
        self.write()
        if self.can_apply():
            self._kubectl(["apply", "-f", str(self.secret_path), "-f", str(self.job_path)])
            self.applied = True
            detail = f"namespace {self.namespace}, manifests in {self.job_dir}"
        else:
            detail = (
                f"not applied (no kubectl cluster); apply with: {' '.join(self.apply_command())}"
            )
        return Launch(
            self.engine, self.name, self.plan.workers, detail=detail, submitted=self.applied
        )

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        if not self.applied:
            raise HpoError(
                f"k8s: job {self.name} was not applied; {' '.join(self.apply_command())}"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self._status()
            if status in ("Complete", "Failed"):
                break
            if deadline is not None and time.monotonic() > deadline:
                raise HpoError(f"k8s job {self.name}: still running after {timeout:g} s")
            time.sleep(self.poll)
        import optuna

        from hpo.results import finished_count
        from hpo.storage import open_storage

        store = open_storage(self.plan.storage_url)
        done = finished_count(optuna.load_study(study_name=self.plan.study_name, storage=store))
        if done < self.plan.budget:
            raise FatalError(
                f"k8s job {self.name} ended ({status}) with {done} of {self.plan.budget} trials "
                f"finished; kubectl logs -n {self.namespace} job/{self.name}"
            )
        return {"finished": done, "budget": self.plan.budget, "job_id": self.name}

    def stop(self) -> None:
        """Delete the Job: each pod gets SIGTERM and its grace period to re-queue its trial."""
        self._kubectl(["delete", "job", self.name, "--wait=false"])

    def _status(self) -> str:
        query = "jsonpath={.status.conditions[?(@.status=='True')].type}"
        out = self._kubectl(["get", "job", self.name, "-o", query])
        for word in out.split():
            if word in ("Complete", "Failed"):
                return word
        return "Running"

    def _kubectl(self, args: list[str]) -> str:
        if not self.kubectl:
            raise HpoError("--on k8s: kubectl not found on PATH")
        command = [self.kubectl, "-n", self.namespace, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HpoError(f"kubectl: {exc}") from None
        if done.returncode != 0:
            lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise HpoError(f"kubectl {args[0]}: {lines[-1] if lines else 'failed'}")
        return done.stdout
