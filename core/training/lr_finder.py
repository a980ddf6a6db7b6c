"""The learning-rate finder for the head (fastai's `lr_find`), on cached backbone features.

One short fit of a new head (built as head training builds it) over the training features,
with the learning rate rising exponentially from START_LR to END_LR over STEPS batches
(Keras' ExponentialDecay with a rate above 1). After every batch it records the learning rate
and the batch's loss, smoothed by an exponential moving average; it stops early once the
smoothed loss exceeds DIVERGENCE times the lowest so far. The suggestion is the learning rate
where the smoothed loss falls fastest against log(learning rate), measured over half a decade
(a single step's slope is mostly noise), before its lowest point.
The head is thrown away. As a job of the worker's queue ("lr_find", queued by
core.runs.requests.queue_lr_find), `execute_lr_find` writes the curve to the job's folder
(core.runs.layout.RunPaths.lr_curve: CSV lr, loss, raw_loss) and the suggestion to its metrics
("suggested_lr", None when the loss never fell).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from core.model.classifier import compile_model
from core.model.frozen import training_copy
from core.progress import ProgressCallback, no_progress
from core.runs.records import RunRecord
from core.runs.store import RunStore
from core.training.device import distribution_strategy
from core.training.feature_cache import head_model
from core.training.fit import FitPlan
from core.training.head import head_plan
from core.training.head_features import HeadFeatures, load_head_features
from core.workspace import atomic_write_text

START_LR, END_LR, STEPS = 1e-7, 10.0, 100
STAGE = "trying learning rates"  # the progress stage of the pass
SMOOTHING = 0.9  # EMA factor of the recorded loss; fastai's 0.98 lags ~50 of 100 steps behind
DIVERGENCE = 4.0  # stop once the smoothed loss is this many times the lowest so far
SKIP_START = 10  # the first smoothed points lean on a few batches (fastai skips 10 too)
SPAN = 0.5  # decades: the suggestion is where the loss falls most over a stretch this wide
MIN_DROP = 0.02  # a curve whose loss never falls this fraction below its start is flat: no suggestion


@dataclass(frozen=True)
class LrCurve:
    """The learning rates tried, the smoothed (and raw) loss at each, and the suggested rate or None."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float | None


def find_lr(
    features: HeadFeatures,
    label_smoothing: float = 0.0,
    steps: int = STEPS,
    start: float = START_LR,
    end: float = END_LR,
    progress: ProgressCallback = no_progress,
) -> LrCurve:
    """Fit a new head for up to `steps` batches at learning rates rising from `start` to `end`."""
    schedule = keras.optimizers.schedules.ExponentialDecay(start, max(steps - 1, 1), end / start)
    plan = dataclasses.replace(head_plan(features.train), lr=start)
    strategy = distribution_strategy()
    with strategy.scope():
        trainer = training_copy(head_model(features.new_model(features.train.dropout)))
        compile_model(trainer, schedule, label_smoothing)
    batches = _full_batches(features.datasets(plan)(0).train, plan, features)
    recorder = LossRecorder()
    for step, (x, y) in zip(range(steps), batches, strict=False):
        loss = float(trainer.train_on_batch(x, y, return_dict=True)["loss"])  # this batch's alone
        progress(STAGE, step + 1, steps)
        if not recorder.record(float(schedule(step)), loss):
            break
    return LrCurve(recorder.lrs, recorder.losses, recorder.raw, suggest(recorder.lrs, recorder.losses))


def _full_batches(batches: tf.data.Dataset, plan: FitPlan, features: HeadFeatures) -> tf.data.Dataset:
    """The batches without each epoch's short last one, whose few samples make its loss mostly noise."""
    size = plan.sampling().batch_size
    if len(features.views[0]) < size:
        return batches  # every batch is short
    return batches.filter(lambda x, y: tf.shape(x)[0] == size)


class LossRecorder:
    """The learning rates and losses of a finder pass, smoothed; says when the loss has exploded."""

    def __init__(self, smoothing: float = SMOOTHING, divergence: float = DIVERGENCE) -> None:
        self.smoothing, self.divergence = smoothing, divergence
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.raw: list[float] = []
        self._average = 0.0

    def record(self, lr: float, loss: float) -> bool:
        """Add one batch's learning rate and loss; False once the loss is not finite or has exploded."""
        if not math.isfinite(loss):
            return False
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** (len(self.raw) + 1))  # bias-corrected
        self.lrs.append(lr)
        self.losses.append(smoothed)
        self.raw.append(loss)
        return smoothed <= self.divergence * min(self.losses)


def suggest(lrs: list[float], losses: list[float]) -> float | None:
    """The learning rate in the middle of the stretch, SPAN decades wide, where the loss falls fastest.

    Only the curve from SKIP_START up to its lowest point counts (the fall, not the explosion
    after it). None when that is too short or never falls MIN_DROP below where it started.
    """
    log_lrs, loss = np.log10(np.asarray(lrs, dtype=float)), np.asarray(losses, dtype=float)
    if len(loss) <= SKIP_START + 2:
        return None
    lowest = SKIP_START + int(np.argmin(loss[SKIP_START:]))
    log_lrs, loss = log_lrs[SKIP_START : lowest + 1], loss[SKIP_START : lowest + 1]
    if len(loss) < 3 or loss[0] - loss[-1] < MIN_DROP * abs(loss[0]):
        return None
    spacing = (log_lrs[-1] - log_lrs[0]) / (len(loss) - 1)
    width = int(np.clip(round(SPAN / spacing), 1, len(loss) - 1))
    slopes = (loss[width:] - loss[:-width]) / (log_lrs[width:] - log_lrs[:-width])
    middle = int(np.argmin(slopes)) + width // 2
    return float(10 ** log_lrs[middle])


def execute_lr_find(store: RunStore, record: RunRecord, progress: ProgressCallback) -> LrCurve:
    """Carry out a claimed finder job: the pass, its curve in the job's folder, done with its suggestion."""
    features = load_head_features(record.data, record.train, store.workspace, progress)
    curve = find_lr(features, record.train.label_smoothing, progress=progress)
    store.set_progress(record.id, stage=None)
    paths = store.paths(record.id)
    paths.create()
    write_curve(paths.lr_curve, curve)
    store.finish(record.id, "done", {"suggested_lr": curve.suggestion, "points": len(curve.lrs)})
    return curve


def write_curve(path: Path, curve: LrCurve) -> Path:
    """The finder's curve as CSV (lr, loss, raw_loss), written atomically to `path`; returns it."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["lr", "loss", "raw_loss"])
    writer.writerows(zip(curve.lrs, curve.losses, curve.raw_losses, strict=True))
    atomic_write_text(path, text.getvalue())
    return path
