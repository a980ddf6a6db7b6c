"""What a trained run leaves in its folder (core.runs.layout): model, classes, config, history, evaluation.

Every file is replaced atomically, so a kill or a full disk mid-save never leaves a
half-written model where the dashboard would load it. Beside model.keras goes its float32
LiteRT copy, which answers the dashboard's first photos before TensorFlow is loaded there
(core.predictions.lite); a run whose copy cannot be made is still a finished run.
PETLAB_LITE_COPY=0 keeps no copy (it is as large as model.keras and takes seconds to convert).
"""

from __future__ import annotations

import os

import keras

from core.errors import PetLabError
from core.inference.evaluate import summary_metrics
from core.inference.export import write_lite_model
from core.training.fit import TrainingRun
from core.workspace import atomic_path, atomic_write_json


def save_artifacts(run: TrainingRun, model: keras.Model, class_names: list[str]) -> None:
    """The full model, its class names, the run's config, its per-epoch history and the LiteRT copy."""
    paths = run.paths
    paths.create()
    with atomic_path(paths.model) as tmp:
        model.save(tmp)
    atomic_write_json(paths.class_names, class_names)
    record = run.record
    atomic_write_json(paths.config, {"kind": record.kind, "parent": record.parent, **record.config})
    atomic_write_json(paths.history, run.store.history(record.id))
    save_lite_model(run, model)  # last: the slow one, and the only one a run can do without


def write_evaluation(run: TrainingRun, report: dict) -> dict:
    """Write the test-split report; returns its headline metrics for the registry."""
    atomic_write_json(run.paths.evaluation, report)
    return summary_metrics(report)


LITE_STAGE = "preparing fast predictions"
LITE_COPY_ENV = "PETLAB_LITE_COPY"  # "0": no LiteRT copy


def save_lite_model(run: TrainingRun, model: keras.Model) -> None:
    """The model's LiteRT copy (seconds for a large backbone); on failure one line, and the run goes on."""
    if os.environ.get(LITE_COPY_ENV, "1") == "0":
        return
    run.progress(LITE_STAGE, 0, 1)
    try:
        write_lite_model(model, run.paths)
    except Exception as exc:  # TensorFlow's converter raises plain exceptions too
        reason = str(exc) if isinstance(exc, PetLabError) else type(exc).__name__
        run.say(f"No LiteRT copy of the model ({reason}); the dashboard will answer with the Keras model.")
    run.progress(LITE_STAGE, 1, 1)
