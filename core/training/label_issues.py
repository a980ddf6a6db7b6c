"""The label-issue job: out-of-fold predictions for every training and validation image, ranked.

A finished run's pooled backbone features of train and validation (core.training.run_features,
through the feature cache) are split into k stratified folds; for each fold a new head of the
run's own architecture (its head layers, freshly initialized) trains on the other folds and
predicts the fold it never saw. Every image thus gets probabilities from a head that did not
learn its label, and cleanlab ranks the images by how strongly those disagree with the given
label (core.curation.ranking). Each head trains as the run's head did (its learning rate, batch
size, label smoothing; batches drawn by core.training.datasets.Sampling) with the reference early
stopping on val_loss over an inner validation part of its folds (a tenth, stratified), and at most
the run's epochs: a few seconds per fold on pooled features.

The heads are fitted with Keras' fit directly, not core.training.fit.fit: that one fits a run
(its epochs in the registry, history, backups), and a fold is not a run. The ranking always uses
the source's own labels and all of its training and validation images, whatever curation the
run trained on: the marks (core.curation.marks) are shown beside it, never mixed into it.

`execute_label_issues` is the worker's job "label_issues" (queued by
core.runs.requests.queue_analysis, parent: the run studied): progress per fold, a cancel honoured
between folds, the probabilities in RunPaths.out_of_fold, the ranking in RunPaths.label_issues,
and counts plus the data's fingerprint (which ties the person's marks to this data) in its metrics.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import keras
import numpy as np
import pandas as pd

from core.curation import DEFAULT_FOLDS
from core.curation.marks import CURATED_SPLITS
from core.curation.ranking import rank_label_issues, ranking_frame, write_ranking
from core.data.splits import stratified_split
from core.errors import BadInputError
from core.model.classifier import compile_model
from core.model.frozen import training_copy
from core.progress import ProgressCallback, no_progress
from core.runs.records import LABEL_ISSUES, RunRecord
from core.runs.store import RunStore
from core.training.callbacks import Printer
from core.training.device import distribution_strategy
from core.training.feature_cache import feature_dataset, head_model
from core.training.fit import FitPlan
from core.training.head import head_plan
from core.training.run_features import RunFeatures, load_run_features
from core.workspace import atomic_path

STAGE = "training a head per fold"
INNER_VALIDATION = 0.1  # the part of a fold's training images its early stopping watches


def image_table(features: RunFeatures) -> pd.DataFrame:
    """split, index, file and given label of every training and validation image, in feature order."""
    source = features.data.source
    parts = [
        pd.DataFrame(
            {
                "split": split,
                "index": np.arange(len(features.labels(split))),
                "file": [source.item_name(split, i) for i in range(len(features.labels(split)))],
                "label": features.labels(split),
            }
        )
        for split in CURATED_SPLITS
    ]
    return pd.concat(parts, ignore_index=True)


def fold_count(labels: np.ndarray, folds: int) -> int:
    """`folds`, fewer when no class has that many images; BadInputError when too few to cross-validate."""
    largest = int(np.bincount(labels).max()) if len(labels) else 0
    if folds < 2 or largest < 2:
        raise BadInputError(
            "Finding label issues needs at least 2 folds and a class with 2 or more training images; "
            "use more images."
        )
    return min(folds, largest)


def out_of_fold(
    template: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    plan: FitPlan,
    folds: int,
    hooks: tuple[ProgressCallback, Callable[[], bool]] = (no_progress, lambda: False),
) -> np.ndarray | None:
    """Probabilities [N, classes] of every row from a head fitted on the other folds; None if stopped.

    `template` is a head (a model on pooled features) whose architecture each fold's head copies;
    `hooks`: (progress, should_stop), asked before each fold.
    """
    from sklearn.model_selection import StratifiedKFold

    progress, should_stop = hooks
    classes = int(template.output.shape[-1])
    probabilities = np.zeros((len(y), classes), np.float32)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=plan.seed)
    with warnings.catch_warnings():  # a class with fewer images than folds is fine: it is in fewer folds
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        parts = list(splitter.split(x, y))
    progress(STAGE, 0, folds)
    for fold, (rest, held_out) in enumerate(parts):
        if should_stop():
            return None
        head = fit_fold_head(template, x, y, rest, plan, plan.seed + fold)
        # Called, not predict(): a new head's predict function would be traced again each fold.
        probabilities[held_out] = keras.ops.convert_to_numpy(head(x[held_out], training=False))
        progress(STAGE, fold + 1, folds)
    return probabilities


def fit_fold_head(
    template: keras.Model, x: np.ndarray, y: np.ndarray, rows: np.ndarray, plan: FitPlan, seed: int
) -> keras.Model:
    """A new head like `template`, fitted on `rows` with early stopping on a stratified tenth of them."""
    inner = stratified_split(y[rows], INNER_VALIDATION, 0.0, seed)
    fit_rows, watch_rows = rows[inner["train"]], rows[inner["validation"]]
    classes = int(template.output.shape[-1])
    strategy = distribution_strategy()
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        trainer = training_copy(keras.models.clone_model(template), strategy.num_replicas_in_sync)
        compile_model(trainer, plan.lr, plan.label_smoothing)
    fitting = {"callbacks": [], "validation_data": None, "validation_steps": None}
    if len(watch_rows):
        watched, watch_steps = feature_dataset(
            [x[watch_rows]], y[watch_rows], classes, plan.sampling(training=False)
        )
        stopping = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=plan.patience or plan.epochs, restore_best_weights=True
        )
        fitting = {"callbacks": [stopping], "validation_data": watched, "validation_steps": watch_steps}
    batches, steps = feature_dataset([x[fit_rows]], y[fit_rows], classes, plan.sampling())
    # The batches draw their own order (Sampling): shuffle=False, or Keras warns that it ignores it.
    trainer.fit(batches, epochs=plan.epochs, steps_per_epoch=steps, shuffle=False, verbose=0, **fitting)
    return trainer


def run_head(store: RunStore, run: RunRecord) -> keras.Model:
    """The head of `run`'s saved model, as a model on pooled features: the architecture folds copy."""
    from core.inference.predict import load_run_model

    model, _ = load_run_model(store.paths(run.id))
    return head_model(model)


