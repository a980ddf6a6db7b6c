"""Fine-tuning the top of the backbone on cached outputs of its frozen lower part.

The cut is a single tensor below every trainable layer; the model above it, fed the cached
outputs, is the full model (same outputs, same training step), and a second fine-tuning run
from the same head run computes no lower-backbone pass.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core import config as cfg
from core.catalog.backbones import get_backbone
from core.model.classifier import backbone_of, build_model, compile_model, frozen_boundary, unfreeze_model
from core.runs.requests import queue_finetune_run, queue_head_run
from core.runs.store import RunStore
from core.training.feature_cache import FeatureCache, feature_extractor, head_model
from core.training.finetune import cached_boundary
from core.training.worker import run_queue

SIZE = 32


def _images(count: int = 4) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (count, SIZE, SIZE, 3)).astype("float32")


# ResNet50V2 is made of layers only; MobileNetV3 also of keras ops (add, multiply) between them.
@pytest.mark.parametrize("name, unfreeze", [("resnet50v2", 36), ("mobilenetv3small", 30)])
def test_the_part_above_the_boundary_on_cached_outputs_is_the_full_model(name: str, unfreeze: int) -> None:
    keras.utils.set_random_seed(0)
    model = build_model(get_backbone(name), 5, SIZE, weights=None, dropout=0.0)
    unfreeze_model(model, unfreeze)
    at = frozen_boundary(model)
    operations = backbone_of(model).operations
    first_trainable = min(i for i, op in enumerate(operations) if getattr(op, "trainable_weights", None))
    assert at is not None and 0 < at < first_trainable
    images = _images()
    lower, top = feature_extractor(model, at), head_model(model, at)
    np.testing.assert_allclose(top(lower(images)), model(images, training=False), atol=1e-5)

    # One training step on the cached outputs changes the weights exactly as one on the images.
    labels = keras.utils.to_categorical([0, 1, 2, 3], 5)
    start = model.get_weights()
    compile_model(model, 1e-3)
    model.train_on_batch(images, labels)
    full_step = model.get_weights()
    model.set_weights(start)
    compile_model(top, 1e-3)
    top.train_on_batch(np.asarray(lower(images)), labels)
    changed = 0
    for a, b, before in zip(full_step, model.get_weights(), start, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        changed += int(not np.allclose(a, before))
    assert changed > 0


def test_no_boundary_when_every_layer_trains_or_the_cut_would_cache_too_much() -> None:
    model = build_model(get_backbone("resnet50v2"), 5, SIZE, weights=None)
    unfreeze_model(model, "all")
    assert frozen_boundary(model) is None
    unfreeze_model(model, 36)
    assert cached_boundary(model, cfg.FinetuneConfig(unfreeze="36"), "flip") is not None
    assert cached_boundary(model, cfg.FinetuneConfig(unfreeze="36", feature_cache=False), "flip") is None
    assert cached_boundary(model, cfg.FinetuneConfig(unfreeze="36"), "flip,rotation=0.1") is None
    unfreeze_model(model, len(backbone_of(model).layers) - 8)  # boundary right after the stem: too big
    assert cached_boundary(model, cfg.FinetuneConfig(unfreeze="all"), "flip") is None


def test_fine_tuning_the_top_uses_and_reuses_the_lower_backbone_cache(tmp_path, class_folders, monkeypatch):
    store = RunStore(tmp_path / "ws")
    data = cfg.DataConfig(source="folder", path=str(class_folders))
    head = cfg.TrainConfig(
        backbone="mobilenetv3small", weights="none", image_size=SIZE, epochs=1, batch_size=8
    )
    parent = queue_head_run(store, data, head)
    run_queue(store, say=lambda line: None)
    passes = []
    original = FeatureCache._compute
    monkeypatch.setattr(
        FeatureCache, "_compute", lambda self, *a, **k: passes.append(a[0].at) or original(self, *a, **k)
    )
    top = cfg.FinetuneConfig(epochs=2, unfreeze="20")
    first = queue_finetune_run(store, parent, top)
    run_queue(store, say=lambda line: None)
    record = store.get(first)
    assert record.status == "done", record.error
    assert record.metrics["cached_below"] and len(store.history(first)) == 2
    assert passes and all(at is not None for at in passes)  # train (both views) and validation
    passes.clear()
    second = queue_finetune_run(store, parent, cfg.FinetuneConfig(epochs=1, unfreeze="20", lr=1e-4))
    run_queue(store, say=lambda line: None)
    assert store.get(second).status == "done" and passes == []  # no lower-backbone pass
