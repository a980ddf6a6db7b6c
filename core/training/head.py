"""Head training: the reference head on a frozen backbone, on images or on cached backbone features.

With no augmentation or the reference flip, the frozen backbone runs once per image and
view (core.training.feature_cache) and the head trains on its pooled outputs; the saved
model is the full one (backbone + the head just trained). Otherwise the whole model is
fitted on images. The backbone of the last head run is kept for the next one in this process.

A run queued with a label curation (DataConfig.curation, core.curation) trains on its curated
train and validation splits (core.training.datasets.load_training_arrays); their features are rows
of the whole splits' cached features (core.training.feature_cache), so the cache is shared with uncurated
runs and never re-extracted. The test split is never curated.
"""

from __future__ import annotations

import keras
import numpy as np

from core import config as cfg
from core.catalog.backbones import get_backbone
from core.curation.marks import Curation, describe_counts
from core.inference.evaluate import classification_report, evaluate_model
from core.training.artifacts import save_artifacts, write_evaluation
from core.training.datasets import load_training_arrays
from core.training.device import distribution_strategy
from core.training.feature_cache import FeatureCache, FrozenPart, WarmBackbone
from core.training.fit import FitPlan, RunData, TrainingRun, cacheable, fit, fit_on_cached, image_datasets

_warm_backbone = WarmBackbone()  # kept between the head runs of one process


def uses_feature_cache(train: cfg.TrainConfig) -> bool:
    """Head training can run on cached features when augmentation is none or the reference flip."""
    return train.feature_cache and cacheable(train.augment)


def head_plan(train: cfg.TrainConfig) -> FitPlan:
    """How a head-training config fits."""
    return FitPlan(
        augment=train.augment,
        lr=train.lr,
        batch_size=train.batch_size,
        seed=train.seed,
        epochs=train.epochs,
        patience=train.patience,
        label_smoothing=train.label_smoothing,
    )


def train_head(run: TrainingRun) -> tuple[str, dict]:
    """Train a head run to its end; returns (status, metrics) with the test-split metrics."""
    data_config, train = run.record.data, run.record.train
    keras.utils.set_random_seed(train.seed)
    source, arrays, curation = load_training_arrays(
        data_config, run.store.workspace, train.image_size, run.progress
    )
    data = RunData(source, arrays)
    with distribution_strategy().scope():
        model, digest = _warm_backbone.model(
            get_backbone(train.backbone),
            len(data.class_names),
            train.image_size,
            train.weights,
            train.dropout,
            train.seed,
        )
    classes = len(data.class_names)
    run.say(f"run {run.id}: head training {train.backbone} on {data_config.source}, {classes} classes")
    curated = curation_metrics(run, curation)
    plan = head_plan(train)
    if uses_feature_cache(train):
        status, metrics = _on_cached_features(run, FrozenPart(model, digest), data, plan)
        return status, metrics | curated
    status, metrics = fit(run, model, image_datasets(data, plan), plan)
    save_artifacts(run, model, data.class_names)
    report = evaluate_model(model, *data.arrays["test"], data.class_names)
    return status, metrics | curated | write_evaluation(run, report)


def curation_metrics(run: TrainingRun, curation: Curation | None) -> dict:
    """Say what a curated run trains on; its counts for the run's metrics ({} when not curated)."""
    if curation is not None:
        run.say(f"run {run.id}: trains on curated data: {describe_counts(curation.counts())}")
    return curation_counts(curation)


def curation_counts(curation: Curation | None) -> dict:
    """A curated run's counts, for its metrics (the runs table shows them); {} when not curated."""
    if curation is None:
        return {}
    counts = curation.counts()
    return {"curated_relabelled": counts["relabelled"], "curated_excluded": counts["excluded"]}


def _on_cached_features(run: TrainingRun, part: FrozenPart, data: RunData, plan: FitPlan) -> tuple[str, dict]:
    """Fit the head on pooled backbone features; evaluate it on the test split's features."""
    # One instance: the backbone is traced once for every split.
    cache = FeatureCache(run.store.workspace)
    status, metrics, head = fit_on_cached(run, cache, part, data, plan)
    save_artifacts(run, part.model, data.class_names)  # the full model: backbone + the head just trained
    images, labels = data.arrays["test"]
    test_features = cache.get(part, images, data.fingerprint, "test", progress=run.progress)
    run.store.set_progress(run.id, stage=None)
    probabilities = np.asarray(head.predict(test_features, batch_size=256, verbose=0))
    report = classification_report(probabilities, labels, data.class_names)
    return status, metrics | {"feature_cache": True} | write_evaluation(run, report)
