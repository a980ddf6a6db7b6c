"""Plain-Python helpers behind the Evaluation and Predict pages: no Streamlit, no TensorFlow.

They shape a run's evaluation report (`store.paths(id).evaluation`, written by
core.inference.evaluate) into the tables and lists the pages draw: the confusion matrix
as a frame (counts or shares of each true class), per-class scores, the most
confused breed pairs, the misclassified test images, and the differences
between two runs. Keeping them here makes them testable without a screen.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import DataConfig
from core.data import ImageCache, open_source
from core.runs.records import RunRecord
from core.tables.dataset import species_of

# What a report needs for the Evaluation page to draw anything.
REPORT_KEYS = ("class_names", "confusion_matrix", "per_class", "accuracy", "top5_accuracy", "loss")
# What the gallery of mistakes also needs, in test-split order.
SAMPLE_KEYS = ("predicted", "labels", "confidence")


def run_label(record: RunRecord) -> str:
    """'run 3 · efficientnetv2b0 · fine-tuned from run 2 · val 91.2% · test 90.8%'."""
    m = record.metrics
    parts = [f"run {record.id}", record.train.backbone]
    if record.kind == "finetune":
        parts.append(f"fine-tuned from run {record.parent}")
    if m.get("best_val_accuracy") is not None:
        parts.append(f"val {100 * m['best_val_accuracy']:.1f}%")
    if m.get("test_accuracy") is not None:
        parts.append(f"test {100 * m['test_accuracy']:.1f}%")
    return " · ".join(parts)


def load_evaluation(path: Path) -> dict | None:
    """The evaluation report at `path` (`store.paths(id).evaluation`).

    None when it is missing, unreadable or incomplete.
    """
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or any(key not in report for key in REPORT_KEYS):
        return None
    n = len(report["class_names"])
    matrix = np.asarray(report["confusion_matrix"])
    if n == 0 or matrix.shape != (n, n) or len(report["per_class"]) != n:
        return None
    return report


def headline_metrics(report: dict) -> dict[str, str]:
    """The report's headline, ready to show: {label: value} for test accuracy, top-5, loss and images."""
    count = report.get("count", int(np.sum(report["confusion_matrix"])))
    return {
        "Test accuracy": f"{100 * report['accuracy']:.1f}%",
        "Top-5 accuracy": f"{100 * report['top5_accuracy']:.1f}%",
        "Test loss": f"{report['loss']:.3f}",
        "Test images": str(count),
    }


