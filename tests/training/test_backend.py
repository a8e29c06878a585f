"""hpo.training._backend: the study file's backend, fixed before Keras is imported.

Which backend trains is tested per backend in tests/backends (one process
each); here, in the test process (TensorFlow), the choice and its refusals.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hpo.errors import ConfigError, HpoError
from hpo.training import configure_backend, requested_backend, select_backend
from tests.conftest import REPO


def test_study_file_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert requested_backend("jax") == "jax"
    assert requested_backend(None) == "torch"
    monkeypatch.delenv("KERAS_BACKEND")
    assert requested_backend(None) == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "numpy")
    with pytest.raises(ConfigError, match=r"^KERAS_BACKEND: 'numpy' is not one of"):
        requested_backend(None)


def test_another_backend_after_keras_was_imported_is_refused() -> None:
    configure_backend("tensorflow")  # this process: Keras on TensorFlow
    assert select_backend("tensorflow") == "tensorflow"
    assert select_backend(None) == "tensorflow"  # not set in the study file: what is loaded
    with pytest.raises(HpoError, match=r"start the worker with KERAS_BACKEND=jax") as err:
        select_backend("jax")
    assert "\n" not in str(err.value)


def test_backend_is_set_before_keras_is_imported() -> None:
    """In a fresh process: the study file's choice reaches Keras, the environment says so."""
    code = (
        "import sys\n"
        "from hpo.training import select_backend\n"
        "assert 'keras' not in sys.modules\n"
        "select_backend('torch')\n"
        "import keras, os\n"
        "print(keras.backend.backend(), os.environ['KERAS_BACKEND'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["torch", "torch"]


def test_config_accepts_only_known_backends() -> None:
    from hpo.config import validate_config

    base = {
        "study": {"name": "t"},
        "dataset": {"source": "digits"},
        "model": {"backbone": "small_cnn", "weights": "none"},
    }
    assert validate_config(base).training.backend is None
    assert validate_config({**base, "training": {"backend": "jax"}}).training.backend == "jax"
    with pytest.raises(ConfigError, match=r"training\.backend"):
        validate_config({**base, "training": {"backend": "mxnet"}})


def test_unset_backend_is_left_out_of_the_stored_config() -> None:
    """Studies stored before training.backend existed resume unchanged."""
    from hpo.config import validate_config

    base = {
        "study": {"name": "t"},
        "dataset": {"source": "digits"},
        "model": {"backbone": "small_cnn", "weights": "none"},
    }
    assert "backend" not in validate_config(base).to_dict()["training"]
    stored = validate_config({**base, "training": {"backend": "torch"}}).to_dict()
    assert stored["training"]["backend"] == "torch"
    assert validate_config(stored).training.backend == "torch"
