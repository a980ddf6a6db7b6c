"""The Keras callbacks of every fit: registry reports, the per-epoch backup, resumable early stopping.

A cancel stops a fit after the batch during which it was requested; that epoch, cut short,
counts nowhere (registry, history.csv, early stopping), so the run keeps the best weights
of its finished epochs. `EpochSeeds` restarts every trainable Dropout's random stream from
(seed, epoch) at each epoch's start, so a resumed epoch drops what the uninterrupted one did.

A fit backs itself up at the end of each epoch (core.runs.layout.RunBackup): `EpochBackup`
writes the weights (with the optimizer's state) and the epoch number, `ResumableEarlyStopping`
its best val_loss so far, that epoch's weights and the patience used. A resumed fit loads the
backup with `restore_backup` before `fit()` and passes the epoch it returns as `initial_epoch`,
so it continues exactly where the last finished epoch left off. Every file is replaced
atomically: a kill mid-save leaves the previous good one.

Only Keras' public callback API is used (`keras.callbacks.Callback` and the documented
attributes of `EarlyStopping`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import keras
import numpy as np

from core.errors import BadInputError
from core.model.frozen import reseed_dropout
from core.runs.layout import RunBackup
from core.runs.store import RunStore
from core.training.device import distribution_strategy
from core.workspace import atomic_path, atomic_write_json, read_json

Printer = Callable[[str], None]
PROGRESS_INTERVAL_S = 0.5  # the shortest time between two progress writes to the registry


def cut_short(model: keras.Model) -> bool:
    """At an epoch's end, whether a cancel stopped it before its last batch.

    Only valid in a callback that runs before early stopping at the epoch's end: early
    stopping sets `stop_training` there too, after a finished epoch. (A model fit() never
    ran has no `stop_training` yet.)
    """
    return bool(getattr(model, "stop_training", False))


class EpochSeeds(keras.callbacks.Callback):
    """At each epoch's start, every trainable Dropout's random stream restarts from (seed, epoch)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        reseed_dropout(self.model, self.seed, epoch)


class EpochLog(keras.callbacks.CSVLogger):
    """history.csv: one row per finished epoch (an epoch a cancel cut short is left out)."""

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if not cut_short(self.model):
            super().on_epoch_end(epoch, logs)


class RegistryReporter(keras.callbacks.Callback):
    """Writes epochs and in-epoch progress to the registry; a cancel stops the fit after the current batch."""

    def __init__(self, store: RunStore, run_id: int, say: Printer, epochs: int, steps: int) -> None:
        super().__init__()
        self.store, self.run_id, self.say = store, run_id, say
        self.epochs, self.steps = epochs, steps
        self.cancelled = False
        self._epoch = 0
        self._epoch_start = 0.0
        self._last_report = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch, self._epoch_start = epoch + 1, time.monotonic()
        self.store.set_progress(
            self.run_id, epoch=self._epoch, epochs=self.epochs, step=0, steps=self.steps, stage=None
        )

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if self.store.cancel_requested(self.run_id):  # every batch: a registry read costs microseconds
            self.cancelled = True
            self.model.stop_training = True
        now = time.monotonic()
        if now - self._last_report < PROGRESS_INTERVAL_S:
            return
        self._last_report = now
        self.store.set_progress(
            self.run_id, epoch=self._epoch, epochs=self.epochs, step=batch + 1, steps=self.steps
        )

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.cancelled:
            return  # cut short: not a finished epoch
        seconds = time.monotonic() - self._epoch_start
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        self.store.log_epoch(self.run_id, epoch + 1, metrics, seconds)
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "learning_rate")
        self.say(f"epoch {epoch + 1}/{self.epochs}: {shown} ({seconds:.1f} s)")


class EpochBackup(keras.callbacks.Callback):
    """After each epoch: the weights (with the optimizer's state), then the epoch number."""

    def __init__(self, backup: RunBackup) -> None:
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        with atomic_path(self.backup.weights) as tmp:
            self.model.save_weights(tmp)
        atomic_write_json(self.backup.epoch_file, {"epoch": epoch + 1})


def restore_backup(model: keras.Model, backup: RunBackup) -> int:
    """Load the backup's weights and optimizer state into `model`; returns the epochs it holds.

    0 (and nothing loaded) when there is no backup. BadInputError when the backup does not
    fit the model (its files were damaged, or the run's model has changed).
    """
    epochs = backup.epochs_done()
    if not epochs:
        return 0
    try:
        if model.optimizer is not None and not model.optimizer.built:
            with distribution_strategy().scope():  # its variables live where the model's do
                model.optimizer.build(model.trainable_variables)
        model.load_weights(backup.weights)
    except (OSError, ValueError) as exc:
        raise BadInputError(
            f"The backup in {backup.folder} no longer fits this run ({type(exc).__name__}); "
            "start a new run instead of resuming this one."
        ) from None
    return epochs


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that keeps its state and best weights on disk, so a resumed fit carries on."""

    def __init__(self, backup: RunBackup, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backup = backup

    def on_train_begin(self, logs=None) -> None:
        super().on_train_begin(logs)
        if not self.backup.early_stopping.is_file():
            return
        state = read_json(self.backup.early_stopping)
        self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]
        if self.restore_best_weights and self.backup.best_weights.is_file():
            with np.load(self.backup.best_weights) as saved:
                self.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if cut_short(self.model):
            return  # neither its val_loss nor its weights are those of a finished epoch
        super().on_epoch_end(epoch, logs)
        if self.best is None:
            return
        if self.restore_best_weights and self.best_weights is not None and self.best_epoch == epoch:
            with atomic_path(self.backup.best_weights) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, *self.best_weights)
        state = {"wait": self.wait, "best": float(self.best), "best_epoch": self.best_epoch}
        atomic_write_json(self.backup.early_stopping, state)
