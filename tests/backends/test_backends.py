"""Keras 3 on TensorFlow, JAX and PyTorch: the same training, cache, Grad-CAM and export.

Each backend runs in its own process (``scenario.py``; Keras fixes its backend
at first import), selected by the study file's ``training.backend`` with
``KERAS_BACKEND`` unset. Real training on CPU, no mocks: about 35 s for
TensorFlow and PyTorch each and 70 s for JAX (XLA compiles each model) on 2 cores.
JAX runs first, PyTorch loads its model, TensorFlow loads both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

ORDER = ("jax", "torch", "tensorflow")  # each loads the models saved by those before it
BACKENDS = ("tensorflow", "jax", "torch")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any] | str]:
    """backend -> its scenario's result.json, or the failed run's output."""
    out = tmp_path_factory.mktemp("backends")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3", HPO_CACHE_DIR=str(out / "c"))
    results: dict[str, dict[str, Any] | str] = {}
    for i, backend in enumerate(ORDER):
        saved = [str(out / b) for b in ORDER[:i] if isinstance(results.get(b), dict)]
        cmd = [sys.executable, "-m", "tests.backends.scenario", backend, str(out), *saved]
        try:
            proc = subprocess.run(
                cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900
            )
        except subprocess.TimeoutExpired as exc:
            results[backend] = f"timed out after {exc.timeout} s"
            continue
        result = out / backend / "result.json"
        if proc.returncode != 0 or not result.exists():
            results[backend] = f"exit {proc.returncode}:\n{proc.stderr[-4000:]}"
        else:
            results[backend] = json.loads(result.read_text())
    return results


def outcome(outcomes: dict[str, dict[str, Any] | str], backend: str) -> dict[str, Any]:
    got = outcomes[backend]
    if isinstance(got, str):
        pytest.fail(f"the {backend} scenario failed: {got}")
    return got


@pytest.mark.parametrize("backend", BACKENDS)
def test_study_file_selects_the_backend(
    outcomes: dict[str, dict[str, Any] | str], backend: str
) -> None:
    got = outcome(outcomes, backend)
    assert not got["keras_before"]
    assert got["loaded"] == got["digits"]["backend"] == backend
    # Keras cannot switch backends in a process: asking for another one is refused.
    assert "was already imported in this process" in got["switch_refused"]
    assert f"with the {backend} backend" in got["switch_refused"]
    # Each trial records the backend it trained on.
    assert got["objective_backend"] == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_digits_reach_macro_f1(outcomes: dict[str, dict[str, Any] | str], backend: str) -> None:
    """The quickstart recipe (small CNN, 3 epochs, fixed good parameters)."""
    got = outcome(outcomes, backend)
    assert got["digits"]["macro_f1"] >= 0.9, got["digits"]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_training_off_tensorflow_does_not_import_it(
    outcomes: dict[str, dict[str, Any] | str], backend: str
) -> None:
    assert outcome(outcomes, backend)["tensorflow_after_training"] is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_cached_and_image_paths_agree(
    outcomes: dict[str, dict[str, Any] | str], backend: str
) -> None:
    cache = outcome(outcomes, backend)["cache"]
    assert cache["off_cache"] == {"features": "off"}
    assert cache["on_cache"]["features"] == cache["on_cache"]["activations"] == "computed"
    assert cache["on_cache"]["cut"] == "block3_relu1"
    assert len(cache["off"]) == len(cache["on"]) == 4
    assert 0.3 < cache["off"][-1] < 0.97, cache["off"]  # not a saturated task
    np.testing.assert_allclose(cache["on"], cache["off"], atol=0.02)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcam_points_at_the_deciding_square(
    outcomes: dict[str, dict[str, Any] | str], backend: str
) -> None:
    """tests/export/test_gradcam.py's synthetic check, with each backend's gradients."""
    cam = outcome(outcomes, backend)["gradcam"]
    assert cam["accuracy"] >= 0.9
    assert cam["layer"] == "block3_relu2"
    assert cam["range"][0] >= 0.0 and cam["range"][1] <= 1.0
    assert cam["hits"] >= 0.85 * cam["n"], cam
    assert cam["default_matches"]


@pytest.mark.parametrize(
    ("saved", "loaded"), [("jax", "torch"), ("jax", "tensorflow"), ("torch", "tensorflow")]
)
def test_exported_model_predicts_the_same_under_another_backend(
    outcomes: dict[str, dict[str, Any] | str], saved: str, loaded: str
) -> None:
    """A .keras file saved under one backend, loaded in safe mode under another."""
    outcome(outcomes, saved)
    cross = outcome(outcomes, loaded)["cross"]
    assert saved in cross, cross
    assert cross[saved] < 1e-4
