"""The Training page's tables: runs, curves, the run to follow and its time left.

Plain Python (numpy, pandas): no Streamlit, no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from core.runs.store import RunRecord, RunStore

CURVE_METRICS = ("accuracy", "loss")


def _pct(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else 100 * value


def runs_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """The table of runs shown on the Training page, newest first.

    A done run whose saved model was deleted or damaged shows as "broken"; the note
    column says why, or why a run failed.
    """
    rows = []
    for r in records:
        train = r.config.get("train", {})
        tune = r.config.get("finetune", {})
        rows.append(
            {
                "run": r.id,
                "kind": r.kind if r.parent is None else f"{r.kind} of {r.parent}",
                "status": r.shown_status,
                "backbone": train.get("backbone"),
                "weights": train.get("weights"),
                "image size": train.get("image_size"),
                "epochs": tune.get("epochs", train.get("epochs")),
                "learning rate": tune.get("lr", train.get("lr")),
                "batch size": tune.get("batch_size") or train.get("batch_size"),
                "augmentation": train.get("augment"),
                "unfreeze": tune.get("unfreeze"),
                "best val accuracy %": _pct(r.metrics.get("best_val_accuracy")),
                "test accuracy %": _pct(r.metrics.get("test_accuracy")),
                "duration": format_duration(r.duration),
                "note": r.broken or r.error or "",
            }
        )
    return pd.DataFrame(rows)


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
                        rows.append(
                            {"run": f"run {run_id}", "epoch": entry["epoch"], "metric": metric,
                             "split": split, "value": float(entry[key])}
                        )  # fmt: skip
    return pd.DataFrame(rows, columns=["run", "epoch", "metric", "split", "value"])


def model_path(store: RunStore, run_id: int) -> Path:
    """Where a run's trained model is saved."""
    return store.runs_path / str(int(run_id)) / "model.keras"


def predictable_runs(store: RunStore) -> list[RunRecord]:
    """Finished runs with a usable saved model (none broken), best validation accuracy first."""
    runs = [r for r in store.list() if r.status == "done" and not r.broken]
    return sorted(runs, key=lambda r: (-(r.metrics.get("best_val_accuracy") or 0.0), -r.id))


def finetunable_runs(store: RunStore) -> list[RunRecord]:
    """Finished runs a fine-tuning run can start from, newest first."""
    return sorted(predictable_runs(store), key=lambda r: -r.id)


def current_run(records: list[RunRecord]) -> RunRecord | None:
    """The run the live panel follows: the running one, else the oldest queued, else the newest."""
    for status in ("running", "queued"):
        matching = [r for r in records if r.status == status]
        if matching:
            return min(matching, key=lambda r: r.id)
    return records[0] if records else None


def estimate_eta(
    progress: dict,
    epoch_seconds: list[float],
    mark: tuple[float, int] | None,
    now: float,
) -> float | None:
    """Seconds until the run ends, or None while there is nothing to estimate from.

    The speed comes from finished epochs when there are any, otherwise from
    `mark`: (time, step) when the dashboard first saw the current epoch.
    """
    epoch, epochs = progress.get("epoch"), progress.get("epochs")
    step, steps = progress.get("step") or 0, progress.get("steps")
    if not epoch or not epochs or not steps:
        return None
    if epoch_seconds:
        per_epoch = float(np.mean(epoch_seconds))
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
