"""Which Keras backend (TensorFlow, JAX or PyTorch) this process trains with.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, and cannot
switch afterwards; so the study file's ``training.backend`` is put in the
environment before that import, and a process that already imported Keras
with another backend is refused with a clear message instead of training on
the wrong one. Nothing here imports Keras until a backend is chosen.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from hpo.errors import ConfigError, HpoError

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"

# The package each backend imports, and the extra that installs it.
_MODULE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
_EXTRA = {"tensorflow": "hpo", "jax": "hpo[jax]", "torch": "hpo[torch]"}


def requested_backend(configured: str | None = None) -> str:
    """The study file's backend; else ``KERAS_BACKEND``; else TensorFlow."""
    name = configured or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
    if name not in BACKENDS:
        source = "training.backend" if configured else "KERAS_BACKEND"
        raise ConfigError(f"{source}: '{name}' is not one of {', '.join(BACKENDS)}")
    return name


def loaded_backend() -> str | None:
    """The backend Keras was imported with in this process, or None before its import."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    return str(keras.backend.backend())


def select_backend(configured: str | None = None) -> str:
    """Fix this process's Keras backend before Keras is imported; return its name.

    Raises ``HpoError`` when Keras was already imported with a different
    backend, and ``ConfigError`` when the backend's package is not installed.
    """
    name = requested_backend(configured)
    loaded = loaded_backend()
    if loaded is not None:
        if configured is None:
            return loaded  # whatever chose it (KERAS_BACKEND, keras.json) stands
        if loaded != name:
            raise HpoError(
                f"training.backend: {name} was asked for, but Keras was already imported in this "
                f"process with the {loaded} backend; start the worker with KERAS_BACKEND={name} "
                "or select the backend before anything imports keras"
            )
        return name
    if importlib.util.find_spec(_MODULE[name]) is None:
        raise ConfigError(
            f"training.backend: {name} is not installed; pip install '{_EXTRA[name]}'"
        )
    os.environ["KERAS_BACKEND"] = name
    if name == "jax":
        # JAX takes 75 % of a GPU's memory at start-up; two workers sharing a
        # GPU would fail. The user's own setting wins.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if name == "tensorflow":
        from hpo._tf import import_tensorflow

        import_tensorflow()  # quietly, with Keras
    else:
        import keras  # noqa: F401
    return name
