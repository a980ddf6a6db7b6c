"""The table of a batch prediction: one row per photo of a folder or zip, its top-k classes, as CSV.

`BatchResult` is what core.inference.batch.predict_folder returns; it holds no TensorFlow
object, so the dashboard and the command line read and write it without the engine. The CSV's
columns are `file`, then `class_1`, `prob_1`, … `class_k`, `prob_k` (probabilities rounded to
PROB_DECIMALS), one row per photo that could be read; the unreadable ones are listed apart.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass, field

from core.workspace import atomic_write_text

PROB_DECIMALS = 4

Top = list[tuple[str, float]]


@dataclass(frozen=True)
class BatchResult:
    """The photos of a folder or zip that were predicted, in file order, and those that could not be read."""

    top_k: int
    rows: list[tuple[str, Top]]  # (file inside the folder or zip, its top-k, most likely first)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (file, one-sentence reason)

    @property
    def predicted(self) -> int:
        """How many photos were predicted."""
        return len(self.rows)

    def class_counts(self) -> dict[str, int]:
        """How many photos each class was predicted for (most likely class only), most first."""
        return dict(Counter(top[0][0] for _, top in self.rows).most_common())

    def with_class(self, name: str | None) -> list[tuple[str, Top]]:
        """The rows whose most likely class is `name` (every row for None)."""
        return [row for row in self.rows if name is None or row[1][0][0] == name]


def columns(top_k: int) -> list[str]:
    """`file, class_1, prob_1, …, class_k, prob_k`."""
    return ["file", *(f"{kind}_{rank}" for rank in range(1, top_k + 1) for kind in ("class", "prob"))]


def table_rows(result: BatchResult) -> list[list[str | float]]:
    """The CSV's rows (without the header): file, then class and rounded probability per rank."""
    return [
        [file, *(value for name, prob in top for value in (name, round(prob, PROB_DECIMALS)))]
        for file, top in result.rows
    ]


def predictions_csv(result: BatchResult) -> str:
    """The whole CSV as text, header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns(result.top_k))
    writer.writerows(table_rows(result))
    return buffer.getvalue()


def write_predictions(result: BatchResult, path: str | os.PathLike[str]) -> None:
    """Write the CSV to `path` (atomically: a half-written file is never seen)."""
    atomic_write_text(path, predictions_csv(result))
