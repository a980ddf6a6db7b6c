"""Head training and fine-tuning, run by whichever process claims a queued run.

A run is first queued in the registry with its full config. Then a worker
process (the `train`/`finetune` command itself, or `python -m core worker` that
the dashboard spawns) claims it, trains, and reports every epoch and batch back
to the registry, which is all the dashboard reads. Only one run executes at a
time: claiming is atomic in the registry.

Every fit backs itself up at the end of each epoch in `<run dir>/backup/`: the
Keras `BackupAndRestore` state (weights, optimizer, epoch) and the early-stopping
state (best val_loss so far, its weights, patience used). If the process dies
(kill -9, a crash, a full disk), `resume_run` puts the failed run back in the queue
and the next fit continues at the epoch after the last backed-up one; the registry
keeps the epochs already logged and adds the new ones. Because the best weights
are on disk too, a resumed run ends with the best epoch's weights over the whole
run, exactly as an uninterrupted one would. The backup is deleted once a run ends
normally (done or cancelled).
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from core import config as cfg
from core.catalog.augmentations import is_flip_only, parse_spec
from core.catalog.backbones import get_backbone
from core.errors import BadInputError, PetLabError
from core.inference.evaluate import classification_report, evaluate_model, summary_metrics
from core.model.augmentation import build_augmentation
from core.model.classifier import backbone_of, compile_model, frozen_boundary, load_model, unfreeze_model
from core.progress import ProgressCallback, no_progress
from core.runs.requests import backup_path, resumable_epoch
from core.runs.store import RunRecord, RunStore
from core.training.datasets import load_split_arrays, make_dataset
from core.training.device import configure_device, distribution_strategy, even_rows, replica_batch_size
from core.training.feature_cache import (
    FeatureCache,
    WarmBackbone,
    feature_dataset,
    head_model,
    weights_digest,
)
from core.workspace import atomic_path, atomic_write_json, read_json

Printer = Callable[[str], None]
PROGRESS_INTERVAL_S = 0.5
_warm_backbone = WarmBackbone()  # kept between the head runs of one process


class RegistryReporter(keras.callbacks.Callback):
    """Writes epochs and in-epoch progress to the registry; stops at the next batch on cancel."""

    def __init__(self, store: RunStore, run_id: int, epochs: int, steps: int, say: Printer) -> None:
        super().__init__()
        self.store, self.run_id, self.epochs, self.steps, self.say = store, run_id, epochs, steps, say
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
        now = time.monotonic()
        if now - self._last_report < PROGRESS_INTERVAL_S:
            return
        self._last_report = now
        self.store.set_progress(
            self.run_id, epoch=self._epoch, epochs=self.epochs, step=batch + 1, steps=self.steps
        )
        if self.store.cancel_requested(self.run_id):
            self.cancelled = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        seconds = time.monotonic() - self._epoch_start
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        self.store.log_epoch(self.run_id, epoch + 1, metrics, seconds)
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "learning_rate")
        self.say(f"epoch {epoch + 1}/{self.epochs}: {shown} ({seconds:.1f} s)")


class _AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose files are replaced atomically, so a kill mid-save leaves the last good one."""

    def _save_model(self) -> None:
        os.makedirs(self.backup_dir, exist_ok=True)
        partial = os.path.join(self.backup_dir, "partial.weights.h5")  # Keras insists on this suffix
        self.model.save_weights(partial, overwrite=True)
        os.replace(partial, self._weights_path)
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        atomic_write_json(self._training_metadata_path, metadata)

    def on_train_begin(self, logs=None) -> None:
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError) as exc:
            raise BadInputError(
                f"The backup in {self.backup_dir} no longer fits this run ({type(exc).__name__}); "
                "start a new run instead of resuming this one."
            ) from None


