"""What both recipes share: the run being trained, how to fit, and the fit itself.

`fit` trains a model with the reference callbacks (early stopping on val_loss that
restores the best epoch's weights, a CSV log, TensorBoard, registry reports, the per-epoch
backup) and continues after the last backed-up epoch when the run has a backup. It trains
`core.model.frozen.training_copy(model)`: every frozen layer in inference mode, whatever
`training` flag Keras passes down, and the head's BatchNormalization synchronized over the
replicas. The model is fed either images (`image_datasets`) or the cached outputs of its
frozen part (`fit_on_cached`), drawn the same way (core.training.datasets.Sampling): each
epoch's order and flips, and every trainable Dropout's masks, depend on (seed, epoch) alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import keras
import numpy as np
import tensorflow as tf

from core.catalog.augmentations import is_flip_only
from core.catalog.experiments import cacheable as cacheable  # head, fine-tuning and experiments ask here
from core.data import DataSource
from core.model.classifier import compile_model
from core.model.frozen import training_copy
from core.progress import ProgressCallback
from core.runs.layout import RunBackup, RunPaths
from core.runs.records import RunRecord
from core.runs.store import RunStore
from core.training.callbacks import (
    EpochBackup,
    EpochLog,
    EpochSeeds,
    Printer,
    RegistryReporter,
    ResumableEarlyStopping,
    cut_short,
    restore_backup,
)
from core.training.datasets import Sampling, image_dataset
from core.training.device import distribution_strategy, replica_batch_size
from core.training.feature_cache import FeatureCache, FrozenPart, feature_dataset, head_model

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (images, labels)


@dataclass(frozen=True)
class TrainingRun:
    """The run being trained: its registry record, and where its lines and progress go."""

    store: RunStore
    record: RunRecord
    say: Printer
    progress: ProgressCallback

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def paths(self) -> RunPaths:
        return self.store.paths(self.record.id)

    @property
    def backup(self) -> RunBackup:
        return RunBackup(self.paths.backup)


@dataclass(frozen=True)
class FitPlan:
    """How one fit trains, from a head-training or fine-tuning config."""

    augment: str
    lr: float
    batch_size: int
    seed: int
    epochs: int
    patience: int  # 0: no early stopping (the best epoch's weights are still restored)
    label_smoothing: float = 0.0  # of the loss's targets (core.model.classifier.compile_model)

    def sampling(self, first_epoch: int = 0, training: bool = True) -> Sampling:
        """How the fit's training (or validation) batches are drawn under the current strategy."""
        replicas = distribution_strategy().num_replicas_in_sync  # every batch splits evenly over them
        return Sampling(
            batch_size=replica_batch_size(self.batch_size, replicas),
            seed=self.seed if training else None,
            replicas=replicas,
            first_epoch=first_epoch,
        )


@dataclass(frozen=True)
class FitData:
    """The endless datasets of one fit and their batches per epoch: (training, validation)."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    steps: tuple[int, int]


# The datasets of a fit that starts at a given (0-based) epoch: 0, or the epochs its backup holds.
Datasets = Callable[[int], FitData]


@dataclass(frozen=True)
class RunData:
    """The run's data source and its decoded (images, labels) per split."""

    source: DataSource
    arrays: Arrays

    @property
    def class_names(self) -> list[str]:
        return self.source.class_names

    @cached_property
    def fingerprint(self) -> str:
        return self.source.fingerprint()


def fit(
    run: TrainingRun,
    model: keras.Model,
    datasets: Datasets,
    plan: FitPlan,
    also: Sequence[keras.callbacks.Callback] = (),
    resumable: bool = True,
) -> tuple[str, dict]:
    """Fit with the reference callbacks (then `also`); returns (status, metrics). Best weights are restored.

    A run with a backup (see core.runs.requests.resume_run) continues after its last
    backed-up epoch, with the weights and optimizer state it had then, on the batches and
    Dropout masks the uninterrupted run would have drawn from there on. With `resumable`
    False (a sweep's member, never resumed) there is no backup and no TensorBoard log: the
    same training, about twice as fast for a small head.
    """
    run.paths.create()
    strategy = distribution_strategy()
    with strategy.scope():
        trainer = training_copy(model, strategy.num_replicas_in_sync)
        compile_model(trainer, plan.lr, plan.label_smoothing)
    resumed = restore_backup(trainer, run.backup) if resumable else 0
    if resumed:
        run.say(f"run {run.id}: resuming after epoch {resumed}")
    data = datasets(resumed)
    train_steps, val_steps = data.steps
    reporter = RegistryReporter(run.store, run.id, run.say, plan.epochs, train_steps)
    trainer.fit(
        data.train,
        validation_data=data.validation if val_steps else None,
        epochs=plan.epochs,
        initial_epoch=resumed,
        steps_per_epoch=train_steps,
        validation_steps=val_steps or None,
        callbacks=[*(_callbacks if resumable else _light_callbacks)(run, plan, reporter), *also],
        shuffle=False,  # the datasets draw their own order; Keras would only warn that it ignores this
        verbose=0,
    )
    if trainer is not model:
        model.set_weights(trainer.get_weights())
    status = "cancelled" if reporter.cancelled else "done"
    return status, history_metrics(run.store.history(run.id))  # also the epochs before a resume


