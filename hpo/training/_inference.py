"""Forward passes for validation and export, without ``model.predict``'s set-up cost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.asarray(predict_batches(model, x, batch_size), dtype=np.float64)


def predict_batches(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``model.predict`` without its per-call set-up (~60 ms, a data adapter and
    callbacks), which outweighs a head's whole forward pass when run every epoch."""
    if len(x) == 0:
        return np.asarray(model.predict(x, verbose=0))
    parts = [
        np.asarray(model.predict_on_batch(x[i : i + batch_size]))
        for i in range(0, len(x), batch_size)
    ]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class Inference:
    """Forward passes of one model through a ``tf.function`` of our own (TensorFlow).

    Keras drops its predict function whenever a model is compiled, so the
    per-epoch validation predictions would be traced again in every phase;
    this one is traced once per model and trial, as a single ``predict`` at
    the end of a hand-written loop would be. On JAX and PyTorch, Keras' own
    ``predict_on_batch`` (jitted on JAX) is used.
    """

    def __init__(self, jit_compile: bool = False, backend: str = "tensorflow") -> None:
        self.jit_compile = jit_compile
        self.backend = backend
        self._fns: dict[int, tuple[Any, Any]] = {}

    def __call__(self, model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if self.backend != "tensorflow" or len(x) == 0:
            return predict_proba(model, x, batch_size)
        import tensorflow as tf

        entry = self._fns.get(id(model))
        if entry is None or entry[0] is not model:

            def forward(batch: tf.Tensor) -> tf.Tensor:
                return model(batch, training=False)

            fn = tf.function(forward, reduce_retracing=True, jit_compile=self.jit_compile)
            entry = self._fns[id(model)] = (model, fn)
        fn = entry[1]
        parts = [
            np.asarray(fn(tf.constant(x[i : i + batch_size]))) for i in range(0, len(x), batch_size)
        ]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return np.asarray(out, dtype=np.float64)