def execute_label_issues(
    store: RunStore, record: RunRecord, say: Printer, progress: ProgressCallback
) -> None:
    """Carry out a claimed label-issue job: out-of-fold probabilities, the ranking, done with its counts."""
    run = store.get(record.parent)
    requested = int(record.config.get(LABEL_ISSUES, {}).get("folds", DEFAULT_FOLDS))
    features = load_run_features(store, run, CURATED_SPLITS, progress)
    images = image_table(features)
    x = np.concatenate([np.asarray(features.features[split]) for split in CURATED_SPLITS])
    y = images["label"].to_numpy(np.int64)
    folds = fold_count(y, requested)
    store.set_progress(record.id, stage=None)
    say(f"run {record.id}: {len(y)} images of run {run.id}, out-of-fold predictions with {folds} folds")
    hooks = (progress, lambda: store.cancel_requested(record.id))
    probabilities = out_of_fold(run_head(store, run), x, y, head_plan(run.train), folds, hooks)
    if probabilities is None:
        store.finish(record.id, "cancelled", {"folds": folds})
        say(f"run {record.id} cancelled before every fold was predicted")
        return
    classes = features.data.class_names
    scores, flagged = rank_label_issues(y, probabilities)
    frame = ranking_frame(images, probabilities, classes, scores, flagged)
    paths = store.paths(record.id)
    paths.create()
    save_out_of_fold(paths.out_of_fold, images, probabilities, classes)
    write_ranking(paths.label_issues, frame)
    metrics = {
        "images": len(y),
        "folds": folds,
        "flagged": int(flagged.sum()),
        "disagreements": int((frame["suggested"] != frame["given"]).sum()),
        "out_of_fold_accuracy": float((probabilities.argmax(axis=1) == y).mean()),
        "fingerprint": features.data.fingerprint,
    }
    store.finish(record.id, "done", metrics)
    say(f"run {record.id} done: confident learning flags {metrics['flagged']} of {len(y)} labels")


def save_out_of_fold(path, images: pd.DataFrame, probabilities: np.ndarray, classes: list[str]) -> None:
    """probabilities [N, classes] with each row's split, index and given label, and the class names."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            probabilities=probabilities.astype(np.float32),
            labels=images["label"].to_numpy(np.int64),
            split=images["split"].to_numpy(str),
            index=images["index"].to_numpy(np.int64),
            classes=np.asarray(classes, str),
        )
