"""Backbone features computed once and reused across epochs and runs.

With a frozen backbone, head training only ever needs the pooled backbone
output of each image. `FeatureCache` computes it once per image and view and
stores it in the workspace, keyed by dataset content, split, backbone weights
and image size, so a second head run on the same data starts training at once.

For the reference augmentation (a random horizontal flip) each training image
gets two views, the image and its mirror image, and every epoch picks one at
random per image: the same distribution the reference pipeline trains on.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from core.model import backbone_of
from core.progress import ProgressCallback, no_progress
from core.workspace import atomic_path

FEATURE_FORMAT = 1
VIEWS = ("original", "flipped")


def flip_views(images: np.ndarray) -> np.ndarray:
    """Mirror images left to right (what RandomFlip('horizontal') does when it flips)."""
    return images[:, :, ::-1, :]


def weights_digest(model: keras.Model) -> str:
    """A digest of the backbone's architecture and weights: random, ImageNet or from a file alike."""
    backbone = backbone_of(model)
    digest = hashlib.sha256(f"{backbone.name}|{len(backbone.layers)}".encode())
    for weight in backbone.weights:
        digest.update(weight.path.encode())
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:24]


def feature_extractor(model: keras.Model) -> keras.Model:
    """The part of a PetLab model up to the pooled backbone output."""
    return keras.Model(model.input, model.get_layer("avg_pool").output, name="feature_extractor")


def head_model(model: keras.Model) -> keras.Model:
    """The head of a PetLab model as a model on pooled features, sharing the same layers."""
    features = keras.Input(model.get_layer("avg_pool").output.shape[1:], name="features")
    x = features
    for name in ("head_bn", "head_dropout", "predictions"):
        x = model.get_layer(name)(x)
    return keras.Model(features, x, name="head")


class FeatureCache:
    """Pooled features per (data, split, view, backbone weights, size), in <workspace>/cache/features/."""

    def __init__(self, workspace: Path) -> None:
        self.root = Path(workspace) / "cache" / "features"
        self.computed = 0  # images passed through the backbone by this instance (for tests and benchmarks)

    def key(self, data_fingerprint: str, split: str, view: str, digest: str, size: int) -> str:
        text = f"{FEATURE_FORMAT}|{data_fingerprint}|{split}|{view}|{digest}|{size}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(
        self,
        model: keras.Model,
        images: np.ndarray,
        data_fingerprint: str,
        split: str,
        view: str = "original",
        digest: str | None = None,
        batch_size: int = 64,
        progress: ProgressCallback = no_progress,
    ) -> np.ndarray:
        """float32 [N, D] features of `images` (flipped first for view 'flipped'), computed once."""
        digest = digest or weights_digest(model)
        path = self.root / f"{self.key(data_fingerprint, split, view, digest, images.shape[1])}.npy"
        if path.is_file():
            return np.load(path, allow_pickle=False)
        features = self._compute(
            model, images, view, batch_size, progress, f"extracting {split} features ({view})"
        )
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, features)
        return features

    def _compute(self, model, images, view, batch_size, progress, stage) -> np.ndarray:
        extractor = feature_extractor(model)
        forward = tf.function(lambda x: extractor(x, training=False), reduce_retracing=True)
        chunks = []
        total = len(images)
        progress(stage, 0, total)
        for start in range(0, total, batch_size):
            batch = np.asarray(images[start : start + batch_size])
            if view == "flipped":
                batch = flip_views(batch)
            chunks.append(np.asarray(forward(tf.convert_to_tensor(batch, tf.float32)), dtype=np.float32))
            progress(stage, min(start + batch_size, total), total)
        self.computed += total
        width = int(extractor.output.shape[-1])
        return np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32)


def feature_dataset(
    views: list[np.ndarray],
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    *,
    training: bool,
    seed: int,
) -> tf.data.Dataset:
    """Batches of (features, one-hot labels); training: shuffled, one random view per image per epoch."""
    count = len(labels)
    epoch = [0]
    stacked = np.stack(views)  # [V, N, D]

    def batches():
        rng = np.random.default_rng(seed + epoch[0])
        epoch[0] += 1
        order = rng.permutation(count) if training else np.arange(count)
        view = rng.integers(0, len(views), count) if training else np.zeros(count, dtype=np.int64)
        for start in range(0, count, batch_size):
            index = order[start : start + batch_size]
            yield stacked[view[index], index], labels[index]

    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, stacked.shape[-1]), tf.float32),
            tf.TensorSpec((None,), tf.int64),
        ),
    )
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(count / batch_size)))
    return dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes))).prefetch(tf.data.AUTOTUNE)
