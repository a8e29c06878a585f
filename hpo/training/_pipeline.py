"""The input of one training phase, and the class weights it is fitted with.

The decoded images are already in memory. On TensorFlow they go through
tf.data (cached, shuffled per epoch, prefetched); on JAX and PyTorch through
``ArrayBatches``, a ``keras.utils.PyDataset`` over the NumPy arrays, so those
backends never import TensorFlow. Either way the order of the batches
depends on the seed and the epoch only, so the cached and the image path of
one backend see the same batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow here


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    augment: bool = False,
    cache: bool = True,
    prefetch: int = AUTOTUNE,
    parallel_calls: int = AUTOTUNE,
    backend: str = "tensorflow",
) -> Any:
    """The phase's batches: tf.data on TensorFlow, an ``ArrayBatches`` elsewhere."""
    if backend != "tensorflow":
        return array_batches(x, y, batch_size, shuffle=shuffle, seed=seed, augment=augment)
    return _tf_dataset(
        x,
        y,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        augment=augment,
        cache=cache,
        prefetch=prefetch,
        parallel_calls=parallel_calls,
    )


def _tf_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    augment: bool,
    cache: bool,
    prefetch: int,
    parallel_calls: int,
) -> tf.data.Dataset:
    """An in-memory tf.data pipeline: cached, shuffled per epoch, prefetched."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment:
        flip = tf.keras.layers.RandomFlip("horizontal", seed=seed)
        rot = tf.keras.layers.RandomRotation(0.05, seed=seed)

        def aug(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            images = tf.cast(images, tf.float32)
            return rot(flip(images, training=True), training=True), labels

        ds = ds.map(aug, num_parallel_calls=parallel_calls)
    return ds.prefetch(prefetch) if prefetch != 0 else ds


def array_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    augment: bool = False,
) -> Any:
    """A ``keras.utils.PyDataset`` of NumPy batches, reshuffled each epoch from ``seed``."""
    import keras

    class ArrayBatches(keras.utils.PyDataset):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.order = self._order()
            self.augmenter = (
                keras.Sequential(
                    [
                        keras.layers.RandomFlip("horizontal", seed=seed),
                        keras.layers.RandomRotation(0.05, seed=seed),
                    ]
                )
                if augment
                else None
            )

        def _order(self) -> np.ndarray:
            if not shuffle:
                return np.arange(len(y))
            return np.random.default_rng([seed, self.epoch]).permutation(len(y))

        def __len__(self) -> int:
            return -(-len(y) // batch_size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            rows = self.order[index * batch_size : (index + 1) * batch_size]
            images = x[rows]
            if self.augmenter is not None:
                out = self.augmenter(images.astype(np.float32), training=True)
                images = keras.ops.convert_to_numpy(out)
            return images, y[rows]

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = self._order()

    return ArrayBatches()


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced weights n / (k * count) for the classes present in training."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return {k: float(w) for k, w in enumerate(weights)}
