"""Training in-process: pipeline semantics, reproducibility, cancel, the one-at-a-time queue."""

from __future__ import annotations

import numpy as np
import pytest

from core import config as cfg
from core.catalog.augmentations import format_spec, is_flip_only, parse_spec
from core.errors import BadInputError
from core.model.augmentation import build_augmentation
from core.runs.requests import queue_finetune_run, queue_head_run
from core.training.datasets import Sampling, image_dataset, make_dataset
from core.training.worker import run_queue

TINY = cfg.TrainConfig(backbone="mobilenetv3small", weights="none", image_size=32, epochs=2, batch_size=8)


def test_augment_spec_round_trip_and_errors() -> None:
    assert parse_spec("flip") == {"flip": "horizontal"}
    assert is_flip_only(cfg.TRAIN.augment)
    spec = "flip,rotation=0.2,zoom,contrast=0.3"
    assert format_spec(parse_spec(spec)) == spec
    assert parse_spec("none") == {} and build_augmentation("none") is None
    for bad in ("spin", "rotation=abc", "rotation=0.9", "flip=sideways"):
        with pytest.raises(BadInputError):
            parse_spec(bad)


def _images(count: int = 12, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8), np.arange(count) % 3


def test_training_batches_are_augmented_and_others_are_not() -> None:
    images, labels = _images()
    plain = np.concatenate([x for x, _ in make_dataset(images, labels, 3, 4)])
    np.testing.assert_array_equal(plain, images.astype(np.float32))  # evaluation order, untouched
    dataset, steps = image_dataset(images, labels, 3, Sampling(4, seed=1), "flip=horizontal")
    seen = np.concatenate([x for x, _ in dataset.take(steps)])
    # Every training image is either itself or its mirror image, and some were mirrored.
    sums = {int(x.sum()) for x in images.astype(np.int64)}
    assert {int(x.sum()) for x in seen.astype(np.int64)} == sums
    originals = {x.tobytes() for x in images.astype(np.float32)}
    mirrored = [x for x in seen if x.tobytes() not in originals]
    assert mirrored
    assert all(x[:, ::-1].tobytes() in originals for x in mirrored)


def test_training_batches_are_shuffled_each_epoch_and_labels_follow() -> None:
    images, labels = _images()
    dataset, steps = image_dataset(images, labels, 3, Sampling(4, seed=3))
    batches = iter(dataset)  # endless: one epoch is `steps` batches
    first = next(batches)
    for _ in range(steps - 1):
        next(batches)
    second = next(batches)
    # Batches are drawn in a new random order each epoch (not the stored order).
    assert not np.array_equal(first[0], second[0])
    assert not np.array_equal(first[0], images[:4].astype(np.float32))
    lookup = {x.tobytes(): y for x, y in zip(images.astype(np.float32), labels, strict=True)}
    for x, y in zip(first[0].numpy(), first[1].numpy(), strict=True):
        assert int(np.argmax(y)) == lookup[x.tobytes()]


def test_same_seed_gives_the_same_run(store, data) -> None:
    first = queue_head_run(store, data, TINY)
    second = queue_head_run(store, data, TINY)
    run_queue(store, say=lambda line: None)
    losses = [[row["val_loss"] for row in store.history(run)] for run in (first, second)]
    assert len(losses[0]) == 2
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_cancel_stops_at_the_next_batch_and_keeps_the_model(store, data, monkeypatch) -> None:
    import core.training.callbacks as callbacks

    run_id = queue_head_run(store, data, TINY.__class__(**{**cfg.to_dict(TINY), "epochs": 50}))
    monkeypatch.setattr(callbacks, "PROGRESS_INTERVAL_S", 0.0)
    original = store.log_epoch

    def cancel_after_first_epoch(run, epoch, metrics, seconds):
        original(run, epoch, metrics, seconds)
        store.request_cancel(run)

    monkeypatch.setattr(store, "log_epoch", cancel_after_first_epoch)
    run_queue(store, say=lambda line: None)
    record = store.get(run_id)
    assert record.status == "cancelled"
    assert len(store.history(run_id)) <= 2  # stopped during epoch 2 at the latest
    assert store.paths(run_id).model.is_file()


def test_runs_execute_one_at_a_time_in_queue_order(store, data) -> None:
    first = queue_head_run(store, data, TINY)
    second = queue_head_run(store, data, TINY)
    order = []
    run_queue(
        store, say=lambda line: order.append(line) if line.startswith("run ") and "done" in line else None
    )
    assert order == [f"run {first} done", f"run {second} done"]
    runs = {r.id: r for r in store.list()}
    assert runs[first].finished <= runs[second].started


def test_finetune_needs_a_finished_parent(store, data) -> None:
    run_id = queue_head_run(store, data, TINY)
    with pytest.raises(BadInputError, match="queued"):
        queue_finetune_run(store, run_id, cfg.FINETUNE)
    with pytest.raises(BadInputError):
        queue_head_run(store, data, cfg.TrainConfig(backbone="nope"))


def test_preparation_progress_reaches_the_registry(store, data, monkeypatch) -> None:
    stages = []
    original = store.set_progress

    def recording(run_id, **progress):
        if progress.get("stage"):
            stages.append((progress["stage"], progress["done"], progress["total"]))
        original(run_id, **progress)

    monkeypatch.setattr(store, "set_progress", recording)
    run_id = queue_head_run(store, data, TINY)
    run_queue(store, say=lambda line: None)
    assert store.get(run_id).status == "done"
    names = {stage for stage, _, _ in stages}
    assert "decoding train images" in names
    assert any(name.startswith("extracting train features") for name in names)
    last = {stage: (done, total) for stage, done, total in stages}
    assert all(done == total for done, total in last.values())  # every stage's completion was recorded
    assert store.get(run_id).live.stage is None  # cleared once training started


def test_a_worker_asking_for_a_fresh_process_stops_right_after_a_finetuning_run(store, data) -> None:
    """Catches a lingering worker that keeps the memory a fine-tuning run leaves behind (0.3-0.5 GB)."""
    head = queue_head_run(store, data, TINY)
    assert run_queue(store, say=lambda line: None, fresh_after_finetune=True) is False  # head runs stay warm
    tune = queue_finetune_run(store, head, cfg.FinetuneConfig(epochs=1, lr=1e-4))
    after = queue_head_run(store, data, TINY)
    assert run_queue(store, say=lambda line: None, fresh_after_finetune=True) is True
    assert store.get(tune).status == "done" and store.get(after).status == "queued"  # left to the fresh one
    assert run_queue(store, say=lambda line: None) is False and store.get(after).status == "done"