class _ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that keeps its state and best weights on disk, so a resumed fit carries on."""

    def __init__(self, state_dir: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state_path, self.weights_path = state_dir / "early_stopping.json", state_dir / "best.npz"

    def on_train_begin(self, logs=None) -> None:
        super().on_train_begin(logs)
        if not self.state_path.is_file():
            return
        state = read_json(self.state_path)
        self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]
        if self.restore_best_weights and self.weights_path.is_file():
            with np.load(self.weights_path) as saved:
                self.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        super().on_epoch_end(epoch, logs)
        if self.best is None:
            return
        if self.restore_best_weights and self.best_weights is not None and self.best_epoch == epoch:
            with atomic_path(self.weights_path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, *self.best_weights)
        state = {"wait": self.wait, "best": float(self.best), "best_epoch": self.best_epoch}
        atomic_write_json(self.state_path, state)


def run_queue(
    store: RunStore,
    until: int | None = None,
    say: Printer = print,
    progress: ProgressCallback = no_progress,
    poll_s: float = 1.0,
    linger_s: float = 0.0,
) -> None:
    """Execute queued runs one at a time; return when `until` has ended (or the queue is empty).

    Without `until`, an empty queue is watched for `linger_s` more seconds, so a run queued
    soon after starts at once in this warm process (backbone built, TensorFlow loaded).
    A run that fails is recorded as failed and the queue moves on; only the failure of
    `until` itself is raised.
    """
    announced = False
    idle_since: float | None = None
    while True:
        if until is not None and store.get(until).status not in ("queued", "running"):
            return
        record = store.claim_next_queued()
        if record is None:
            if until is None:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= linger_s or not store.db_path.is_file():
                    return  # nothing came, or the workspace is gone
                time.sleep(poll_s)
                continue
            active = store.active()
            if active is not None and not announced:
                say(f"waiting: run {active.id} is training; run {until} is queued behind it")
                announced = True
            time.sleep(poll_s)
            continue
        idle_since = None
        try:
            execute_run(store, record, say=say, progress=progress)
        except PetLabError as exc:
            if record.id == until:
                raise
            say(f"run {record.id} failed: {exc}")


def execute_run(store: RunStore, record: RunRecord, say: Printer = print, progress=no_progress) -> None:
    """Train one claimed run to its end, recording done / failed / cancelled.

    A full disk or an unwritable workspace fails the run with one clear sentence
    (a PetLabError); its backup stays, so it can be resumed once there is space.
    """
    progress = _reporting_progress(store, record.id, progress)
    try:
        configure_device()
        if record.kind == "head":
            status, metrics = _train_head(store, record, say, progress)
        else:
            status, metrics = _finetune(store, record, say, progress)
        store.finish(record.id, status, metrics)
        shutil.rmtree(backup_path(store, record.id), ignore_errors=True)
        say(f"run {record.id} {status}")
    except PetLabError as exc:
        store.finish(record.id, "failed", error=str(exc))
        raise
    except OSError as exc:
        error = _file_error(store, exc)
        store.finish(record.id, "failed", error=str(error))
        raise error from None
    except KeyboardInterrupt:
        store.finish(record.id, "failed", error="Training was interrupted (Ctrl-C); resume it to continue.")
        raise
    except Exception as exc:  # a bug or a resource problem: record it, then let it surface
        store.finish(record.id, "failed", error=f"Training failed: {type(exc).__name__}: {exc}"[:500])
        raise


def _file_error(store: RunStore, exc: OSError) -> PetLabError:
    """One sentence for a file error while training: above all a full disk or a read-only workspace."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
        reason = "the disk is full"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "it is not writable"
    else:
        where = f" ({exc.filename})" if exc.filename else ""
        return PetLabError(
            f"Training stopped on a file error: {exc.strerror or exc}{where}; check the workspace "
            f"{store.workspace} and the data, then resume the run."
        )
    return PetLabError(
        f"Could not write the run's files in {store.workspace} ({reason}); free space or fix the "
        "workspace, then resume the run."
    )


