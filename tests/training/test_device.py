"""hpo.training._device: resolved settings and the process-wide Keras state a trial borrows."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest

from hpo import data as data_mod
from hpo.config import HYPERPARAMETER_DEFAULTS, validate_config
from hpo.data import load_dataset
from hpo.errors import TrialFailedError
from hpo.training import AUTOTUNE, clear_session, resolve_settings, train_and_evaluate


def config(**training: object) -> object:
    return validate_config(
        {
            "study": {"name": "t"},
            "dataset": {"source": "digits", "image_size": 16, "channels": 1, "max_per_class": 10},
            "model": {"backbone": "small_cnn", "weights": "none"},
            "training": {"head_epochs": 1, **training},
        }
    )


def test_auto_settings_follow_the_device() -> None:
    training = config(mixed_precision="bfloat16").training  # type: ignore[attr-defined]
    cpu = resolve_settings(training, gpu=False)
    gpu = resolve_settings(training, gpu=True)
    assert not cpu.jit_compile and gpu.jit_compile
    assert cpu.policy == "mixed_bfloat16" and cpu.prefetch == AUTOTUNE


@pytest.fixture
def _fresh() -> Iterator[None]:
    data_mod.clear_cache()
    yield
    data_mod.clear_cache()
    clear_session()


@pytest.mark.slow
@pytest.mark.usefixtures("_fresh")
def test_dtype_policy_and_random_state_are_restored() -> None:
    import keras

    cfg = config(mixed_precision="float16")
    ds = load_dataset(cfg.dataset)  # type: ignore[attr-defined]
    params = {**HYPERPARAMETER_DEFAULTS, "batch_size": 16}
    keras.mixed_precision.set_global_policy("float32")
    np.random.seed(1234)
    random.seed(1234)
    expected = (np.random.get_state()[1].copy(), random.getstate())
    result = train_and_evaluate(cfg, ds, params, keep_model=True)  # type: ignore[arg-type]
    # The model trained in mixed precision; the process is back to what it was.
    assert result.model.get_layer("head_dense").dtype_policy.name == "mixed_float16"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert (np.random.get_state()[1] == expected[0]).all()
    assert random.getstate() == expected[1]


@pytest.mark.slow
@pytest.mark.usefixtures("_fresh")
def test_dtype_policy_is_restored_when_training_raises() -> None:
    import keras

    cfg = config(mixed_precision="float16", head_epochs=50, trial_timeout=0.01)
    ds = load_dataset(cfg.dataset)  # type: ignore[attr-defined]
    params = {**HYPERPARAMETER_DEFAULTS, "batch_size": 16}
    keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(TrialFailedError, match="trial_timeout"):
        train_and_evaluate(cfg, ds, params)  # type: ignore[arg-type]
    assert keras.mixed_precision.global_policy().name == "float32"


# --- check_gpu: a worker given a GPU must see it ---------------------------


def test_check_gpu_refuses_a_cpu_only_tensorflow() -> None:
    """This machine has tensorflow-cpu: a worker given GPU 0 stops with the fix."""
    from hpo.errors import ConfigError
    from hpo.training import check_gpu

    with pytest.raises(ConfigError) as err:
        check_gpu("tensorflow", "0")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("CUDA_VISIBLE_DEVICES=0 gives this worker a GPU, but")
    assert "tensorflow-cpu is CPU-only" in message and "hpo[cuda]" in message


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_check_gpu_refuses_cpu_only_jax_and_torch(backend: str) -> None:
    """jax[cpu] and torch's CPU wheel are installed here: CPU-only builds too."""
    from hpo.errors import ConfigError
    from hpo.training import check_gpu

    pytest.importorskip(backend)
    with pytest.raises(ConfigError, match=rf"but the {backend} build is CPU-only; pip install"):
        check_gpu(backend, "1")


@pytest.mark.parametrize("visible", ["", "-1", None])
def test_check_gpu_passes_without_a_gpu_asked_for(
    visible: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpo.training import check_gpu

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    check_gpu("tensorflow", visible)  # None: read from the (unset) environment
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    check_gpu("tensorflow")


CARDS = [("0", "GPU-aaaa", "NVIDIA H100 80GB HBM3"), ("1", "GPU-bbbb", "NVIDIA H100 80GB HBM3")]


def test_diagnose_gpu_names_each_cause() -> None:
    """The reasons a CUDA build sees no GPU, given what nvidia-smi lists."""
    from hpo.training import diagnose_gpu

    no_driver = diagnose_gpu("jax", "0", cuda_build=True, cards=None)
    assert "no working NVIDIA driver" in no_driver and "CUDA_VISIBLE_DEVICES=''" in no_driver
    missing = diagnose_gpu("tensorflow", "0,5", cuda_build=True, cards=CARDS)
    assert "nvidia-smi lists no GPU 5 (it lists: 0, 1)" in missing
    assert "nvidia-smi lists no GPU" not in diagnose_gpu(
        "tensorflow", "GPU-bbbb", cuda_build=True, cards=CARDS
    )
    mismatch = diagnose_gpu("torch", "1", cuda_build=True, cards=CARDS)
    assert "torch sees none of the GPUs nvidia-smi lists (NVIDIA H100" in mismatch
    assert "update the NVIDIA driver" in mismatch
    cpu = diagnose_gpu("tensorflow", "0", cuda_build=False, cards=CARDS)
    assert "tensorflow-cpu is CPU-only" in cpu  # the build is checked before the cards
    mixed = diagnose_gpu("tensorflow", "0", cuda_build=False, cards=CARDS, both_tensorflows=True)
    assert "tensorflow-cpu's files overwrote the CUDA build" in mixed
    assert "pip uninstall -y tensorflow-cpu" in mixed
    for message in (no_driver, missing, mismatch, cpu, mixed):
        assert "\n" not in message


def test_training_device_is_the_cpu_here() -> None:
    from hpo.training import device_name, training_device

    assert device_name() == "cpu" and training_device() == "cpu"


def test_settings_per_backend() -> None:
    from hpo.errors import ConfigError

    training = config().training  # type: ignore[attr-defined]
    assert resolve_settings(training, gpu=False, backend="jax").jit_compile  # always XLA
    assert not resolve_settings(training, gpu=True, backend="torch").jit_compile
    assert resolve_settings(training, gpu=True, backend="tensorflow").jit_compile
    with pytest.raises(ConfigError, match=r"training\.xla: on is not supported with the torch"):
        resolve_settings(config(xla="on").training, gpu=False, backend="torch")  # type: ignore[attr-defined]
