"""tf.data pipelines from the decoded-image cache.

Images come out of `ImageCache` already decoded and resized (uint8), so an epoch
only reads arrays. Training batches are shuffled each epoch and then augmented;
validation and test batches are neither. Labels are one-hot for categorical
cross-entropy, as in the reference recipe.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from core import config as cfg
from core.data import DataSource, ImageCache, open_source
from core.progress import ProgressCallback, no_progress


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    *,
    training: bool = False,
    augmentation: keras.Sequential | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of (float32 0-255 images, one-hot labels); shuffled and augmented when training."""
    count = len(images)
    size = images.shape[1]
    epoch = [0]

    def batches():
        order = np.arange(count)
        if training:
            np.random.default_rng(seed + epoch[0]).shuffle(order)
            epoch[0] += 1
        for start in range(0, count, batch_size):
            # Sorted indices read the memory-mapped cache sequentially; order within a batch is irrelevant.
            index = np.sort(order[start : start + batch_size])
            yield images[index], labels[index]

    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, size, size, 3), tf.uint8),
            tf.TensorSpec((None,), tf.int64),
        ),
    )
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(count / batch_size)))

    def to_model_inputs(x, y):
        return tf.cast(x, tf.float32), tf.one_hot(y, num_classes)

    dataset = dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    if training and augmentation is not None:
        dataset = dataset.map(
            lambda x, y: (augmentation(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def load_split_arrays(
    data: cfg.DataConfig, workspace: Path, image_size: int, progress: ProgressCallback = no_progress
) -> tuple[DataSource, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Open the data source and return it with decoded (images, labels) per split."""
    source = open_source(data.source, data.path, workspace=workspace, data_config=data, progress=progress)
    cache = ImageCache(workspace)
    arrays = {split: cache.get(source, split, image_size, progress) for split in cfg.SPLITS}
    return source, arrays
