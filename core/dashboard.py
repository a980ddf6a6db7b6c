"""Plain-Python helpers behind the dashboard: tables, estimates and choices, no Streamlit, no TensorFlow.

The pages in `views/` only read state, call these and `core`, and draw; keeping
the logic here makes it testable without a screen.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.config import SPLITS, DataConfig
from core.data import DataSource, open_source, species
from core.progress import ProgressCallback
from core.registry import RunRecord, RunStore

SOURCE_LABELS = {
    "tfds": "Oxford-IIIT Pet (tensorflow-datasets)",
    "oxford-files": "Oxford-IIIT Pet files (images + annotations)",
    "folder": "Folder of class folders",
}
SOURCE_PATH_HELP = {
    "tfds": "Optional: a folder with a prepared tensorflow-datasets copy (empty: the workspace's).",
    "oxford-files": "The folder holding images/ (and annotations/), or the images folder itself.",
    "folder": "A folder with one sub-folder of images per class.",
}
SPECIES_COLORS = {"cat": "#e4572e", "dog": "#2e86ab", "other": "#8d99ae"}
CURVE_METRICS = ("accuracy", "loss")
# What the "top N layers" field offers when core.config unfreezes all layers.
TOP_LAYERS_SUGGESTION = 20


def species_of(class_name: str) -> str:
    """'cat', 'dog', or 'other' for a class that is not an Oxford breed."""
    return species(class_name) or "other"


@dataclass
class SourceSlot:
    """A data source opened at most once (thread-safe); a failed open is retried next time."""

    data: DataConfig
    workspace: Path
    _source: DataSource | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def opened(self) -> DataSource | None:
        """The source if it has been opened, else None."""
        return self._source

    def open(self, progress: ProgressCallback | None = None, download: bool = True) -> DataSource:
        """Open the source (downloading it only if `download`), or return the one already open."""
        with self._lock:
            if self._source is None:
                self._source = open_source(
                    self.data.source, self.data.path or None, workspace=self.workspace,
                    data_config=self.data, progress=progress, download=download,
                )  # fmt: skip
            return self._source


def label_counts(description: dict) -> pd.DataFrame:
    """Long table of DataSource.describe(): one row per (split, class) with species and count."""
    rows = [
        {"split": split, "class": name, "species": species_of(name), "count": int(count)}
        for split in SPLITS
        for name, count in zip(description["classes"], description["label_counts"][split], strict=True)
    ]
    return pd.DataFrame(rows, columns=["split", "class", "species", "count"])


def sample_indices(
    labels: np.ndarray,
    class_names: list[str],
    count: int,
    seed: int,
    breed: str | None = None,
    species_name: str | None = None,
) -> list[int]:
    """Up to `count` random example indices, optionally only of one breed or one species."""
    keep = np.ones(len(labels), dtype=bool)
    if breed:
        keep &= labels == class_names.index(breed)
    if species_name:
        wanted = np.array([species_of(name) == species_name for name in class_names])
        keep &= wanted[labels] if len(labels) else keep
    candidates = np.flatnonzero(keep)
    chosen = np.random.default_rng(seed).permutation(candidates)[:count]
    return sorted(int(i) for i in chosen)


def thumbnail(image: np.ndarray, max_side: int = 256, square: bool = False) -> np.ndarray:
    """A copy of an HxWx3 uint8 image no larger than max_side; `square` crops it to its centre first."""
    pil = Image.fromarray(image)
    if square:
        side = min(pil.size)
        left, top = (pil.width - side) // 2, (pil.height - side) // 2
        pil = pil.crop((left, top, left + side, top + side))
    pil.thumbnail((max_side, max_side))
    return np.asarray(pil)


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


def unfreeze_choice(unfreeze: str) -> tuple[bool, int | None]:
    """A FinetuneConfig.unfreeze value as (all layers?, number of layers or None)."""
    text = str(unfreeze).strip().lower()
    return (True, None) if text == "all" or not text.isdigit() else (False, int(text))
