"""An embedding job's map as the page reads it: the file, the table of points, the selection, the job.

An embedding job (kind "embedding", parent: the training run studied; options {"split": ...})
writes its map to `RunPaths.embedding`, an .npz of plain arrays (no pickles): `coords` float32
[N, 2], `labels` int64, `indices` (each point's example index in the split), `names` (file
names), `class_names` and `split`. `read_map` turns it into one row per image (`COLUMNS`), which
the figure (core.figures.embedding) draws with the row number as each point's customdata, so a
click, box or lasso on the chart comes back as rows (`selected_rows`). No TensorFlow, no openTSNE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import SPLITS
from core.errors import BadInputError
from core.runs.records import EMBEDDING, RunRecord
from core.runs.requests import latest_analysis
from core.runs.store import RunStore
from core.tables.dataset import species_of
from core.tables.runs import JobWords, job_progress
from core.workspace import atomic_path

COLUMNS = ["x", "y", "label", "class_name", "species", "split", "index", "item"]
ARRAYS = ("coords", "labels", "indices", "names", "class_names", "split")
DEFAULT_SPLIT = "train"


def map_options(split: str) -> dict:
    """The options of an embedding job mapping `split` (core.runs.requests.queue_analysis)."""
    if split not in SPLITS:
        raise BadInputError(f"There is no split {split!r}; choose one of {', '.join(SPLITS)}.")
    return {"split": split}


def map_split(job: RunRecord) -> str:
    """The split an embedding job maps."""
    return str(job.config.get(EMBEDDING, {}).get("split", DEFAULT_SPLIT))


def latest_map_job(
    store: RunStore, run_id: int, split: str, records: list[RunRecord] | None = None
) -> RunRecord | None:
    """The newest embedding job of run `run_id` for `split` (any status), or None."""
    records = store.list() if records is None else records
    jobs = [r for r in records if r.kind == EMBEDDING and map_split(r) == split]
    return latest_analysis(store, EMBEDDING, run_id, jobs)


def write_map(
    path: Path,
    coords: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    class_names: Sequence[str],
    split: str,
) -> Path:
    """Write a map of a whole split (points in example order) atomically to `path`; returns it."""
    arrays = {
        "coords": np.asarray(coords, np.float32),
        "labels": np.asarray(labels, np.int64),
        "indices": np.arange(len(labels), dtype=np.int64),
        "names": np.asarray(list(names), dtype=str),
        "class_names": np.asarray(list(class_names), dtype=str),
        "split": np.asarray(split),
    }
    if not len(arrays["coords"]) == len(arrays["labels"]) == len(arrays["names"]):
        raise ValueError("A map needs as many coordinates, labels and names as points.")
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return path


def read_map(path: Path) -> pd.DataFrame | None:
    """The map at `path` as one row per image (COLUMNS), or None when it is missing or damaged."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in ARRAYS}
        return map_frame(**arrays)
    except (OSError, ValueError, KeyError, IndexError):
        return None


def map_frame(
    coords: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    names: np.ndarray,
    class_names: np.ndarray,
    split: np.ndarray | str,
) -> pd.DataFrame:
    """One row per point: x, y, label, class name, species (cat, dog or other), split, index, file name."""
    classes = [str(name) for name in class_names]
    labels = np.asarray(labels, np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError("A map's label is not one of its classes.")
    kinds = [species_of(name) for name in classes]
    return pd.DataFrame(
        {
            "x": np.asarray(coords[:, 0], np.float32),
            "y": np.asarray(coords[:, 1], np.float32),
            "label": labels,
            "class_name": pd.Categorical.from_codes(labels, categories=classes),
            "species": pd.Categorical([kinds[label] for label in labels], categories=sorted(set(kinds))),
            "split": str(split),
            "index": np.asarray(indices, np.int64),
            "item": np.asarray(names, dtype=str),
        },
        columns=COLUMNS,
    )


def has_species(frame: pd.DataFrame) -> bool:
    """Whether some of the map's classes are Oxford cat or dog breeds (so it can be coloured by species)."""
    return bool(set(frame["species"].cat.categories) & {"cat", "dog"})


def class_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Images per class on the map, in the classes' order."""
    counts = frame["class_name"].value_counts(sort=False)
    return {str(name): int(count) for name, count in counts.items()}


def selected_rows(selection: Mapping | None, rows: int) -> list[int]:
    """The map's rows a chart selection holds (each point's customdata is its row), in selection order.

    `selection`: Streamlit's plotly selection state ({"points": [{"customdata": ...}, ...]}); points
    without a row of this map (a stale selection of another map) are left out, duplicates once.
    """
    chosen: dict[int, None] = {}
    for point in (selection or {}).get("points", []) or []:
        row = _row_of(point.get("customdata"))
        if row is not None and 0 <= row < rows:
            chosen[row] = None
    return list(chosen)


def _row_of(customdata) -> int | None:
    if isinstance(customdata, (list, tuple)):
        customdata = customdata[0] if customdata else None
    try:
        return int(customdata)
    except (TypeError, ValueError):
        return None


MAP_WORDS = JobWords("Waiting for the worker to start the map…", "starting the map")


def map_progress(job: RunRecord) -> tuple[float, str]:
    """An embedding job's progress bar (core.tables.runs.job_progress in its words)."""
    return job_progress(job, MAP_WORDS)
