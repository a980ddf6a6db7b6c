"""tf.data pipelines from the decoded-image cache, and how a split is drawn epoch after epoch.

Images come out of `ImageCache` already decoded and resized (uint8), so an epoch only
reads arrays. `Sampling` decides which images each batch holds: a training epoch's order
and its flip choices are drawn from (seed, epoch) alone, so a run resumed after epoch k
draws for epoch k+1 exactly what the uninterrupted run drew, and the image path and the
feature cache (core.training.feature_cache) draw the same images, in the same order, in
the same view. Validation and test batches are neither shuffled nor augmented. Labels are
one-hot for categorical cross-entropy, as in the reference recipe.

`load_training_arrays` gives training the splits with the run's label curation applied
(core.curation): excluded images left out, relabelled ones with their new label, in train and
validation only; the images stay the cached split's, read through a core.curation.apply.RowView.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from core import config as cfg
from core.curation.apply import RowView, check_applies, curate_split
from core.curation.marks import CURATED_SPLITS, Curation, load_snapshot
from core.data import DataSource, ImageCache, open_source
from core.model.augmentation import build_augmentation, mirror, split_flip
from core.progress import ProgressCallback, no_progress


@dataclass(frozen=True)
class Sampling:
    """How a split of `count` images is drawn into batches, endlessly, epoch after epoch.

    Training (`seed` set): each epoch is a new order of the images and, with `flip`, a coin per
    image for its mirrored view, both drawn from (seed, epoch) alone. Otherwise every epoch is
    the same pass in stored order. With `replicas` > 1 an epoch leaves out `count % replicas`
    images, so every batch splits evenly over the replicas: a different few each training epoch,
    never the same images for good. `first_epoch`: the (0-based) epoch the first batch belongs
    to, where a resumed fit starts.
    """

    batch_size: int
    seed: int | None = None
    flip: bool = False
    replicas: int = 1
    first_epoch: int = 0

    def epoch(self, epoch: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, mirrored): the images of epoch `epoch` in the order drawn, and which are mirrored."""
        kept = count - count % self.replicas
        if self.seed is None:
            return np.arange(kept), np.zeros(kept, bool)
        rng = np.random.default_rng([self.seed, epoch])
        rows = rng.permutation(count)[:kept]
        mirrored = rng.random(kept) < 0.5 if self.flip else np.zeros(kept, bool)
        return rows, mirrored

    def batches(self, count: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, mirrored) of each batch from `first_epoch` on, rows ascending within a batch.

        Ascending rows read a memory-mapped cache sequentially; the order within a batch
        changes nothing in training.
        """
        if not self.steps(count):
            return  # nothing to draw: an endless loop would never yield
        epoch = self.first_epoch
        while True:
            rows, mirrored = self.epoch(epoch, count)
            for start in range(0, len(rows), self.batch_size):
                batch = slice(start, start + self.batch_size)
                ascending = np.argsort(rows[batch], kind="stable")
                yield rows[batch][ascending], mirrored[batch][ascending]
            epoch += 1

    def steps(self, count: int) -> int:
        """Batches per epoch."""
        return math.ceil((count - count % self.replicas) / self.batch_size)


def image_dataset(
    images: np.ndarray, labels: np.ndarray, num_classes: int, sampling: Sampling, augment: str = "none"
) -> tuple[tf.data.Dataset, int]:
    """An endless dataset of (float32 0-255 images, one-hot labels) batches, and its batches per epoch.

    `augment` applies to the batches drawn: its flip through `sampling` (a coin per image and
    epoch), its other layers in the pipeline with their own random streams.
    """
    mode, rest = split_flip(augment)
    sampling = dataclasses.replace(sampling, flip=mode is not None)
    size = images.shape[1]

    def batches():
        for rows, mirrored in sampling.batches(len(labels)):
            x = images[rows]
            if mirrored.any():
                x[mirrored] = mirror(x[mirrored], mode)
            yield x, labels[rows]

    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, size, size, 3), tf.uint8),
            tf.TensorSpec((None,), tf.int64),
        ),
    )
    dataset = dataset.map(_model_inputs(num_classes), num_parallel_calls=tf.data.AUTOTUNE)
    augmentation = build_augmentation(rest, seed=sampling.seed)
    if augmentation is not None:
        dataset = dataset.map(
            lambda x, y: (augmentation(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE), sampling.steps(len(labels))


def make_dataset(
    images: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int
) -> tf.data.Dataset:
    """One pass of (float32 0-255 images, one-hot labels) batches in stored order, for evaluation."""
    count = len(images)

    def batches():
        for start in range(0, count, batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]

    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, *images.shape[1:]), tf.uint8),
            tf.TensorSpec((None,), tf.int64),
        ),
    )
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(count / batch_size)))
    dataset = dataset.map(_model_inputs(num_classes), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _model_inputs(num_classes: int):
    def to_model_inputs(x, y):
        return tf.cast(x, tf.float32), tf.one_hot(y, num_classes)

    return to_model_inputs


def load_split_arrays(
    data: cfg.DataConfig, workspace: Path, image_size: int, progress: ProgressCallback = no_progress
) -> tuple[DataSource, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Open the data source and return it with decoded (images, labels) per split, as it gives them."""
    source = open_source(data.source, data.path, workspace=workspace, data_config=data, progress=progress)
    cache = ImageCache(workspace)
    arrays = {split: cache.get(source, split, image_size, progress) for split in cfg.SPLITS}
    return source, arrays


def load_training_arrays(
    data: cfg.DataConfig, workspace: Path, image_size: int, progress: ProgressCallback = no_progress
) -> tuple[DataSource, dict[str, tuple[np.ndarray, np.ndarray]], Curation | None]:
    """load_split_arrays with the run's label curation (DataConfig.curation) applied; and that curation.

    A curated train or validation split is the kept rows of the source's split, its images a
    RowView of the whole split's (no copy) and its labels relabelled; the test split is never
    curated (core.curation.marks). BadInputError when the curation was made on other data.
    """
    source, arrays = load_split_arrays(data, workspace, image_size, progress)
    if data.curation is None:
        return source, arrays, None
    curation = load_snapshot(workspace, data.curation)
    check_applies(curation, source.fingerprint(), source.class_names)
    curated = dict(arrays)
    for split in CURATED_SPLITS:
        images, labels = arrays[split]
        kept = curate_split(curation, split, labels, source.class_names)
        curated[split] = (RowView(images, kept.rows), kept.labels)
    return source, curated, curation
