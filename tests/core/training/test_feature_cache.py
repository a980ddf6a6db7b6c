"""Feature cache: the head trained on cached features is the reference model, and the cache is reused."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core import config as cfg
from core.catalog.backbones import get_backbone
from core.model.classifier import build_model, load_model
from core.runs.requests import queue_head_run
from core.runs.store import RunStore
from core.training.datasets import Sampling, load_split_arrays
from core.training.feature_cache import (
    FeatureCache,
    FrozenPart,
    WarmBackbone,
    feature_dataset,
    feature_extractor,
    flip_views,
    head_model,
    weights_digest,
)
from core.training.worker import run_queue

SIZE = 32
TINY = cfg.TrainConfig(backbone="mobilenetv3small", weights="none", image_size=SIZE, epochs=2, batch_size=8)


def _images(count: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)


def test_flipped_view_is_what_random_flip_produces() -> None:
    images = _images()
    flipped = flip_views(images)
    np.testing.assert_array_equal(flipped, keras.ops.convert_to_numpy(keras.ops.flip(images, axis=2)))
    layer = keras.layers.RandomFlip("horizontal", seed=3)
    outputs = keras.ops.convert_to_numpy(layer(images.astype("float32"), training=True))
    for out, image, mirror in zip(outputs, images, flipped, strict=True):
        assert np.array_equal(out, image) or np.array_equal(out, mirror)
    assert any(np.array_equal(out, mirror) for out, mirror in zip(outputs, flipped, strict=True))


def test_flipped_features_are_features_of_flipped_images(tmp_path) -> None:
    keras.utils.set_random_seed(0)
    model = build_model(get_backbone("mobilenetv2"), 3, SIZE, weights=None)
    images = _images()
    cache = FeatureCache(tmp_path)
    part = FrozenPart.of(model)
    original = cache.get(part, images, "data", "train", "original")
    flipped = cache.get(part, images, "data", "train", "flipped")
    extractor = feature_extractor(model)
    # Randomly initialised backbones give tiny activations: compare on a common scale.
    scale = np.abs(original).max()
    assert scale > 0

    def same(a, b) -> bool:
        return np.allclose(np.asarray(a) / scale, np.asarray(b) / scale, rtol=0, atol=1e-4)

    assert same(flipped, extractor(flip_views(images).astype("float32")))
    assert same(original, extractor(images.astype("float32")))
    assert not same(original, flipped)


def test_cache_is_reused_and_invalidated_by_data_weights_and_size(tmp_path) -> None:
    keras.utils.set_random_seed(0)
    model = build_model(get_backbone("mobilenetv3small"), 3, SIZE, weights=None)
    images = _images()
    cache = FeatureCache(tmp_path)
    part = FrozenPart.of(model)
    first = cache.get(part, images, "data-a", "train")
    assert cache.computed == len(images)
    again = FeatureCache(tmp_path)
    np.testing.assert_array_equal(again.get(part, images, "data-a", "train"), first)
    assert again.computed == 0  # no backbone pass
    again.get(part, images, "data-b", "train")  # other data content
    assert again.computed == len(images)
    keras.utils.set_random_seed(1)
    other_weights = build_model(get_backbone("mobilenetv3small"), 3, SIZE, weights=None)
    assert weights_digest(other_weights) != weights_digest(model)
    again.get(FrozenPart.of(other_weights), images, "data-a", "train")
    assert again.computed == 2 * len(images)
    other_backbone = build_model(get_backbone("mobilenetv2"), 3, SIZE, weights=None)
    again.get(FrozenPart.of(other_backbone), images, "data-a", "train")
    assert again.computed == 3 * len(images)
    bigger = build_model(get_backbone("mobilenetv3small"), 3, 40, weights=None)
    bigger.set_weights(model.get_weights())
    again.get(FrozenPart.of(bigger), np.zeros((2, 40, 40, 3), np.uint8), "data-a", "train")
    assert again.computed == 3 * len(images) + 2


def test_a_new_dtype_policy_or_image_cache_format_makes_new_features(tmp_path, monkeypatch) -> None:
    """Catches float16 features served to a float32 run, or features of images decoded the old way."""
    from core.data import cache as image_cache

    images = _images()
    cache = FeatureCache(tmp_path)
    keras.utils.set_random_seed(0)
    model = build_model(get_backbone("mobilenetv3small"), 3, SIZE, weights=None)
    cache.get(FrozenPart.of(model), images, "data", "train")
    cache.get(FrozenPart.of(model), images, "data", "train")
    assert cache.computed == len(images)  # reused
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = build_model(get_backbone("mobilenetv3small"), 3, SIZE, weights=None)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    half.set_weights(model.get_weights())
    assert weights_digest(half) == weights_digest(model)  # the same weights, computed in float16
    cache.get(FrozenPart.of(half), images, "data", "train")
    assert cache.computed == 2 * len(images)
    monkeypatch.setattr(image_cache, "CACHE_FORMAT", image_cache.CACHE_FORMAT + 1)
    cache.get(FrozenPart.of(model), images, "data", "train")
    assert cache.computed == 3 * len(images)


@pytest.fixture
def head_run(tmp_path, class_folders):
    store = RunStore(tmp_path / "ws")
    data = cfg.DataConfig(source="folder", path=str(class_folders))
    run_id = queue_head_run(store, data, TINY)
    run_queue(store, say=lambda line: None)
    return store, data, run_id


def test_head_trained_on_features_equals_the_full_model(head_run) -> None:
    store, data, run_id = head_run
    assert store.get(run_id).status == "done" and store.get(run_id).metrics["feature_cache"] is True
    model = load_model(store.paths(run_id).model)
    assert [layer.name for layer in model.layers][-4:] == [
        "avg_pool",
        "head_bn",
        "head_dropout",
        "predictions",
    ]
    _, arrays = load_split_arrays(data, store.workspace, SIZE)
    images = np.asarray(arrays["test"][0])
    features = FeatureCache(store.workspace).get(FrozenPart.of(model), images, "unused", "test")
    via_head = head_model(model)(features, training=False)
    via_model = model(images.astype("float32"), training=False)
    np.testing.assert_allclose(via_head, via_model, atol=1e-5)
    # And the trained head is not the untrained one: it learned something.
    assert not np.allclose(model.get_layer("predictions").get_weights()[1], 0.0)


def test_second_head_run_does_no_backbone_pass(head_run, monkeypatch) -> None:
    store, data, _ = head_run
    calls = []
    original = FeatureCache._compute

    def counting(self, *args, **kwargs):
        calls.append(args[1])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FeatureCache, "_compute", counting)
    run_id = queue_head_run(store, data, TINY.__class__(**{**cfg.to_dict(TINY), "lr": 3e-3}))
    run_queue(store, say=lambda line: None)
    assert store.get(run_id).status == "done"
    assert calls == []


def test_feature_dataset_gives_every_image_once_per_epoch_in_a_random_view() -> None:
    count, width = 10, 3
    original = np.arange(count * width, dtype=np.float32).reshape(count, width)
    flipped = -original - 1  # distinguishable from every original row
    labels = np.arange(count)
    dataset, steps = feature_dataset([original, flipped], labels, count, Sampling(4, seed=1))
    assert steps == 3
    batches = iter(dataset)  # endless: fit() reads `steps` batches per epoch from one iterator
    epochs = []
    for _ in range(4):
        rows, seen = [], []
        for _ in range(steps):
            x, y = next(batches)
            rows.append(np.asarray(x))
            seen.append(np.argmax(np.asarray(y), axis=1))
        rows, seen = np.concatenate(rows), np.concatenate(seen)
        assert sorted(seen) == list(range(count))  # every image exactly once
        for row, label in zip(rows, seen, strict=True):  # each row is one of that image's views
            assert np.array_equal(row, original[label]) or np.array_equal(row, flipped[label])
        epochs.append((tuple(seen), tuple(row[0] >= 0 for row in rows)))
    assert len(set(epochs)) == 4  # a new order and choice of views every epoch
    chosen = np.array([views for _, views in epochs])
    assert 0.2 < chosen.mean() < 0.8  # both views are used


def test_validation_feature_dataset_repeats_the_same_pass() -> None:
    features = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    dataset, steps = feature_dataset([features], np.arange(5), 5, Sampling(2))
    batches = iter(dataset)
    first = np.concatenate([np.asarray(next(batches)[0]) for _ in range(steps)])
    second = np.concatenate([np.asarray(next(batches)[0]) for _ in range(steps)])
    np.testing.assert_array_equal(first, features)
    np.testing.assert_array_equal(second, features)


def test_warm_backbone_is_built_once_and_gives_the_same_model(tmp_path) -> None:
    backbone = get_backbone("mobilenetv3small")
    warm = WarmBackbone()
    first, digest = warm.model(backbone, 3, SIZE, "none", 0.2, seed=5)
    second, again = warm.model(backbone, 3, SIZE, "none", 0.2, seed=5)
    assert warm.builds == 1 and again == digest == weights_digest(first)
    # A head starts the same on a kept backbone as on a new one, so results do not depend on it.
    fresh, fresh_digest = WarmBackbone().model(backbone, 3, SIZE, "none", 0.2, seed=5)
    assert fresh_digest == digest
    for a, b in zip(second.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # A model on a kept (shared) backbone saves and loads like any other.
    second.save(tmp_path / "second.keras")
    loaded = load_model(tmp_path / "second.keras")
    images = _images().astype("float32")
    np.testing.assert_allclose(loaded(images), second(images), atol=1e-6)
    # Another seed (random weights), size or backbone builds a new one.
    warm.model(backbone, 3, SIZE, "none", 0.2, seed=6)
    warm.model(backbone, 3, 40, "none", 0.2, seed=6)
    warm.model(get_backbone("mobilenetv2"), 3, 40, "none", 0.2, seed=6)
    assert warm.builds == 4
