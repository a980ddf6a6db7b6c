"""Whole runs through the worker that must agree: resumed vs uninterrupted, feature cache vs images; cancel.

A run killed after epoch k and resumed draws, from epoch k+1 on, the batches, flips and Dropout
masks the uninterrupted run drew, from the backed-up weights and optimizer state, so it ends with
the same weights. A head run on cached features ends with the weights of the same run on images.
A cancel stops the run after the batch during which it came, keeping the best finished epoch.
"""

from __future__ import annotations

import numpy as np
import pytest

from core import config as cfg
from core.model.classifier import load_model
from core.runs.requests import queue_head_run, resume_run
from core.runs.store import RunStore
from core.training import callbacks, datasets, fit
from core.training.feature_cache import head_model
from core.training.worker import run_queue

TINY = cfg.TrainConfig(
    backbone="mobilenetv3small", weights="none", image_size=32, epochs=2, batch_size=4, patience=0
)
# A resumed run repeats the uninterrupted run's float32 arithmetic from restored weights: equal.
RESUMED_ATOL = 1e-6
# The cache computes features in a compiled extractor, the image path inside the training step:
# equal to rounding (measured: 1e-18 apart after two epochs).
CACHED_ATOL = 1e-6


class Killed(Exception):
    """Stands for the training process dying."""


def _weights(store: RunStore, run_id: int) -> list[np.ndarray]:
    assert store.get(run_id).status == "done", store.get(run_id).error
    return load_model(store.paths(run_id).model).get_weights()


def _assert_same(got: list[np.ndarray], expected: list[np.ndarray], atol: float = 0.0) -> None:
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)


@pytest.fixture
def epochs_drawn(monkeypatch) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """Every training epoch drawn, as (first epoch of its dataset, epoch, rows, mirrored), in order."""
    seen = []
    original = datasets.Sampling.epoch

    def recording(self, epoch, count):
        rows, mirrored = original(self, epoch, count)
        if self.seed is not None:
            seen.append((self.first_epoch, epoch, rows, mirrored))
        return rows, mirrored

    monkeypatch.setattr(datasets.Sampling, "epoch", recording)
    return seen


@pytest.fixture
def epoch_weights(monkeypatch) -> dict[str, list[list[np.ndarray]]]:
    """The weights of the model being fitted at the end of each backed-up epoch, per backup folder."""
    seen: dict[str, list[list[np.ndarray]]] = {}
    original = callbacks.EpochBackup.on_epoch_end

    def recording(self, epoch, logs=None):
        seen.setdefault(str(self.backup.folder), []).append(self.model.get_weights())
        original(self, epoch, logs)

    monkeypatch.setattr(callbacks.EpochBackup, "on_epoch_end", recording)
    return seen


def test_a_run_killed_and_resumed_ends_like_an_uninterrupted_one(
    store, data, epochs_drawn, epoch_weights, monkeypatch
) -> None:
    """Catches a resumed run that replays epoch 1's batches, flips or Dropout masks."""
    uninterrupted = queue_head_run(store, data, TINY)
    run_queue(store, say=lambda line: None)
    drawn_then = {epoch: (rows, mirrored) for _, epoch, rows, mirrored in epochs_drawn}
    epochs_drawn.clear()

    killed = queue_head_run(store, data, TINY)
    original = store.set_progress

    def die_when_epoch_2_starts(run_id, **progress):
        if progress.get("epoch") == 2 and progress.get("step") == 0:
            raise Killed
        original(run_id, **progress)

    monkeypatch.setattr(store, "set_progress", die_when_epoch_2_starts)
    with pytest.raises(Killed):
        run_queue(store, say=lambda line: None)
    monkeypatch.setattr(store, "set_progress", original)
    assert store.get(killed).status == "failed" and resume_run(store, killed) == 1
    epochs_drawn.clear()
    run_queue(store, say=lambda line: None)

    first_epoch, epoch, rows, mirrored = epochs_drawn[0]  # the resumed fit's first draw
    assert (first_epoch, epoch) == (1, 1)  # 0-based: the run's epoch 2
    np.testing.assert_array_equal(rows, drawn_then[1][0])
    np.testing.assert_array_equal(mirrored, drawn_then[1][1])
    assert mirrored.any() and not np.array_equal(rows, drawn_then[0][0])  # epoch 2 is not a replay of 1
    # The weights after the resumed fit's first epoch, and the saved model, are the uninterrupted run's.
    then, now = list(epoch_weights.values())
    assert len(then) == len(now) == 2
    _assert_same(now[1], then[1], atol=RESUMED_ATOL)
    _assert_same(_weights(store, killed), _weights(store, uninterrupted), atol=RESUMED_ATOL)


def test_head_training_on_cached_features_ends_with_the_weights_of_training_on_images(store, data) -> None:
    """Catches the feature cache training another model than the image path (other batches or masks)."""
    config = cfg.TrainConfig(**{**cfg.to_dict(TINY), "augment": "none"})
    cached = queue_head_run(store, data, config)
    on_images = queue_head_run(
        store, data, cfg.TrainConfig(**{**cfg.to_dict(config), "feature_cache": False})
    )
    run_queue(store, say=lambda line: None)
    assert store.get(cached).metrics.get("feature_cache")
    assert not store.get(on_images).metrics.get("feature_cache")
    _assert_same(_weights(store, cached), _weights(store, on_images), atol=CACHED_ATOL)


def test_cancel_stops_within_a_batch_and_keeps_the_best_finished_epoch(store, data, monkeypatch) -> None:
    """Catches a cancel noticed only at the next progress report, or a cut-short epoch's weights kept."""
    batches: list[int] = []  # the epoch of every training batch, in order
    finished: list[tuple[float, list[np.ndarray]]] = []  # (val_loss, weights) of each finished epoch
    flagged_after: list[int] = []  # how many batches had run when the cancel was requested

    class Spy(callbacks.RegistryReporter):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_now = epoch + 1
            super().on_epoch_begin(epoch, logs)

        def on_train_batch_end(self, batch, logs=None):
            batches.append(self.epoch_now)
            if self.epoch_now == 3 and batch == 1:
                self.store.request_cancel(self.run_id)
                flagged_after.append(len(batches))
            super().on_train_batch_end(batch, logs)

        def on_epoch_end(self, epoch, logs=None):
            if not self.store.cancel_requested(self.run_id):
                finished.append((logs["val_loss"], self.model.get_weights()))
            super().on_epoch_end(epoch, logs)

    monkeypatch.setattr(fit, "RegistryReporter", Spy)
    run_id = queue_head_run(store, data, cfg.TrainConfig(**{**cfg.to_dict(TINY), "epochs": 20, "lr": 1e-2}))
    run_queue(store, say=lambda line: None)
    record = store.get(run_id)
    assert record.status == "cancelled"
    assert flagged_after and len(batches) - flagged_after[0] <= 1
    assert len(store.history(run_id)) == len(finished) == 2  # the cut-short epoch 3 counts nowhere
    best_loss, best_weights = min(finished, key=lambda item: item[0])
    assert record.metrics["best_val_loss"] == pytest.approx(best_loss)
    saved = load_model(store.paths(run_id).model)
    _assert_same(head_model(saved).get_weights(), best_weights)