def read_test_split(workspace: Path, data: DataConfig, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of a data source's test split at `image_size`, from the decoded-image cache.

    The same images in the same order as the evaluation report's lists; never downloads.
    """
    source = open_source(data.source, data.path, workspace=Path(workspace), data_config=data, download=False)
    return ImageCache(Path(workspace)).get(source, "test", image_size)


def has_samples(report: dict) -> bool:
    """Whether the report lists each test image's label, prediction and confidence."""
    if any(key not in report for key in SAMPLE_KEYS):
        return False
    return len(report["predicted"]) == len(report["labels"]) == len(report["confidence"])


def confusion_frame(report: dict, normalize: bool = False) -> pd.DataFrame:
    """The confusion matrix with true breeds as rows and predicted breeds as columns.

    `normalize` divides each row by its number of test images, so a cell is the share
    of that true breed predicted as the column's breed (a row without images stays 0).
    """
    names = list(report["class_names"])
    counts = np.asarray(report["confusion_matrix"], dtype=np.int64)
    frame = pd.DataFrame(
        counts, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted")
    )
    return row_shares(frame) if normalize else frame


def row_shares(counts: pd.DataFrame) -> pd.DataFrame:
    """A count table with each row divided by its total (a row without any count stays 0)."""
    values = counts.to_numpy(dtype=np.float64)
    totals = values.sum(axis=1, keepdims=True)
    shares = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    return pd.DataFrame(shares, index=counts.index, columns=counts.columns)


def per_class_frame(report: dict) -> pd.DataFrame:
    """One row per breed: species, precision, recall, F1 (0-1) and support (test images)."""
    rows = [
        {
            "breed": entry["class"],
            "species": species_of(entry["class"]),
            "precision": float(entry["precision"]),
            "recall": float(entry["recall"]),
            "f1": float(entry["f1"]),
            "support": int(entry["support"]),
        }
        for entry in report["per_class"]
    ]
    return pd.DataFrame(rows, columns=["breed", "species", "precision", "recall", "f1", "support"])


def confused_pairs(report: dict, top: int = 10) -> pd.DataFrame:
    """The `top` largest off-diagonal cells: true breed, predicted breed, count, share of the true breed.

    Most images first; ties by share, then by name. Cells with no image are left out.
    """
    names = list(report["class_names"])
    counts = np.asarray(report["confusion_matrix"], dtype=np.int64)
    totals = counts.sum(axis=1)
    rows = [
        {
            "true": names[i],
            "predicted": names[j],
            "count": int(counts[i, j]),
            "share": float(counts[i, j] / totals[i]),
        }
        for i, j in zip(*np.nonzero(counts), strict=True)
        if i != j
    ]
    frame = pd.DataFrame(rows, columns=["true", "predicted", "count", "share"])
    frame = frame.sort_values(["count", "share", "true", "predicted"], ascending=[False, False, True, True])
    return frame.head(max(0, top)).reset_index(drop=True)


def mistakes_by_class(report: dict) -> dict[str, int]:
    """Misclassified test images per true breed (breeds with none left out), most first."""
    if not has_samples(report):
        return {}
    names = list(report["class_names"])
    labels, predicted = np.asarray(report["labels"]), np.asarray(report["predicted"])
    wrong = np.bincount(labels[labels != predicted], minlength=len(names))
    order = sorted((i for i in range(len(names)) if wrong[i]), key=lambda i: (-wrong[i], names[i].lower()))
    return {names[i]: int(wrong[i]) for i in order}


def misclassified(report: dict, true_class: str | None = None, limit: int | None = None) -> list[int]:
    """Test-split indices of misclassified images, most confident mistakes first.

    `true_class` keeps only images of that breed; `limit` caps the list.
    """
    if not has_samples(report):
        return []
    labels, predicted = np.asarray(report["labels"]), np.asarray(report["predicted"])
    confidence = np.asarray(report["confidence"], dtype=np.float64)
    wrong = labels != predicted
    if true_class is not None:
        names = list(report["class_names"])
        wrong &= labels == (names.index(true_class) if true_class in names else -1)
    indices = np.flatnonzero(wrong)
    order = indices[np.argsort(-confidence[indices], kind="stable")]
    return [int(i) for i in order[:limit]]


def matches_test_split(report: dict, labels: np.ndarray) -> bool:
    """Whether `labels` (the test split as it is now) is the split the report was computed on."""
    return has_samples(report) and np.array_equal(np.asarray(report["labels"]), np.asarray(labels))


def mistake_caption(report: dict, index: int) -> str:
    """'true breed → predicted breed (confidence%)' of test image `index`."""
    names = report["class_names"]
    true, predicted = names[report["labels"][index]], names[report["predicted"][index]]
    return f"{true} → {predicted} ({100 * report['confidence'][index]:.0f}%)"


def metric_deltas(report: dict, other: dict) -> dict[str, tuple[float, float]]:
    """{accuracy, top5_accuracy, loss: (value of `report`, value minus `other`'s)}."""
    result = {}
    for key in ("accuracy", "top5_accuracy", "loss"):
        value, base = float(report[key]), float(other[key])
        result[key] = (value, value - base if math.isfinite(value) and math.isfinite(base) else math.nan)
    return result


@dataclass(frozen=True)
class MetricChange:
    """One headline metric of a run beside another run's, ready for a metric widget."""

    label: str
    value: str
    change: str
    delta_color: str  # "normal", "inverse" (lower is better) or "off" (no visible change)


def metric_changes(report: dict, other: dict, this: str, that: str) -> list[MetricChange]:
    """Test accuracy, top-5 and loss of `report` (run `this`) and their change from `other` (run `that`)."""
    deltas = metric_deltas(report, other)
    changes = []
    for key, label in (("accuracy", "Test accuracy"), ("top5_accuracy", "Top-5 accuracy")):
        value, delta = deltas[key]
        change = f"{100 * delta:+.1f} pp vs {that}"
        changes.append(MetricChange(f"{label}, {this}", f"{100 * value:.1f}%", change, delta_color(change)))
    value, delta = deltas["loss"]
    change = f"{delta:+.3f} vs {that}"
    changes.append(MetricChange(f"Test loss, {this}", f"{value:.3f}", change, delta_color(change, "inverse")))
    return changes


def delta_color(change: str, color: str = "normal") -> str:
    """ "off" (grey) for a change that rounds to zero ("+0.0 pp"), else `color`."""
    return "off" if not any(c in "123456789" for c in change.split(" ")[0]) else color


def recall_diff_frame(
    report: dict, other: dict, label: str = "this run", other_label: str = "other run"
) -> pd.DataFrame:
    """Per-breed recall (per-class accuracy) of two reports and their difference, breeds in both only.

    Columns: breed, `label`, `other_label` (recalls 0-1), difference (the first minus the
    second), better (which run is ahead, or "same"); largest gain first.
    """
    mine = {entry["class"]: float(entry["recall"]) for entry in report["per_class"]}
    theirs = {entry["class"]: float(entry["recall"]) for entry in other["per_class"]}
    rows = []
    for name in mine:
        if name in theirs:
            difference = mine[name] - theirs[name]
            better = label if difference > 0 else other_label if difference < 0 else "same"
            row = {"breed": name, label: mine[name], other_label: theirs[name]}
            rows.append(row | {"difference": difference, "better": better})
    frame = pd.DataFrame(rows, columns=["breed", label, other_label, "difference", "better"])
    return frame.sort_values(["difference", "breed"], ascending=[False, True]).reset_index(drop=True)


def zip_folder(folder: Path) -> bytes:
    """A zip (in memory) of `folder` and everything in it, under the folder's own name."""
    folder = Path(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    return buffer.getvalue()


def size_of(path: Path) -> int:
    """Bytes in a file, or in every file under a folder."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def format_bytes(count: int) -> str:
    """'512 B', '3.4 KB', '12.0 MB', '1.2 GB'."""
    value = float(count)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def class_choices(class_names: list[str], top: list[tuple[str, float]]) -> list[int]:
    """Class indices for a "which class to explain" list: the top predictions first, then the rest."""
    first = [class_names.index(name) for name, _ in top if name in class_names]
    return first + [i for i in range(len(class_names)) if i not in first]
