"""Worker slots on this host's devices (GPUs, or shares of the CPU), without TensorFlow.

The launcher pins each worker to one GPU with ``CUDA_VISIBLE_DEVICES``; a
worker then sees its GPU as ``GPU:0`` and turns memory growth on, so several
workers can share one card. Discovery asks ``nvidia-smi``, which answers in
milliseconds, where importing TensorFlow would take seconds and claim the GPUs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from hpo.errors import ConfigError

# A fixed GPU list (e.g. "0,1,2,3") replaces discovery: for machines where
# nvidia-smi is absent from PATH, and for tests of the assignment.
ENV_OVERRIDE = "HPO_GPUS_OVERRIDE"


@dataclass(frozen=True)
class Gpu:
    index: str
    name: str = ""
    memory_mib: int | None = None

    def label(self) -> str:
        memory = f" {self.memory_mib / 1024:.0f} GiB" if self.memory_mib else ""
        return f"{self.index} {self.name}{memory}".strip()


@dataclass(frozen=True)
class Slot:
    name: str
    gpu: str | None  # the physical index given to CUDA_VISIBLE_DEVICES, None for CPU
    label: str = ""  # what the live table shows: "1 NVIDIA A100 80 GiB", or "cpu"

    def env(self, cpu_threads: int | None = None) -> dict[str, str]:
        """The variables that pin a worker process to this slot."""
        env = {"CUDA_VISIBLE_DEVICES": self.gpu if self.gpu is not None else ""}
        if self.gpu is not None:
            env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        elif cpu_threads:
            # K CPU workers share the cores instead of each starting one thread per core.
            env["TF_NUM_INTRAOP_THREADS"] = str(cpu_threads)
            env["TF_NUM_INTEROP_THREADS"] = "1"
            env["OMP_NUM_THREADS"] = str(cpu_threads)
        return env


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Rows of ``--query-gpu=index,name,memory.total --format=csv,noheader``."""
    gpus = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if not fields or not fields[0].isdigit():
            continue
        name = fields[1] if len(fields) > 1 else ""
        memory = None
        if len(fields) > 2:
            number = fields[2].split()[0] if fields[2].split() else ""
            memory = int(number) if number.isdigit() else None
        gpus.append(Gpu(fields[0], name, memory))
    return gpus


def discover_gpus() -> list[Gpu]:
    """The GPUs nvidia-smi lists (empty without a GPU or driver)."""
    override = os.environ.get(ENV_OVERRIDE)
    if override is not None:
        return [Gpu(g.strip(), "(override)") for g in override.split(",") if g.strip()]
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(out)


def plan_slots(gpus: str, workers_per_gpu: int) -> list[Slot]:
    """Worker slots for ``--gpus all|none|0,1,3`` and ``--workers-per-gpu K``.

    With ``none``, or ``all`` on a machine without GPUs, K CPU workers run.
    """
    if workers_per_gpu < 1:
        raise ConfigError(f"--workers-per-gpu: must be at least 1, got {workers_per_gpu}")
    spec = gpus.strip().lower()
    if spec == "none":
        return [Slot(f"cpu-w{k}", None, "cpu") for k in range(workers_per_gpu)]
    found = discover_gpus()
    by_index = {g.index: g for g in found}
    if spec == "all":
        chosen = [g.index for g in found]
    else:
        chosen = [g.strip() for g in spec.split(",") if g.strip()]
        bad = [g for g in chosen if not g.isdigit()]
        if bad or not chosen:
            raise ConfigError(f"--gpus: '{gpus}' is not 'all', 'none' or a list like 0,1,3")
        missing = [g for g in chosen if found and g not in by_index]
        if missing:
            raise ConfigError(
                f"--gpus: GPU {', '.join(missing)} not found; available: "
                f"{', '.join(by_index) or 'none'}"
            )
        if len(set(chosen)) != len(chosen):
            raise ConfigError(f"--gpus: '{gpus}' lists a GPU twice")
    if not chosen:
        return [Slot(f"cpu-w{k}", None, "cpu") for k in range(workers_per_gpu)]
    return [
        Slot(f"gpu{g}-w{k}", g, by_index[g].label() if g in by_index else g)
        for g in chosen
        for k in range(workers_per_gpu)
    ]


_CHECK = """
import sys
from hpo.errors import HpoError
from hpo.training import check_gpu
try:
    check_gpu(sys.argv[1] or None, sys.argv[2])
except HpoError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
"""


def check_backend_sees(slots: list[Slot], backend: str | None, *, flag: str) -> None:
    """Refuse GPU slots the Keras backend cannot see, before any study or trial exists.

    The check imports the backend, so it runs in a short child process: the
    supervising process never holds GPU memory.
    """
    gpus = sorted({s.gpu for s in slots if s.gpu is not None})
    if not gpus:
        return
    visible = ",".join(gpus)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", _CHECK, backend or "", visible],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = result.stderr.strip().splitlines()
    if result.returncode == 0:
        return
    last = lines[-1] if lines else f"exit code {result.returncode}"
    if result.returncode == 2:
        raise ConfigError(f"{flag}: {last}")
    raise ConfigError(f"{flag}: checking that the backend sees GPU {visible} failed: {last}")


def cpu_threads_for(workers: int) -> int:
    """Threads per CPU worker so that K workers share the cores, not fight for them."""
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


def physical_device(device: str, visible: str | None = None) -> str:
    """``GPU:0`` as TensorFlow names it, renamed to the card's index on the host.

    A worker pinned with ``CUDA_VISIBLE_DEVICES=3`` sees its GPU as ``GPU:0``;
    reports and the live table should say ``GPU:3``.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if not device.startswith("GPU:") or not visible:
        return device
    cards = [c.strip() for c in visible.split(",") if c.strip()]
    index = int(device.removeprefix("GPU:"))
    return f"GPU:{cards[index]}" if index < len(cards) else device
