"""GPU discovery and assignment of worker slots, without importing TensorFlow.

The launcher pins each worker to one GPU with ``CUDA_VISIBLE_DEVICES``; a
worker then sees its GPU as ``GPU:0`` and turns memory growth on, so several
workers can share one card.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from hpo.errors import ConfigError

# A fixed GPU list (e.g. "0,1,2,3") replaces discovery: for machines where
# nvidia-smi is absent from PATH, and for tests of the assignment.
ENV_OVERRIDE = "HPO_GPUS_OVERRIDE"


@dataclass(frozen=True)
class Slot:
    name: str
    gpu: str | None  # the physical index given to CUDA_VISIBLE_DEVICES, None for CPU

    def env(self, cpu_threads: int | None = None) -> dict[str, str]:
        env = {"CUDA_VISIBLE_DEVICES": self.gpu if self.gpu is not None else ""}
        if self.gpu is not None:
            env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        elif cpu_threads:
            env["TF_NUM_INTRAOP_THREADS"] = str(cpu_threads)
            env["TF_NUM_INTEROP_THREADS"] = "1"
        return env


def discover() -> list[str]:
    """Indices of the GPUs nvidia-smi lists (empty without a GPU or driver)."""
    override = os.environ.get(ENV_OVERRIDE)
    if override is not None:
        return [g.strip() for g in override.split(",") if g.strip()]
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip().isdigit()]


def plan_slots(gpus: str, workers_per_gpu: int) -> list[Slot]:
    """Worker slots for ``--gpus all|none|0,1,3`` and ``--workers-per-gpu K``.

    With ``none``, or ``all`` on a machine without GPUs, K CPU workers run.
    """
    if workers_per_gpu < 1:
        raise ConfigError(f"--workers-per-gpu: must be at least 1, got {workers_per_gpu}")
    available = discover()
    spec = gpus.strip().lower()
    if spec == "none":
        chosen: list[str] = []
    elif spec == "all":
        chosen = available
    else:
        chosen = [g.strip() for g in spec.split(",") if g.strip()]
        bad = [g for g in chosen if not g.isdigit()]
        if bad or not chosen:
            raise ConfigError(f"--gpus: '{gpus}' is not 'all', 'none' or a list like 0,1,3")
        missing = [g for g in chosen if available and g not in available]
        if missing:
            raise ConfigError(
                f"--gpus: GPU {', '.join(missing)} not found; available: "
                f"{', '.join(available) or 'none'}"
            )
        if len(set(chosen)) != len(chosen):
            raise ConfigError(f"--gpus: '{gpus}' lists a GPU twice")
    if not chosen:
        return [Slot(f"cpu-w{k}", None) for k in range(workers_per_gpu)]
    return [Slot(f"gpu{g}-w{k}", g) for g in chosen for k in range(workers_per_gpu)]
