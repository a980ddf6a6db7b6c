"""Fine-tuning: open the top of a finished head run's backbone and train it with the head.

The backbone's BatchNormalization stays frozen, the head's keeps learning
(core.model.classifier.unfreeze_model), and every frozen layer runs in inference mode
(core.model.frozen, applied by core.training.fit). Where it pays, the
frozen lower backbone runs once per image and view and the part above it trains on those
cached outputs (`cached_boundary`); otherwise the whole model is fitted on images.
A fine-tuning run trains on its parent's data config, its label curation included.
"""

from __future__ import annotations

import math

import keras

from core import config as cfg
from core.errors import BadInputError, PetLabError
from core.inference.evaluate import evaluate_model
from core.model.classifier import backbone_of, frozen_boundary, load_model, unfreeze_model
from core.runs.layout import RunPaths
from core.training.artifacts import save_artifacts, write_evaluation
from core.training.datasets import load_training_arrays
from core.training.device import distribution_strategy
from core.training.feature_cache import FeatureCache, FrozenPart
from core.training.fit import FitPlan, RunData, TrainingRun, cacheable, fit, fit_on_cached, image_datasets
from core.training.head import curation_metrics
from core.workspace import read_json


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


def finetune_plan(train: cfg.TrainConfig, finetune: cfg.FinetuneConfig) -> FitPlan:
    """How a fine-tuning config fits: its settings, the head's augmentation (and batch size if unset)."""
    return FitPlan(
        augment=train.augment,
        lr=finetune.lr,
        batch_size=finetune.batch_size or train.batch_size,
        seed=finetune.seed,
        epochs=finetune.epochs,
        patience=finetune.patience,
        label_smoothing=train.label_smoothing,  # the head's loss, kept while fine-tuning
    )


def finetune(run: TrainingRun) -> tuple[str, dict]:
    """Fine-tune a run's parent to the end; returns (status, metrics) with the test-split metrics."""
    record = run.record
    train, tuning = record.train, record.finetune
    parent_problem = run.store.get(record.parent).broken  # deleted or damaged since it was queued
    if parent_problem:
        raise BadInputError(parent_problem)
    parent = run.store.paths(record.parent)
    keras.utils.set_random_seed(tuning.seed)
    source, arrays, curation = load_training_arrays(
        record.data, run.store.workspace, train.image_size, run.progress
    )
    data = RunData(source, arrays)
    if read_json(parent.class_names) != data.class_names:
        raise BadInputError(
            f"The data of run {record.parent} has changed since it was trained; train a new head run."
        )
    with distribution_strategy().scope():
        model = _parent_model(record.parent, parent)
        opened = unfreeze_model(model, tuning.unfreeze)
    run.say(f"run {run.id}: fine-tuning run {record.parent} with {opened} backbone layers unfrozen")
    curated = curation_metrics(run, curation)  # the parent's curation: the same data as the head
    plan = finetune_plan(train, tuning)
    at = cached_boundary(model, tuning, train.augment)
    if at is None:
        status, metrics = fit(run, model, image_datasets(data, plan), plan)
    else:  # the frozen lower backbone runs once per image and view, not every epoch
        cache = FeatureCache(run.store.workspace)
        status, metrics, _ = fit_on_cached(run, cache, FrozenPart.of(model, at), data, plan)
        metrics |= {"cached_below": backbone_of(model).operations[at].name}
    save_artifacts(run, model, data.class_names)
    report = evaluate_model(model, *data.arrays["test"], data.class_names)
    return status, metrics | curated | {"unfrozen_layers": opened} | write_evaluation(run, report)


def _parent_model(parent_id: int, parent: RunPaths) -> keras.Model:
    """The parent run's saved model; BadInputError when it cannot be loaded."""
    try:
        return load_model(parent.model)
    except PetLabError:
        raise
    except Exception as exc:  # damaged in a way the cheap check cannot see
        raise BadInputError(
            f"The model of run {parent_id} cannot be loaded ({type(exc).__name__}); train a new head run."
        ) from None
