"""The Training page's tables: runs, curves, the run to follow and its time left; a data job's progress.

Training tables list training runs only: a data job ("prepare", core.training.prepare) shares
the registry and its queue but trains nothing, so it is shown by the Dataset page and the sidebar
(`prepare_progress`), never as a run to follow, compare, fine-tune or predict with.

Plain Python (numpy, pandas): no Streamlit, no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.runs.records import Progress, RunRecord
from core.runs.store import RunStore

CURVE_METRICS = ("accuracy", "loss")


def _pct(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else 100 * value


def training_runs(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The runs that train a model, in the given order (data jobs left out)."""
    return [r for r in records if r.trains]


def runs_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """The table of training runs shown on the Training page, newest first.

    A done run whose saved model was deleted or damaged shows as "broken"; the note
    column says why, or why a run failed.
    """
    return pd.DataFrame([_run_row(r) for r in training_runs(records)])


def _run_row(r: RunRecord) -> dict:
    """One row of the runs table; a fine-tuning run shows its own epochs, learning rate and batch size."""
    train, tune = r.train, r.finetune
    return {
        "run": r.id,
        "kind": _kind(r),
        "status": r.shown_status,
        "backbone": train.backbone,
        "weights": train.weights,
        "image size": train.image_size,
        "epochs": (tune or train).epochs,
        "learning rate": (tune or train).lr,
        "batch size": (tune and tune.batch_size) or train.batch_size,
        "augmentation": train.augment,
        "labels": curation_label(r),
        "unfreeze": tune.unfreeze if tune else None,
        "best val accuracy %": _pct(r.metrics.get("best_val_accuracy")),
        "test accuracy %": _pct(r.metrics.get("test_accuracy")),
        "duration": format_duration(r.duration),
        "note": r.broken or r.error or "",
    }


def curation_label(r: RunRecord) -> str:
    """The labels a run trains on: 'as given', or 'curated <digest>: 3 relabelled, 2 excluded'.

    Runs with the same digest trained on the same curated data (core.curation.marks); the counts
    are the run's own record of them, there once it has started training.
    """
    digest = r.data.curation
    if digest is None:
        return "as given"
    m = r.metrics
    if "curated_relabelled" not in m:
        return f"curated {digest[:8]}"
    return f"curated {digest[:8]}: {m['curated_relabelled']} relabelled, {m['curated_excluded']} excluded"


def _kind(r: RunRecord) -> str:
    """'head', 'finetune of 3', or 'sweep winner of 12' for the head run a sweep promoted."""
    if r.parent is None:
        return r.kind
    return f"sweep winner of {r.parent}" if r.kind == "head" else f"{r.kind} of {r.parent}"


def runs_csv(records: Iterable[RunRecord]) -> str:
    """The runs table as CSV text, for the Training page's download button."""
    return runs_frame(records).to_csv(index=False)


def history_frame(store: RunStore, run_ids: Iterable[int]) -> pd.DataFrame:
    """Per-epoch curves of runs in long form: run, epoch, metric (accuracy/loss), split, value."""
    rows = []
    for run_id in run_ids:
        for entry in store.history(run_id):
            for metric in CURVE_METRICS:
                for split, key in (("train", metric), ("validation", f"val_{metric}")):
                    if entry.get(key) is not None:
                        point = {"run": f"run {run_id}", "epoch": entry["epoch"], "metric": metric}
                        rows.append(point | {"split": split, "value": float(entry[key])})
    return pd.DataFrame(rows, columns=["run", "epoch", "metric", "split", "value"])


def epoch_seconds(history: list[dict]) -> list[float]:
    """How long each finished epoch of a run's history took, in seconds."""
    return [float(entry["seconds"]) for entry in history if entry.get("seconds") is not None]


def result_summary(record: RunRecord) -> str:
    """A finished run's results in words: 'best validation accuracy 91.2%, test accuracy 90.8%'."""
    m = record.metrics
    parts = []
    if m.get("best_val_accuracy") is not None:
        parts.append(f"best validation accuracy {100 * m['best_val_accuracy']:.1f}%")
    if m.get("test_accuracy") is not None:
        parts.append(f"test accuracy {100 * m['test_accuracy']:.1f}%")
    return ", ".join(parts) or "no metrics"


def predictable_runs(store: RunStore) -> list[RunRecord]:
    """Finished runs with a usable saved model (none broken), best validation accuracy first."""
    runs = [r for r in training_runs(store.list()) if r.status == "done" and not r.broken]
    return sorted(runs, key=lambda r: (-(r.metrics.get("best_val_accuracy") or 0.0), -r.id))


def finetunable_runs(store: RunStore) -> list[RunRecord]:
    """Finished runs a fine-tuning run can start from, newest first."""
    return sorted(predictable_runs(store), key=lambda r: -r.id)


def current_run(records: list[RunRecord]) -> RunRecord | None:
    """The training run the live panel follows: the running one, else the oldest queued, else the newest."""
    records = training_runs(records)
    for status in ("running", "queued"):
        matching = [r for r in records if r.status == status]
        if matching:
            return min(matching, key=lambda r: r.id)
    return records[0] if records else None


@dataclass(frozen=True)
class JobWords:
    """How a job's progress bar speaks before the job reports a stage of its own."""

    waiting: str  # while it is queued
    starting: str  # once it runs, before its first stage


PREPARE_WORDS = JobWords(
    "Waiting for the worker to start preparing the dataset…", "starting to prepare the dataset"
)


def job_progress(job: RunRecord, words: JobWords) -> tuple[float, str]:
    """A worker job's progress bar (a download, a map, a ranking): (fraction done, one line of text)."""
    p = job.live
    if job.status == "queued":
        return 0.0, words.waiting
    fraction, text = 0.0, f"{words.starting}…"
    if p.stage and p.total:
        fraction = min(1.0, (p.done or 0) / p.total)
        text = f"{p.stage}: {p.done or 0} of {p.total}"
    elif p.stage:
        text = f"{p.stage}…"
    if job.cancel_requested:
        text = f"stopping: {text}"
    return fraction, text[0].upper() + text[1:]


def prepare_progress(job: RunRecord) -> tuple[float, str]:
    """A data job's progress bar (`job_progress` in its words)."""
    return job_progress(job, PREPARE_WORDS)


def estimate_eta(
    progress: Progress,
    seconds_per_epoch: list[float],
    mark: tuple[float, int] | None,
    now: float,
) -> float | None:
    """Seconds until the run ends, or None while there is nothing to estimate from.

    The speed comes from finished epochs when there are any, otherwise from
    `mark`: (time, step) when the dashboard first saw the current epoch.
    """
    epoch, epochs = progress.epoch, progress.epochs
    step, steps = progress.step or 0, progress.steps
    if not epoch or not epochs or not steps:
        return None
    if seconds_per_epoch:
        per_epoch = float(np.mean(seconds_per_epoch))
        per_step = per_epoch / steps
    elif mark is not None and step > mark[1] and now > mark[0]:
        per_step = (now - mark[0]) / (step - mark[1])
        per_epoch = per_step * steps
    else:
        return None
    return max(0.0, (steps - step) * per_step + (epochs - epoch) * per_epoch)


def format_duration(seconds: float | None) -> str:
    """'1 h 02 min', '3 min 05 s', '12 s', or '' for None."""
    if seconds is None:
        return ""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
