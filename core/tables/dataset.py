"""Tables and pictures the Dataset and Augmentation pages show: label counts, samples, thumbnails.

Plain Python (numpy, pandas, Pillow): no Streamlit, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.config import SPLITS, DataConfig
from core.data import DataSource, species
from core.data.sources import open_for_browsing
from core.progress import ProgressCallback

SPECIES_COLORS = {"cat": "#e4572e", "dog": "#2e86ab", "other": "#8d99ae"}


def species_of(class_name: str) -> str:
    """'cat', 'dog', or 'other' for a class that is not an Oxford breed."""
    return species(class_name) or "other"


@dataclass
class SourceSlot:
    """A data source opened at most once for the pages to browse (thread-safe); a failed open is
    retried next time. A prepared reference dataset is read through its original files when tfds
    kept them (core.data.sources.open_for_browsing), so the server needs no TensorFlow."""

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
                self._source = open_for_browsing(
                    self.data.source,
                    self.data.path or None,
                    workspace=self.workspace,
                    data_config=self.data,
                    progress=progress,
                    download=download,
                )
            return self._source


def source_slot(data: DataConfig, workspace: Path) -> SourceSlot:
    """The data source of `data`, opened lazily and at most once per process for browsing.

    One for the dashboard's pages and for its thumbnail route (ui.map_photos, outside any page),
    the last SOURCE_SLOTS kept. The label curation is not part of the key: it changes what a run
    trains on, not what the source holds.
    """
    return _source_slot(dataclasses.replace(data, curation=None), Path(workspace))


SOURCE_SLOTS = 8


@lru_cache(maxsize=SOURCE_SLOTS)
def _source_slot(data: DataConfig, workspace: Path) -> SourceSlot:
    return SourceSlot(data, workspace)


def forget_source_slots() -> None:
    """Drop every opened source: the next use lists its folder (or reads its dataset) again."""
    _source_slot.cache_clear()


def headline_counts(description: dict) -> dict[str, int]:
    """The Dataset page's headline of DataSource.describe(): classes, then images in each split."""
    counts = {"Classes": len(description["classes"])}
    return counts | {f"{split.capitalize()} images": int(description["sizes"][split]) for split in SPLITS}


def label_counts(description: dict) -> pd.DataFrame:
    """Long table of DataSource.describe(): one row per (split, class) with species and count."""
    rows = [
        {"split": split, "class": name, "species": species_of(name), "count": int(count)}
        for split in SPLITS
        for name, count in zip(description["classes"], description["label_counts"][split], strict=True)
    ]
    return pd.DataFrame(rows, columns=["split", "class", "species", "count"])


def counts_by_class(description: dict, split: str | None = None, order: str = "count") -> pd.DataFrame:
    """Images per class (columns class, species, count) in one split (None or "all": every split).

    `order`: "count" (most first), "name" (alphabetical, any case) or "species" (then most first).
    """
    table = label_counts(description)
    if split and split != "all":
        table = table[table["split"] == split]
    table = table.groupby(["class", "species"], as_index=False)["count"].sum()
    if order == "name":
        return table.sort_values("class", key=lambda names: names.str.lower())
    if order == "species":
        return table.sort_values(["species", "count"], ascending=[True, False])
    return table.sort_values("count", ascending=False)


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


def example_thumbnail(source: DataSource, split: str, index: int, side: int = 160) -> tuple[np.ndarray, str]:
    """(square thumbnail of at most `side` px, file name) of one example of a data source."""
    image, _ = source.load(split, index)
    return thumbnail(image, side, square=True), source.item_name(split, index)
