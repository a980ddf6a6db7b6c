"""What a trained run leaves in its folder (core.runs.layout): model, classes, config, history, evaluation.

Every file is replaced atomically, so a kill or a full disk mid-save never leaves a
half-written model where the dashboard would load it.
"""

from __future__ import annotations

import keras

from core.inference.evaluate import summary_metrics
from core.training.fit import TrainingRun
from core.workspace import atomic_path, atomic_write_json


def save_artifacts(run: TrainingRun, model: keras.Model, class_names: list[str]) -> None:
    """The full model, its class names, the run's config and its per-epoch history."""
    paths = run.paths
    paths.create()
    with atomic_path(paths.model) as tmp:
        model.save(tmp)
    atomic_write_json(paths.class_names, class_names)
    record = run.record
    atomic_write_json(paths.config, {"kind": record.kind, "parent": record.parent, **record.config})
    atomic_write_json(paths.history, run.store.history(record.id))


def write_evaluation(run: TrainingRun, report: dict) -> dict:
    """Write the test-split report; returns its headline metrics for the registry."""
    atomic_write_json(run.paths.evaluation, report)
    return summary_metrics(report)
