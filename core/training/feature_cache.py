"""Backbone features computed once and reused across epochs and runs.

With a frozen backbone, head training only ever needs the pooled backbone
output of each image. `FeatureCache` computes it once per image and view and
stores it in the workspace, keyed by dataset content and the decoded-image
cache's format, split, backbone weights, compute dtype and image size, so a second
head run on the same data starts training at once.

For the reference augmentation (a random horizontal flip) each training image
gets two views, the image and its mirror image, and every epoch picks one per
image with the coin the image path tosses (core.training.datasets.Sampling): the
same batches the image path trains on.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from core.catalog.backbones import Backbone
from core.curation.apply import RowView
from core.data import cache as image_cache
from core.model.augmentation import mirror
from core.model.backbones import build_backbone, resolve_weights
from core.model.classifier import HEAD_LAYERS, backbone_of, build_model, compiled_forward
from core.progress import ProgressCallback, no_progress
from core.training.datasets import Sampling
from core.workspace import atomic_path

FEATURE_FORMAT = 3
VIEWS = ("original", "flipped")
BATCH_SIZE = 64  # images per backbone pass while extracting


def flip_views(images: np.ndarray) -> np.ndarray:
    """Mirror images left to right (what RandomFlip('horizontal') does when it flips)."""
    return mirror(images, "horizontal")


def weights_digest(model: keras.Model) -> str:
    """A digest of the backbone's architecture and weights: random, ImageNet or from a file alike."""
    backbone = backbone_of(model)
    digest = hashlib.sha256(f"{backbone.name}|{len(backbone.layers)}".encode())
    for weight in backbone.weights:
        digest.update(weight.path.encode())
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:24]


@dataclass(frozen=True, eq=False)
class FrozenPart:
    """The frozen part of a model whose outputs are cached: up to the pooled backbone output
    (`at` None, head training) or up to backbone operation `at` (fine-tuning the top of the
    backbone). `digest` names the backbone's weights (`weights_digest`)."""

    model: keras.Model
    digest: str
    at: int | None = None

    @classmethod
    def of(cls, model: keras.Model, at: int | None = None) -> FrozenPart:
        """The part of `model` below `at`, its weights digested now."""
        return cls(model, weights_digest(model), at)

    @property
    def compute_dtype(self) -> str:
        """The backbone's dtype policy (float32, mixed_float16 on a GPU): what computes its outputs."""
        return backbone_of(self.model).dtype_policy.name


