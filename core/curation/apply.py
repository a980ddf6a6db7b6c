"""Applying curation marks to a split's images and labels: the rows training keeps, their labels.

A curated split is a selection of the source's split: the rows not excluded, in the source's
order, with relabelled rows given their new class. The images and cached features stay those of
the whole split (`RowView` reads the kept rows of them on demand), so the decoded-image cache
and the feature cache, both keyed by the source's fingerprint, hold one row per image of the
source whatever the curation, and a curated run reuses the features an uncurated one computed.

Plain numpy and pandas: the Dataset page shows the curated counts with these, without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.curation.marks import CURATED_SPLITS, Curation
from core.errors import BadInputError

STALE = "The label marks were made on another version of this data (it has changed since)"


class RowView:
    """Rows `rows` of an array (a memory-mapped split or its cached features), read when indexed.

    Indexing it as an array of len(rows) rows reads only the rows asked for, so a selection of a
    large memory-mapped split is never copied whole. np.asarray() gives the selected rows.
    """

    def __init__(self, base, rows: np.ndarray) -> None:
        self.base = base
        self.rows = np.asarray(rows, np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        return self.base[self.rows[key]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self.base[self.rows], dtype=dtype)


@dataclass(frozen=True)
class CuratedSplit:
    """The source's rows training keeps (ascending) and their labels after relabelling."""

    rows: np.ndarray
    labels: np.ndarray


def check_applies(curation: Curation, fingerprint: str, classes: list[str]) -> None:
    """BadInputError unless `curation` was made on this data (its fingerprint and classes)."""
    if curation.fingerprint != fingerprint or list(curation.classes) != list(classes):
        raise BadInputError(
            f"{STALE}; clear them on the Label issues page, or train with --no-curation.",
            dashboard=f"{STALE}; clear them on the Label issues page and find the label issues again.",
        )


def curate_split(curation: Curation, split: str, labels: np.ndarray, classes: list[str]) -> CuratedSplit:
    """The rows of `split` (given `labels`) training keeps and their labels; the test split is kept as is.

    BadInputError when a mark names an image the split does not have with the label it was given.
    """
    labels = np.asarray(labels, np.int64)
    keep, curated = np.ones(len(labels), bool), labels.copy()
    if split in CURATED_SPLITS:
        for mark in curation.changing():
            if mark.split != split:
                continue
            if not (0 <= mark.index < len(labels)) or classes[labels[mark.index]] != mark.given:
                raise BadInputError(
                    f"{STALE}: {mark.file} is not image {mark.index} of the {split} split labelled "
                    f"{mark.given}; clear the marks and find the label issues again."
                )
            if mark.action == "exclude":
                keep[mark.index] = False
            else:
                curated[mark.index] = classes.index(mark.label)
    rows = np.flatnonzero(keep)
    return CuratedSplit(rows, curated[rows])


def files_match(
    entries: Iterable[tuple[str, int, str]], file_of: Callable[[str, int], str], sizes: dict[str, int]
) -> bool:
    """Whether each (split, index, file) still names that file (`file_of(split, index)`) in the data."""
    return all(
        index < sizes.get(split, 0) and file_of(split, index) == file for split, index, file in entries
    )


def marks_match(curation: Curation, file_of: Callable[[str, int], str], sizes: dict[str, int]) -> bool:
    """Whether every mark still names the file it was made on (see files_match)."""
    return files_match(((m.split, m.index, m.file) for m in curation.marks), file_of, sizes)


def curated_counts(curation: Curation, labels: dict[str, np.ndarray], classes: list[str]) -> pd.DataFrame:
    """Images per class in train and validation together, as given and as training sees them.

    Columns: class, given, curated, change (curated - given); only classes with a change.
    """
    given = np.zeros(len(classes), np.int64)
    curated = np.zeros(len(classes), np.int64)
    for split in CURATED_SPLITS:
        split_labels = np.asarray(labels[split], np.int64)
        given += np.bincount(split_labels, minlength=len(classes))
        kept = curate_split(curation, split, split_labels, classes).labels
        curated += np.bincount(kept, minlength=len(classes))
    table = pd.DataFrame({"class": classes, "given": given, "curated": curated})
    table["change"] = table["curated"] - table["given"]
    return table[table["change"] != 0].reset_index(drop=True)