def _reporting_progress(store: RunStore, run_id: int, also: ProgressCallback) -> ProgressCallback:
    """A progress callback that also records preparation stages in the registry, for the dashboard."""
    last = [0.0]

    def report(stage: str, done: int, total: int | None) -> None:
        also(stage, done, total)
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL_S or (total is not None and done >= total):
            last[0] = now
            store.set_progress(run_id, stage=stage, done=done, total=total)

    return report


def _fit(store, record, fit_model, train_ds, val_ds, epochs: int, patience: int, say: Printer, steps=None):
    """Fit with the reference callbacks; returns (status, metrics). Best weights are restored.

    `steps`: (training, validation) batches per epoch when the datasets repeat endlessly;
    None for finite datasets. A run with a backup (see resume_run) continues after its last
    backed-up epoch.
    """
    train_steps, val_steps = steps or (int(train_ds.cardinality().numpy()), None)
    run_dir, backup = store.run_dir(record.id), backup_path(store, record.id)
    reporter = RegistryReporter(store, record.id, epochs, train_steps, say)
    resumed = resumable_epoch(store, record.id)
    if resumed:
        say(f"run {record.id}: resuming after epoch {resumed}")
    # Order matters at each epoch's end: early-stopping state, then the registry, then the
    # backup, so a kill between two of them at worst repeats an epoch, never skips one.
    callbacks = [
        # patience 0 turns early stopping off but still restores the best epoch's weights.
        _ResumableEarlyStopping(
            backup, monitor="val_loss", patience=patience or epochs, restore_best_weights=True, verbose=0
        ),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        # `tensorboard --logdir <workspace>/runs` shows every run.
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False),
        reporter,
        _AtomicBackupAndRestore(str(backup / "keras"), delete_checkpoint=False),
    ]
    fit_model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        steps_per_epoch=train_steps if steps else None,
        validation_steps=val_steps,
        callbacks=callbacks,
        shuffle=False,  # the datasets shuffle themselves; Keras would only warn that it ignores this
        verbose=0,
    )
    history = store.history(record.id)  # every epoch of the run, also those before a resume
    val_acc = [h.get("val_accuracy", float("nan")) for h in history]
    val_loss = [h.get("val_loss", float("inf")) for h in history]
    metrics = {"epochs_run": len(val_loss)}
    if val_loss:
        best = int(np.argmin(val_loss))
        metrics |= {"best_epoch": best + 1, "best_val_loss": float(val_loss[best])}
        metrics |= {"best_val_accuracy": float(val_acc[best]), "max_val_accuracy": float(max(val_acc))}
    return ("cancelled" if reporter.cancelled else "done"), metrics


def _image_datasets(arrays, num_classes: int, batch_size: int, augment: str, seed: int):
    """Training (shuffled, augmented) and validation datasets of images."""
    replicas = distribution_strategy().num_replicas_in_sync  # every batch splits evenly over them
    batch_size = replica_batch_size(batch_size, replicas)
    train_images, train_labels = even_rows(arrays["train"], replicas)
    val_images, val_labels = even_rows(arrays["validation"], replicas)
    augmentation = build_augmentation(augment, seed=seed)
    train_ds = make_dataset(
        train_images,
        train_labels,
        num_classes,
        batch_size,
        training=True,
        augmentation=augmentation,
        seed=seed,
    )
    return train_ds, make_dataset(val_images, val_labels, num_classes, batch_size)


def _save_artifacts(store: RunStore, record: RunRecord, model: keras.Model, class_names: list[str]) -> None:
    run_dir = store.run_dir(record.id)
    tmp = run_dir / ".model.tmp.keras"
    model.save(tmp)
    os.replace(tmp, run_dir / "model.keras")
    atomic_write_json(run_dir / "class_names.json", class_names)
    atomic_write_json(
        run_dir / "config.json", {"kind": record.kind, "parent": record.parent, **record.config}
    )
    atomic_write_json(run_dir / "history.json", store.history(record.id))


