"""What both recipes share: the run being trained, how to fit, and the fit itself.

`fit` trains a compiled model with the reference callbacks (early stopping on val_loss
that restores the best epoch's weights, a CSV log, TensorBoard, registry reports, the
per-epoch backup) and continues after the last backed-up epoch when the run has a backup.
The model is fed either images (`image_datasets`) or the cached outputs of its frozen part
(`fit_on_cached`): one view per training image, or two (it and its mirror image) with the
flip augmentation, picked at random each epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import keras
import numpy as np
import tensorflow as tf

from core.catalog.augmentations import is_flip_only, parse_spec
from core.data import DataSource
from core.model.augmentation import build_augmentation
from core.model.classifier import compile_model
from core.progress import ProgressCallback
from core.runs.layout import RunPaths
from core.runs.records import RunRecord
from core.runs.requests import RunBackup
from core.runs.store import RunStore
from core.training.callbacks import (
    EpochBackup,
    Printer,
    RegistryReporter,
    ResumableEarlyStopping,
    restore_backup,
)
from core.training.datasets import make_dataset
from core.training.device import distribution_strategy, even_rows, replica_batch_size
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


@dataclass(frozen=True)
class FitData:
    """The datasets of one fit; `steps`: (training, validation) batches per epoch if they repeat endlessly."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    steps: tuple[int, int] | None = None


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


def cacheable(augment: str) -> bool:
    """Whether every view an augmentation can produce can be cached: none, or the reference flip."""
    return is_flip_only(augment) or not parse_spec(augment)


def fit(run: TrainingRun, model: keras.Model, data: FitData, plan: FitPlan) -> tuple[str, dict]:
    """Fit with the reference callbacks; returns (status, metrics). Best weights are restored.

    A run with a backup (see core.runs.requests.resume_run) continues after its last
    backed-up epoch, with the weights and optimizer state it had then.
    """
    paths, backup = run.paths, run.backup
    paths.create()
    train_steps, val_steps = data.steps or (int(data.train.cardinality().numpy()), None)
    reporter = RegistryReporter(run.store, run.id, run.say, plan.epochs, train_steps)
    resumed = restore_backup(model, backup)
    if resumed:
        run.say(f"run {run.id}: resuming after epoch {resumed}")
    # Order matters at each epoch's end: early-stopping state, then the registry, then the
    # backup, so a kill between two of them at worst repeats an epoch, never skips one.
    callbacks = [
        # patience 0 turns early stopping off but still restores the best epoch's weights.
        ResumableEarlyStopping(
            backup,
            monitor="val_loss",
            patience=plan.patience or plan.epochs,
            restore_best_weights=True,
            verbose=0,
        ),
        keras.callbacks.CSVLogger(str(paths.history_csv), append=True),
        # `tensorboard --logdir <workspace>/runs` shows every run.
        keras.callbacks.TensorBoard(log_dir=str(paths.tensorboard), write_graph=False),
        reporter,
        EpochBackup(backup),
    ]
    model.fit(
        data.train,
        validation_data=data.validation,
        epochs=plan.epochs,
        initial_epoch=resumed,
        steps_per_epoch=train_steps if data.steps else None,
        validation_steps=val_steps,
        callbacks=callbacks,
        shuffle=False,  # the datasets shuffle themselves; Keras would only warn that it ignores this
        verbose=0,
    )
    status = "cancelled" if reporter.cancelled else "done"
    return status, history_metrics(run.store.history(run.id))  # also the epochs before a resume


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


def image_datasets(data: RunData, plan: FitPlan) -> FitData:
    """Training (shuffled, augmented) and validation datasets of images."""
    replicas = distribution_strategy().num_replicas_in_sync  # every batch splits evenly over them
    batch_size = replica_batch_size(plan.batch_size, replicas)
    train_images, train_labels = even_rows(data.arrays["train"], replicas)
    val_images, val_labels = even_rows(data.arrays["validation"], replicas)
    classes = len(data.class_names)
    train = make_dataset(
        train_images,
        train_labels,
        classes,
        batch_size,
        training=True,
        augmentation=build_augmentation(plan.augment, seed=plan.seed),
        seed=plan.seed,
    )
    return FitData(train, make_dataset(val_images, val_labels, classes, batch_size))


def fit_on_cached(
    run: TrainingRun, cache: FeatureCache, part: FrozenPart, data: RunData, plan: FitPlan
) -> tuple[str, dict, keras.Model]:
    """Fit the part of the model above `part` on cached outputs of `part`.

    Returns (status, metrics, the part fitted). One view per training image, or two (it and
    its mirror image) with the flip augmentation, picked at random each epoch.
    """

    def outputs(split: str, view: str = "original") -> np.ndarray:
        images = data.arrays[split][0]
        return cache.get(part, images, data.fingerprint, split, view, progress=run.progress)

    views = [outputs("train")] + ([outputs("train", "flipped")] if is_flip_only(plan.augment) else [])
    val_outputs = outputs("validation")
    where = "pooled backbone features" if part.at is None else "outputs of the frozen lower backbone"
    run.say(f"run {run.id}: training on cached {where}, {len(views)} view{'s' if len(views) > 1 else ''}")
    strategy = distribution_strategy()
    with strategy.scope():
        top = head_model(part.model, part.at)
        compile_model(top, plan.lr)
    classes = len(data.class_names)
    replicas = strategy.num_replicas_in_sync  # every batch splits evenly over them
    batch_size = replica_batch_size(plan.batch_size, replicas)
    *views, train_labels = even_rows([*views, data.arrays["train"][1]], replicas)
    val_outputs, val_labels = even_rows([val_outputs, data.arrays["validation"][1]], replicas)
    train, train_steps = feature_dataset(
        views, train_labels, classes, batch_size, training=True, seed=plan.seed
    )
    validation, val_steps = feature_dataset(
        [val_outputs], val_labels, classes, batch_size, training=False, seed=0
    )
    status, metrics = fit(run, top, FitData(train, validation, (train_steps, val_steps)), plan)
    return status, metrics, top
