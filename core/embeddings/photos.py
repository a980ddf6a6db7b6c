"""The photos of a map's points: for the Embedding map page and its hover thumbnails. No TensorFlow.

A map's row names one image of the run's data: its split, index and file name (core.embeddings.maps).
The image comes from the run's data source opened for browsing (core.tables.dataset.source_slot: a
prepared reference dataset is read through the original files tfds extracted), opened at most once
per process and shared by the page and the server's thumbnail route (ui.map_photos). A photo is
given only while the example still has the file name the map recorded, so a map never shows
another image than its point's, and `point_thumbnail` serves nothing but a finished map's points.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.data.roots import resolve_within_roots
from core.embeddings.maps import read_map
from core.errors import NotFoundError
from core.runs.records import EMBEDDING, RunRecord
from core.runs.store import RunStore
from core.tables.dataset import example_thumbnail, source_slot

THUMBNAIL_SIDE = 160  # px, square: the page's gallery and the hover tooltip
JPEG_QUALITY = 82


def jpeg_bytes(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """An HxWx3 uint8 image as JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def map_version(store: RunStore, job_id: int) -> int:
    """A number that changes whenever job `job_id`'s map file is rewritten (0 when it is missing)."""
    try:
        return store.paths(job_id).embedding.stat().st_mtime_ns
    except OSError:
        return 0


@lru_cache(maxsize=4)
def _map_table(path: str, version: int) -> pd.DataFrame | None:
    return read_map(Path(path))


def finished_map(store: RunStore, job_id: int) -> tuple[RunRecord, pd.DataFrame]:
    """(the run it studies, its table) of the finished embedding job `job_id`; NotFoundError otherwise.

    Tables are kept per file version for the last 4 maps.
    """
    job = store.get(job_id)
    if job.kind != EMBEDDING or job.status != "done" or job.parent is None:
        raise NotFoundError(f"Job {job_id} is not a finished embedding map; compute the map first.")
    version = map_version(store, job_id)
    frame = _map_table(str(store.paths(job_id).embedding), version) if version else None
    if frame is None:
        raise NotFoundError(f"The file of the map (job {job_id}) is missing or damaged; compute it again.")
    return store.get(job.parent), frame


def point_thumbnail(
    store: RunStore, job_id: int, row: int, roots: Iterable[Path], side: int = THUMBNAIL_SIDE
) -> np.ndarray:
    """The square thumbnail of point `row` of the finished map of job `job_id`.

    `roots`: the folders the run's data must lie in (core.data.roots). NotFoundError when there is
    no such map or row, BadInputError when the data lies outside the roots, NotFoundError when the
    example no longer has the map's file name (the data changed since the map).
    """
    record, frame = finished_map(store, job_id)
    if not 0 <= row < len(frame):
        raise NotFoundError(f"The map of job {job_id} has no point {row}; it has {len(frame)}.")
    if record.data.path:
        resolve_within_roots(record.data.path, roots)
    point = frame.iloc[row]
    source = source_slot(record.data, store.workspace).open(download=False)
    image, name = example_thumbnail(source, str(point["split"]), int(point["index"]), side)
    if name != point["item"]:
        raise NotFoundError(f"The run's images have changed since the map of job {job_id}; compute it again.")
    return image
