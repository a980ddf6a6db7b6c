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
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from core.backbones import Backbone, build_backbone, resolve_weights
from core.model import backbone_of, build_model, compiled_forward
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


class WarmBackbone:
    """The frozen backbone of the last head run in this process, kept for the next one.

    A worker trains queued runs back to back and then waits a while for more (core.jobs), so
    a second head run on the same backbone, weights and image size skips building the backbone
    and hashing its weights. Only head training uses it, and head training never changes the
    backbone (it stays frozen); fine-tuning loads its own copy from the run's model.keras.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._base: keras.Model | None = None
        self._digest = ""
        self.builds = 0  # backbones built by this instance (for tests and benchmarks)

    def model(
        self, backbone: Backbone, num_classes: int, image_size: int, weights: str, dropout: float, seed: int
    ) -> tuple[keras.Model, str]:
        """A new reference model on the kept backbone (built first if needed) and the backbone's digest."""
        key = (
            backbone.name,
            image_size,
            _weights_identity(weights, seed),
            keras.config.dtype_policy().name,
            id(tf.distribute.get_strategy()),  # variables belong to the strategy they were made under
        )
        if key != self._key:
            self._key = self._base = None
            keras.utils.set_random_seed(seed)
            self._base, self._digest = build_backbone(backbone, image_size, weights), ""
            self.builds += 1
            self._key = key
        keras.utils.set_random_seed(seed)  # the head starts the same whether the backbone is new or kept
        model = build_model(backbone, num_classes, image_size, weights, dropout, base=self._base)
        self._digest = self._digest or weights_digest(model)
        return model, self._digest


def _weights_identity(weights: str, seed: int) -> tuple:
    """What decides a backbone's initial weights: random ones by the seed, a file by its content."""
    resolved = resolve_weights(weights)
    if resolved is None:
        return ("random", seed)
    if resolved == "imagenet":
        return ("imagenet",)
    stat = Path(resolved).stat()
    return (resolved, stat.st_size, stat.st_mtime_ns)


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
        self._extractor: tuple[keras.Model, Callable] | None = None

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
        forward = self._forward(model)
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
        width = int(model.get_layer("avg_pool").output.shape[-1])
        return np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32)

    def _forward(self, model: keras.Model):
        """The compiled feature extractor of `model`, traced once and reused for every split and view."""
        if self._extractor is None or self._extractor[0] is not model:
            self._extractor = (model, compiled_forward(feature_extractor(model)))
        return self._extractor[1]


def feature_dataset(
    views: list[np.ndarray],
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    *,
    training: bool,
    seed: int,
) -> tuple[tf.data.Dataset, int]:
    """An endless dataset of (features, one-hot labels) batches and its number of batches per epoch.

    Training: each epoch is a new shuffle of all images, each in one of its views picked at
    random. Otherwise every epoch is the same pass over view 0. The dataset repeats, so fit()
    keeps one iterator for the whole run (with `steps_per_epoch`) instead of building one per
    epoch, which costs more than an epoch of head training on features.
    """
    stacked = np.stack(views, axis=1)  # [N, V, D]
    dataset = tf.data.Dataset.from_tensor_slices((stacked, np.asarray(labels, np.int64)))
    if training:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)

        def one_view(x, y):  # a random view per image, drawn anew every epoch
            return x[tf.random.uniform((), 0, len(views), tf.int32, seed=seed)], y
    else:

        def one_view(x, y):
            return x[0], y

    dataset = dataset.map(one_view).batch(batch_size)
    dataset = dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes))).repeat()
    return dataset.prefetch(tf.data.AUTOTUNE), math.ceil(len(labels) / batch_size)