def uses_feature_cache(train: cfg.TrainConfig) -> bool:
    """Head training can run on cached features when augmentation is none or the reference flip."""
    return train.feature_cache and cacheable(train.augment)


def cacheable(augment: str) -> bool:
    """Whether every view an augmentation can produce can be cached: none, or the reference flip."""
    return is_flip_only(augment) or not parse_spec(augment)


def cached_boundary(model: keras.Model, finetune: cfg.FinetuneConfig, augment: str) -> int | None:
    """The backbone operation below which a fine-tuning run caches the frozen part's outputs, or None.

    Only where it pays: flip-only (or no) augmentation, layers with weights frozen below the
    trainable ones, and at most as many values per image as the image itself has (an early
    boundary of a mostly unfrozen backbone would cache more than it saves).
    """
    if not (finetune.feature_cache and cacheable(augment)):
        return None
    at = frozen_boundary(model)
    if at is None:
        return None
    values = math.prod(backbone_of(model).operations[at].output.shape[1:])
    return at if values <= math.prod(model.input_shape[1:]) else None


def _train_head(store, record, say, progress):
    data = cfg.from_dict(cfg.DataConfig, record.config["data"])
    train = cfg.from_dict(cfg.TrainConfig, record.config["train"])
    keras.utils.set_random_seed(train.seed)
    source, arrays = load_split_arrays(data, store.workspace, train.image_size, progress)
    class_names = source.class_names
    with distribution_strategy().scope():
        model, digest = _warm_backbone.model(
            get_backbone(train.backbone),
            len(class_names),
            train.image_size,
            train.weights,
            train.dropout,
            train.seed,
        )
        compile_model(model, train.lr)
    say(f"run {record.id}: head training {train.backbone} on {data.source}, {len(class_names)} classes")
    if not uses_feature_cache(train):
        train_ds, val_ds = _image_datasets(
            arrays, len(class_names), train.batch_size, train.augment, train.seed
        )
        status, metrics = _fit(store, record, model, train_ds, val_ds, train.epochs, train.patience, say)
        _save_artifacts(store, record, model, class_names)
        report = evaluate_model(model, *arrays["test"], class_names)
        return status, metrics | _write_evaluation(store, record, report)

    plan = _FitPlan(train.augment, train.lr, train.batch_size, train.seed, train.epochs, train.patience)
    cache = FeatureCache(store.workspace)  # one instance: the backbone is traced once for every split
    status, metrics, head = _fit_on_cached(
        store, record, model, cache, digest, source, arrays, plan, say, progress
    )
    _save_artifacts(store, record, model, class_names)  # the full model: backbone + the head just trained
    test_features = cache.get(
        model, arrays["test"][0], source.fingerprint(), "test", "original", digest, progress=progress
    )
    store.set_progress(record.id, stage=None)
    probabilities = np.asarray(head.predict(test_features, batch_size=256, verbose=0))
    report = classification_report(probabilities, arrays["test"][1], class_names)
    return status, metrics | {"feature_cache": True} | _write_evaluation(store, record, report)


@dataclass(frozen=True)
class _FitPlan:
    """What a fit on cached outputs needs to know of a head or fine-tuning config."""

    augment: str
    lr: float
    batch_size: int
    seed: int
    epochs: int
    patience: int


