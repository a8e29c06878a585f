"""The device and the process-wide Keras settings a trial runs under.

``check_gpu`` is the start-up check of a worker that was given a GPU: the
backend must see it, or the worker stops with one line saying why (a
CPU-only build, a driver that does not match the build, or no such card)
instead of training on the CPU for hours. ``training_device`` says what a
trial really ran on.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hpo.errors import ConfigError
from hpo.training._backend import loaded_backend, requested_backend, select_backend
from hpo.training._pipeline import AUTOTUNE

if TYPE_CHECKING:
    from hpo.config import TrainingSection


def configure_backend(backend: str | None = None) -> str:
    """Select the Keras backend (``training.backend``, else ``KERAS_BACKEND``) and set
    it up for sharing a GPU: memory growth for TensorFlow, no preallocation for JAX."""
    name = select_backend(backend)
    if name == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            with contextlib.suppress(RuntimeError):  # already initialised in this process
                tf.config.experimental.set_memory_growth(gpu, True)
    return name


def configure_tensorflow() -> None:
    """The backend ``KERAS_BACKEND`` names (TensorFlow by default); see ``configure_backend``."""
    configure_backend(loaded_backend())


def _gpus(backend: str) -> list[str]:
    """Names of the GPUs the backend sees, as "GPU:<i> (<model>)"; imports the backend."""
    if backend == "tensorflow":
        from hpo._tf import import_tensorflow

        tf = import_tensorflow()
        out = []
        for i, gpu in enumerate(tf.config.list_physical_devices("GPU")):
            details: dict[str, object] = {}
            with contextlib.suppress(Exception):
                details = tf.config.experimental.get_device_details(gpu)
            out.append(f"GPU:{i} ({details.get('device_name', gpu.name)})")
        return out
    if backend == "jax":
        import jax

        try:
            devices = jax.devices("gpu")
        except RuntimeError:  # "Unknown backend: 'gpu' requested ..."
            return []
        return [f"GPU:{i} ({d.device_kind})" for i, d in enumerate(devices)]
    import torch

    if not torch.cuda.is_available():
        return []
    return [f"GPU:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]


def device_name() -> str:
    """The first GPU this process sees ("GPU:0") or "cpu", for the active backend."""
    gpus = _gpus(loaded_backend() or requested_backend())
    return gpus[0].split(" ", 1)[0] if gpus else "cpu"


def training_device() -> str:
    """Where the active backend trains: "GPU:0 (NVIDIA H100 80GB HBM3)" or "cpu"."""
    gpus = _gpus(loaded_backend() or requested_backend())
    return gpus[0] if gpus else "cpu"


# ---------------------------------------------------------------------------
# the start-up check of a worker given a GPU


def _requested(visible: str | None) -> list[str]:
    """The devices CUDA_VISIBLE_DEVICES names; none for unset, "" or "-1"."""
    if visible is None:
        return []
    cards = [c.strip() for c in visible.split(",") if c.strip()]
    return [] if not cards or cards[0] == "-1" else cards


def _cuda_build(backend: str) -> bool:
    """Whether the installed build of the backend can use an NVIDIA GPU at all."""
    if backend == "tensorflow":
        from hpo._tf import import_tensorflow

        return bool(import_tensorflow().test.is_built_with_cuda())
    if backend == "jax":
        plugins = ("jax-cuda12-plugin", "jax-cuda13-plugin", "jax-cuda12-pjrt", "jax-cuda13-pjrt")
        for dist in plugins:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                importlib.metadata.version(dist)
                return True
        return False
    import torch

    return torch.version.cuda is not None


def _nvidia_smi() -> list[tuple[str, str, str]] | None:
    """(index, uuid, name) of each card nvidia-smi lists; None without a working nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,uuid,name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [[part.strip() for part in line.split(",", 2)] for line in out.splitlines()]
    return [(r[0], r[1], r[2]) for r in rows if len(r) == 3]


_FIX = {
    "tensorflow": "pip install 'hpo[cuda]' (tensorflow[and-cuda] instead of tensorflow-cpu)",
    "jax": "pip install 'hpo[jax-cuda]' (jax[cuda12])",
    "torch": "pip install 'hpo[torch]' from PyPI's CUDA build, not the CPU wheel index",
}


