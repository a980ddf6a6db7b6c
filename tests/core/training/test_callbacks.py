"""The per-epoch backup: what it saves is exactly what a resumed fit starts from.

A resumed fit has the backed-up weights and optimizer state (Adam's step count and
moments) before its first batch, and ends where an uninterrupted fit ends; early stopping
carries its best epoch and weights over a resume.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.errors import BadInputError
from core.runs.layout import RunBackup
from core.training.callbacks import EpochBackup, EpochLog, ResumableEarlyStopping, restore_backup


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, "relu"), keras.layers.Dense(3)])
    model.compile(keras.optimizers.Adam(0.01), keras.losses.MeanSquaredError())
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)).astype("float32"), rng.normal(size=(32, 3)).astype("float32")


def _fit(model: keras.Model, epochs: int, callbacks=(), initial_epoch: int = 0) -> None:
    x, y = _data()
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        callbacks=list(callbacks),
        verbose=0,
    )


def _values(variables) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in variables]


def test_a_resumed_fit_starts_from_the_backup_and_ends_like_an_uninterrupted_one(tmp_path) -> None:
    backup = RunBackup(tmp_path / "backup")
    assert restore_backup(_model(), backup) == 0  # nothing backed up yet

    interrupted = _model()
    _fit(interrupted, 2, [EpochBackup(backup)])
    assert backup.epochs_done() == 2

    resumed = _model(seed=1)  # a new process: other initial weights, an unbuilt optimizer
    assert restore_backup(resumed, backup) == 2
    for saved, restored in zip(_values(interrupted.weights), _values(resumed.weights), strict=True):
        np.testing.assert_array_equal(saved, restored)
    optimizer_state = zip(
        _values(interrupted.optimizer.variables), _values(resumed.optimizer.variables), strict=True
    )
    for saved, restored in optimizer_state:
        np.testing.assert_array_equal(saved, restored)
    assert int(resumed.optimizer.iterations.numpy()) == 8  # 2 epochs of 4 batches

    _fit(resumed, 4, initial_epoch=2)
    uninterrupted = _model()
    _fit(uninterrupted, 4)
    for expected, got in zip(_values(uninterrupted.weights), _values(resumed.weights), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_backup_that_does_not_fit_the_model_is_refused_in_one_sentence(tmp_path) -> None:
    backup = RunBackup(tmp_path / "backup")
    _fit(_model(), 1, [EpochBackup(backup)])
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5), keras.layers.Dense(3)])
    other.compile(keras.optimizers.Adam(0.01), keras.losses.MeanSquaredError())
    with pytest.raises(BadInputError, match="no longer fits this run"):
        restore_backup(other, backup)
    backup.weights.unlink()  # the epoch is recorded but its weights are gone
    with pytest.raises(BadInputError, match="no longer fits this run"):
        restore_backup(_model(), backup)


def test_early_stopping_best_weights_survive_a_resume(tmp_path):
    """A kill loses the in-memory best weights; the resumed fit still ends with the best epoch's."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])

    def epoch_end(callback, epoch: int, val_loss: float, value: float) -> None:
        model.set_weights([np.full((2, 1), value, "float32"), np.zeros(1, "float32")])
        callback.on_epoch_end(epoch, {"val_loss": val_loss})

    backup = RunBackup(tmp_path)
    first = ResumableEarlyStopping(backup, monitor="val_loss", patience=5, restore_best_weights=True)
    first.set_model(model)
    first.on_train_begin()
    epoch_end(first, 0, 1.0, 0.5)  # the best epoch
    epoch_end(first, 1, 2.0, 9.0)
    # The process dies here; a new process resumes with a fresh callback.
    second = ResumableEarlyStopping(backup, monitor="val_loss", patience=5, restore_best_weights=True)
    second.set_model(model)
    second.on_train_begin()
    assert (second.best, second.best_epoch, second.wait) == (1.0, 0, 1)
    epoch_end(second, 2, 3.0, 7.0)
    second.on_train_end()
    np.testing.assert_array_equal(model.get_weights()[0], np.full((2, 1), 0.5))


def test_an_epoch_a_cancel_cut_short_counts_nowhere(tmp_path):
    """Catches the weights of a half-trained epoch kept as the best, or logged as a finished epoch."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    stopping = ResumableEarlyStopping(
        RunBackup(tmp_path), monitor="val_loss", patience=5, restore_best_weights=True
    )
    log = EpochLog(str(tmp_path / "history.csv"))
    for callback in (log, stopping):
        callback.set_model(model)
        callback.on_train_begin()

    def epoch_end(epoch: int, val_loss: float, value: float) -> None:
        model.set_weights([np.full((2, 1), value, "float32"), np.zeros(1, "float32")])
        for callback in (log, stopping):  # the order fit() gives them
            callback.on_epoch_end(epoch, {"val_loss": val_loss})

    model.stop_training = False
    epoch_end(0, 2.0, 0.5)  # a finished epoch
    model.stop_training = True  # a cancel during the next one
    epoch_end(1, 1.0, 9.0)  # its val_loss is lower, but it did not finish
    stopping.on_train_end()
    log.on_train_end()
    np.testing.assert_array_equal(model.get_weights()[0], np.full((2, 1), 0.5))
    assert (stopping.best, stopping.best_epoch) == (2.0, 0)
    assert (tmp_path / "history.csv").read_text().splitlines() == ["epoch,val_loss", "0,2.0"]