def _callbacks(run: TrainingRun, plan: FitPlan, reporter: RegistryReporter) -> list[keras.callbacks.Callback]:
    """The reference callbacks, in the order their work at each epoch's end must happen.

    First the log and early stopping, which see whether a cancel cut the epoch short; then the
    registry, then the backup, so a kill between two of them at worst repeats an epoch, never
    skips one.
    """
    paths, backup = run.paths, run.backup
    return [
        EpochSeeds(plan.seed),
        EpochLog(str(paths.history_csv), append=True),
        # patience 0 turns early stopping off but still restores the best epoch's weights.
        ResumableEarlyStopping(
            backup,
            monitor="val_loss",
            patience=plan.patience or plan.epochs,
            restore_best_weights=True,
            verbose=0,
        ),
        # `tensorboard --logdir <workspace>/runs` shows every run.
        keras.callbacks.TensorBoard(log_dir=str(paths.tensorboard), write_graph=False),
        reporter,
        EpochBackup(backup),
    ]


def _light_callbacks(run: TrainingRun, plan: FitPlan, reporter: RegistryReporter) -> list:
    """The reference callbacks of a fit that is never resumed: no backup, no TensorBoard."""
    return [
        EpochSeeds(plan.seed),
        EpochLog(str(run.paths.history_csv), append=True),
        _EarlyStopping(monitor="val_loss", patience=plan.patience or plan.epochs, restore_best_weights=True),
        reporter,
    ]


class _EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' early stopping, blind to an epoch a cancel cut short (as ResumableEarlyStopping is)."""

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if not cut_short(self.model):
            super().on_epoch_end(epoch, logs)


def history_metrics(history: list[dict]) -> dict:
    """Epochs run, and the best epoch (lowest val_loss) with its loss and accuracy."""
    val_acc = [h.get("val_accuracy", float("nan")) for h in history]
    val_loss = [h.get("val_loss", float("inf")) for h in history]
    metrics = {"epochs_run": len(val_loss)}
    if val_loss:
        best = int(np.argmin(val_loss))
        metrics |= {"best_epoch": best + 1, "best_val_loss": float(val_loss[best])}
        metrics |= {"best_val_accuracy": float(val_acc[best]), "max_val_accuracy": float(max(val_acc))}
    return metrics


def image_datasets(data: RunData, plan: FitPlan) -> Datasets:
    """Training (shuffled, augmented) and validation datasets of images."""
    classes = len(data.class_names)

    def datasets(first_epoch: int) -> FitData:
        train, train_steps = image_dataset(
            *data.arrays["train"], classes, plan.sampling(first_epoch), plan.augment
        )
        validation, val_steps = image_dataset(
            *data.arrays["validation"], classes, plan.sampling(training=False)
        )
        return FitData(train, validation, (train_steps, val_steps))

    return datasets


def fit_on_cached(
    run: TrainingRun, cache: FeatureCache, part: FrozenPart, data: RunData, plan: FitPlan
) -> tuple[str, dict, keras.Model]:
    """Fit the part of the model above `part` on cached outputs of `part`.

    Returns (status, metrics, the part fitted). One view per training image, or two (it and
    its mirror image) with the flip augmentation, one of them drawn for each image and epoch.
    """

    def outputs(split: str, view: str = "original") -> np.ndarray:
        images = data.arrays[split][0]
        return cache.get(part, images, data.fingerprint, split, view, progress=run.progress)

    views = [outputs("train")] + ([outputs("train", "flipped")] if is_flip_only(plan.augment) else [])
    val_outputs = outputs("validation")
    where = "pooled backbone features" if part.at is None else "outputs of the frozen lower backbone"
    run.say(f"run {run.id}: training on cached {where}, {len(views)} view{'s' if len(views) > 1 else ''}")
    with distribution_strategy().scope():
        top = head_model(part.model, part.at)
    classes = len(data.class_names)
    train_labels, val_labels = data.arrays["train"][1], data.arrays["validation"][1]

    def datasets(first_epoch: int) -> FitData:
        train, train_steps = feature_dataset(views, train_labels, classes, plan.sampling(first_epoch))
        validation, val_steps = feature_dataset(
            [val_outputs], val_labels, classes, plan.sampling(training=False)
        )
        return FitData(train, validation, (train_steps, val_steps))

    status, metrics = fit(run, top, datasets, plan)
    return status, metrics, top