def _both_tensorflows() -> bool:
    """tensorflow-cpu and tensorflow both installed: one's files overwrote the other's."""
    try:
        importlib.metadata.version("tensorflow-cpu")
        importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def diagnose_gpu(
    backend: str,
    visible: str,
    *,
    cuda_build: bool,
    cards: list[tuple[str, str, str]] | None,
    both_tensorflows: bool = False,
) -> str:
    """Why ``backend`` sees no GPU although ``CUDA_VISIBLE_DEVICES=visible`` gave it one."""
    given = f"CUDA_VISIBLE_DEVICES={visible} gives this worker a GPU, but"
    if not cuda_build and backend == "tensorflow" and both_tensorflows:
        return (
            f"{given} tensorflow-cpu's files overwrote the CUDA build of tensorflow (both are "
            "installed); pip uninstall -y tensorflow-cpu && pip install --force-reinstall "
            "--no-deps 'tensorflow==2.21.*'"
        )
    if not cuda_build:
        build = "tensorflow-cpu" if backend == "tensorflow" else f"the {backend} build"
        return f"{given} {build} is CPU-only; {_FIX[backend]}"
    if cards is None:
        return (
            f"{given} this machine has no working NVIDIA driver (nvidia-smi is missing or "
            "fails); install the driver, or set CUDA_VISIBLE_DEVICES='' to train on the CPU"
        )
    known = {c[0] for c in cards} | {c[1] for c in cards}
    missing = [d for d in _requested(visible) if d not in known]
    if missing:
        listed = ", ".join(c[0] for c in cards) or "none"
        return (
            f"{given} nvidia-smi lists no GPU {', '.join(missing)} (it lists: {listed}); "
            "pass an index or UUID from nvidia-smi -L"
        )
    return (
        f"{given} {backend} sees none of the GPUs nvidia-smi lists ({cards[0][2]}, ...): the "
        f"driver and the CUDA version {backend} was built for do not match; update the NVIDIA "
        f"driver or install a {backend} build for its CUDA version"
    )


def check_gpu(backend: str | None = None, visible: str | None = None) -> None:
    """Raise ``ConfigError`` (one line) when the worker was given a GPU the backend cannot see.

    ``visible`` defaults to ``CUDA_VISIBLE_DEVICES``; unset, "" or "-1" ask for
    the CPU and always pass. Imports the backend (call it where training will
    run, after ``CUDA_VISIBLE_DEVICES`` is final).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if not _requested(visible):
        return
    assert visible is not None
    name = requested_backend(backend)
    if _gpus(name):
        return
    raise ConfigError(
        diagnose_gpu(
            name,
            visible,
            cuda_build=_cuda_build(name),
            cards=_nvidia_smi(),
            both_tensorflows=_both_tensorflows(),
        )
    )


# ---------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class RunSettings:
    """The study file's device settings, with every "auto" resolved."""

    jit_compile: bool
    policy: str  # Keras dtype policy: float32, mixed_float16, mixed_bfloat16
    cache: bool  # tf.data .cache()
    prefetch: int  # batches; AUTOTUNE lets tf.data choose
    parallel_calls: int
    backend: str = "tensorflow"


def resolve_settings(
    training: TrainingSection, *, gpu: bool | None = None, backend: str | None = None
) -> RunSettings:
    """XLA is on with a GPU and off on CPU unless the study file says otherwise.

    On CPU, XLA compiles each new model for seconds and gains little for
    convolutions; on a GPU it fuses the many small ops of MobileNet-like nets.
    JAX always compiles with XLA (Keras' un-jitted JAX path runs op by op);
    PyTorch runs eagerly (``torch.compile`` is not used).
    """
    backend = backend or loaded_backend() or requested_backend(training.backend)
    if gpu is None:
        gpu = device_name() != "cpu"
    data = training.data

    def auto(value: int | str) -> int:
        return AUTOTUNE if value == "auto" else int(value)

    if backend == "jax":
        jit = True
    elif backend == "torch":
        if training.xla == "on":
            raise ConfigError(
                "training.xla: on is not supported with the torch backend; use auto or off"
            )
        jit = False
    else:
        jit = training.xla == "on" or (training.xla == "auto" and gpu)
    return RunSettings(
        jit_compile=jit,
        policy=(
            "float32" if training.mixed_precision == "off" else f"mixed_{training.mixed_precision}"
        ),
        cache=data.cache,
        prefetch=auto(data.prefetch),
        parallel_calls=auto(data.parallel_calls),
        backend=backend,
    )


def seed_everything(seed: int) -> None:
    """``keras.utils.set_random_seed`` without importing TensorFlow on JAX or PyTorch.

    Keras' own function imports TensorFlow whenever it is installed (to seed
    tf.data), which costs a JAX or PyTorch worker seconds and memory; off
    TensorFlow the same global state is reset here instead.
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    try:  # Keras' private global state, the one thing the public function does beyond seeding
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils import rng_utils
    except ImportError:  # a Keras that moved them: seed the documented way
        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)


@contextlib.contextmanager
def trial_globals(*, seed: int, policy: str) -> Iterator[None]:
    """Seed the random streams and set the dtype policy for one trial, then put back
    the caller's dtype policy and Python/NumPy random states.

    Keras keeps both in process-wide state; a trial must not leave mixed
    precision (or a reseeded NumPy) behind for whatever the process runs next.
    TensorFlow's own global seed has no public getter, so it stays seeded.
    """
    import keras

    previous_policy = keras.mixed_precision.global_policy()
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    seed_everything(seed)
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        random.setstate(python_state)
        np.random.set_state(numpy_state)