class WarmBackbone:
    """The frozen backbone of the last head run in this process, kept for the next one.

    A worker trains queued runs back to back and then waits a while for more (core.runs.worker_process), so
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


def feature_extractor(model: keras.Model, at: int | None = None) -> keras.Model:
    """The part of a PetLab model up to the pooled backbone output, or up to backbone operation `at`."""
    if at is None:
        return keras.Model(model.input, model.get_layer("avg_pool").output, name="feature_extractor")
    base = backbone_of(model)
    lower = keras.Model(base.input, base.operations[at].output, name="lower_backbone")
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = inputs
    for layer in model.layers[: model.layers.index(base)]:  # the input scaling in front of the backbone
        if not isinstance(layer, keras.layers.InputLayer):
            x = layer(x)
    return keras.Model(inputs, lower(x, training=False), name="feature_extractor")


def head_model(model: keras.Model, at: int | None = None) -> keras.Model:
    """The part of a PetLab model above its pooled backbone output (the head), or above backbone
    operation `at` (the top of the backbone and the head), as a model on that output. It shares
    the layers of `model`: training it trains them."""
    if at is None:
        features = keras.Input(model.get_layer("avg_pool").output.shape[1:], name="features")
        x, names = features, HEAD_LAYERS[1:]
    else:
        base = backbone_of(model)
        upper = keras.Model(base.operations[at].output, base.output, name="upper_backbone")
        features = keras.Input(upper.input_shape[1:], name="features")
        x, names = upper(features, training=False), HEAD_LAYERS  # as build_model calls the backbone
    for name in names:
        x = model.get_layer(name)(x)
    return keras.Model(features, x, name="head")


class FeatureCache:
    """Backbone outputs per (data, split, view, weights, dtype, size, place) in <workspace>/cache/features/.

    The place is the pooled backbone output (head training) or the output of a backbone
    operation below which fine-tuning keeps everything frozen. The data is named by its
    content and by the decoded-image cache's format (core.data.cache.CACHE_FORMAT): features
    of images decoded another way are not reused. Arrays come back memory-mapped.
    """

    def __init__(self, workspace: Path) -> None:
        self.root = Path(workspace) / "cache" / "features"
        self.computed = 0  # images passed through the backbone by this instance (for tests and benchmarks)
        self._extractor: tuple | None = None  # (model, at, compiled extractor, output shape)

    def key(self, part: FrozenPart, data_fingerprint: str, split: str, view: str, size: int) -> str:
        """The file name (without .npy) of `part`'s outputs for one split and view of the data."""
        place = "pooled" if part.at is None else f"operation {part.at}"
        data = f"{data_fingerprint}|images {image_cache.CACHE_FORMAT}|{split}|{view}|{size}"
        text = f"{FEATURE_FORMAT}|{data}|{part.digest}|{part.compute_dtype}|{place}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(
        self,
        part: FrozenPart,
        images: np.ndarray,
        data_fingerprint: str,
        split: str,
        view: str = "original",
        progress: ProgressCallback = no_progress,
    ) -> np.ndarray:
        """float32 [N, ...] outputs of `part` for `images` (flipped first for view 'flipped'), once.

        For a curated split (`images` a core.curation.apply.RowView: some rows of the source's
        split) they are those rows of the whole split's outputs: the cache always holds one row per
        image of the source, is never keyed by a curation, and curated runs share it.
        """
        if isinstance(images, RowView):
            whole = self.get(part, images.base, data_fingerprint, split, view, progress)
            return RowView(whole, images.rows)
        key = self.key(part, data_fingerprint, split, view, images.shape[1])
        path = self.root / f"{key}.npy"
        if not path.is_file():
            what = "features" if part.at is None else "lower-backbone outputs"
            stage = f"extracting {split} {what} ({view})"
            with atomic_path(path) as tmp:
                self._compute(part, images, view, tmp, progress, stage)
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def _compute(
        self,
        part: FrozenPart,
        images: np.ndarray,
        view: str,
        path: Path,
        progress: ProgressCallback,
        stage: str,
    ) -> None:
        forward, shape = self._forward(part.model, part.at)
        total = len(images)
        # Written batch by batch into the file: lower-backbone outputs of a large dataset outgrow memory.
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(total, *shape))
        progress(stage, 0, total)
        for start in range(0, total, BATCH_SIZE):
            batch = np.asarray(images[start : start + BATCH_SIZE])
            if view == "flipped":
                batch = flip_views(batch)
            out[start : start + len(batch)] = np.asarray(forward(tf.convert_to_tensor(batch, tf.float32)))
            progress(stage, min(start + BATCH_SIZE, total), total)
        out.flush()
        del out
        self.computed += total

    def _forward(self, model: keras.Model, at: int | None):
        """The compiled extractor for `model` and `at`, traced once and reused for every split and view."""
        if self._extractor is None or self._extractor[0] is not model or self._extractor[1] != at:
            extractor = feature_extractor(model, at)
            self._extractor = (model, at, compiled_forward(extractor), tuple(extractor.output.shape[1:]))
        return self._extractor[2], self._extractor[3]


def feature_dataset(
    views: list[np.ndarray], labels: np.ndarray, num_classes: int, sampling: Sampling
) -> tuple[tf.data.Dataset, int]:
    """An endless dataset of (features, one-hot labels) batches and its number of batches per epoch.

    `views`: the outputs for the images as they are, and (to train with the flip) for their
    mirror images; each training batch takes every image in the view `sampling` drew for it
    (the mirrored one when its coin says flip, as the image path mirrors it). The dataset
    repeats, so fit() keeps one iterator for the whole run (with `steps_per_epoch`) instead of
    building one per epoch, which costs more than an epoch of head training on pooled features.
    The views may be memory-mapped: only the rows of the current batch are read.
    """
    labels = np.asarray(labels, np.int64)
    sampling = dataclasses.replace(sampling, flip=len(views) > 1)

    def batches():
        for rows, mirrored in sampling.batches(len(labels)):
            x = np.empty((len(rows), *views[0].shape[1:]), np.float32)
            x[~mirrored] = views[0][rows[~mirrored]]
            if mirrored.any():
                x[mirrored] = views[1][rows[mirrored]]
            yield x, labels[rows]

    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, *views[0].shape[1:]), tf.float32),
            tf.TensorSpec((None,), tf.int64),
        ),
    )
    dataset = dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes)))
    return dataset.prefetch(tf.data.AUTOTUNE), sampling.steps(len(labels))