def _fit_on_cached(
    store, record, model, cache: FeatureCache, digest, source, arrays, plan: _FitPlan, say, progress, at=None
):
    """Fit the part of `model` above backbone operation `at` (the head when None) on cached outputs
    of the frozen part below it: one view per training image, or two (it and its mirror image)
    with the flip augmentation, picked at random each epoch. Returns (status, metrics, that part)."""
    fingerprint = source.fingerprint()

    def outputs(split: str, view: str = "original"):
        return cache.get(model, arrays[split][0], fingerprint, split, view, digest, progress=progress, at=at)

    views = [outputs("train")] + ([outputs("train", "flipped")] if is_flip_only(plan.augment) else [])
    val_outputs = outputs("validation")
    where = "pooled backbone features" if at is None else "outputs of the frozen lower backbone"
    say(f"run {record.id}: training on cached {where}, {len(views)} view{'s' if len(views) > 1 else ''}")
    strategy = distribution_strategy()
    with strategy.scope():
        top = head_model(model, at)
        compile_model(top, plan.lr)
    n = len(source.class_names)
    replicas = strategy.num_replicas_in_sync  # every batch splits evenly over them
    batch_size = replica_batch_size(plan.batch_size, replicas)
    *views, train_labels = even_rows([*views, arrays["train"][1]], replicas)
    val_outputs, val_labels = even_rows([val_outputs, arrays["validation"][1]], replicas)
    train_ds, train_steps = feature_dataset(views, train_labels, n, batch_size, training=True, seed=plan.seed)
    val_ds, val_steps = feature_dataset([val_outputs], val_labels, n, batch_size, training=False, seed=0)
    steps = (train_steps, val_steps)
    status, metrics = _fit(store, record, top, train_ds, val_ds, plan.epochs, plan.patience, say, steps)
    return status, metrics, top


def _finetune(store, record, say, progress):
    data = cfg.from_dict(cfg.DataConfig, record.config["data"])
    train = cfg.from_dict(cfg.TrainConfig, record.config["train"])
    finetune = cfg.from_dict(cfg.FinetuneConfig, record.config["finetune"])
    parent_problem = store.get(record.parent).broken  # deleted or damaged since it was queued
    if parent_problem:
        raise BadInputError(parent_problem)
    parent_dir = store.runs_path / str(record.parent)
    keras.utils.set_random_seed(finetune.seed)
    source, arrays = load_split_arrays(data, store.workspace, train.image_size, progress)
    class_names = read_json(parent_dir / "class_names.json")
    if class_names != source.class_names:
        raise BadInputError(
            f"The data of run {record.parent} has changed since it was trained; train a new head run."
        )
    with distribution_strategy().scope():
        try:
            model = load_model(parent_dir / "model.keras")
        except PetLabError:
            raise
        except Exception as exc:  # damaged in a way the cheap check cannot see
            raise BadInputError(
                f"The model of run {record.parent} cannot be loaded ({type(exc).__name__}); "
                "train a new head run."
            ) from None
        opened = unfreeze_model(model, finetune.unfreeze)
        compile_model(model, finetune.lr)
    say(f"run {record.id}: fine-tuning run {record.parent} with {opened} backbone layers unfrozen")
    batch_size = finetune.batch_size or train.batch_size
    at = cached_boundary(model, finetune, train.augment)
    if at is None:
        train_ds, val_ds = _image_datasets(arrays, len(class_names), batch_size, train.augment, finetune.seed)
        status, metrics = _fit(
            store, record, model, train_ds, val_ds, finetune.epochs, finetune.patience, say
        )
    else:  # the frozen lower backbone runs once per image and view, not every epoch
        plan = _FitPlan(
            train.augment, finetune.lr, batch_size, finetune.seed, finetune.epochs, finetune.patience
        )
        digest = weights_digest(model)
        cache = FeatureCache(store.workspace)
        status, metrics, _ = _fit_on_cached(
            store, record, model, cache, digest, source, arrays, plan, say, progress, at
        )
        metrics |= {"cached_below": backbone_of(model).operations[at].name}
    _save_artifacts(store, record, model, class_names)
    report = evaluate_model(model, *arrays["test"], class_names)
    return status, metrics | {"unfrozen_layers": opened} | _write_evaluation(store, record, report)


def _write_evaluation(store: RunStore, record: RunRecord, report: dict) -> dict:
    atomic_write_json(store.run_dir(record.id) / "evaluation.json", report)
    return summary_metrics(report)
