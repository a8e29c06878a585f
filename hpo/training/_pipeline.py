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
        # One seed per batch from a seeded stream that changes each epoch, and
        # stateless random ops: a parallel map then gives the same images
        # whatever order its threads run in. (Keras' random layers draw from
        # one shared state variable, which parallel calls advance in any order.)
        # So a trial retrained with its seed on the same machine gives the same
        # numbers on CPU. On a GPU, cuDNN may sum in another order from run to
        # run (op determinism is off: it slows training), so scores can differ
        # slightly; `hpo export` measures and reports any difference.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda batch, s: (augment_batch(batch[0], s), batch[1]),
            num_parallel_calls=parallel_calls,
            deterministic=True,
        )
    return ds.prefetch(prefetch) if prefetch != 0 else ds


ROTATION = 0.05  # a fraction of a full turn: up to +-18 degrees


def augment_batch(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random horizontal flips and small rotations (reflected borders), a pure
    function of the images and ``seed``: the same batch and seed give the same result.

    The same transforms as ``keras.layers.RandomFlip("horizontal")`` and
    ``RandomRotation(ROTATION)``, written with TensorFlow's stateless ops.
    """
    import keras
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    flip_seed = tf.random.experimental.stateless_fold_in(pair, 1)
    turn_seed = tf.random.experimental.stateless_fold_in(pair, 2)
    images = tf.image.stateless_random_flip_left_right(images, seed=flip_seed)
    n = tf.shape(images)[0]
    angle = tf.random.stateless_uniform(
        [n], seed=turn_seed, minval=-ROTATION * 2 * np.pi, maxval=ROTATION * 2 * np.pi
    )
    h = tf.cast(tf.shape(images)[1], tf.float32) - 1.0
    w = tf.cast(tf.shape(images)[2], tf.float32) - 1.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    x_off = (w - (cos * w - sin * h)) / 2.0
    y_off = (h - (sin * w + cos * h)) / 2.0
    zero = tf.zeros_like(angle)
    transform = tf.stack([cos, -sin, x_off, sin, cos, y_off, zero, zero], axis=1)
    return keras.ops.image.affine_transform(
        images, transform, interpolation="bilinear", fill_mode="reflect"
    )


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
            # Called in batch order from one thread, so its seeded layers draw
            # the same numbers on every run.
            self.augmenter = (
                keras.Sequential(
                    [
                        keras.layers.RandomFlip("horizontal", seed=seed),
                        keras.layers.RandomRotation(ROTATION, seed=seed),
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
