"""The Embedding map page's panels: the offer to compute a map, the job's progress, the map and its photos.

A map is computed by the worker (core.training.embedding_job), queued here
(core.runs.requests.queue_analysis, which joins a job already queued or running) and followed
through the registry only, once a second while it is queued or running. A finished map is read
from the job's folder (core.embeddings.maps) and drawn as WebGL points
(core.figures.embedding); hovering a point shows its photo and label in a tooltip (ui.map_photos:
thumbnails served by the dashboard's own route, loaded on demand), a click on a point shows its
photo large, a box or lasso selection a gallery of the first GALLERY_CAP. The photos are decoded
on demand from the run's data source, opened for browsing once per server and shared with the
thumbnail route (core.embeddings.photos; no TensorFlow for a prepared reference dataset), and
only for what was hovered or selected.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core.config import DataConfig
from core.data.base import DataSource
from core.embeddings import photos
from core.embeddings.maps import (
    class_counts,
    has_species,
    map_options,
    map_progress,
    map_split,
    read_map,
    selected_rows,
)
from core.figures.embedding import embedding_scatter
from core.runs import worker_process as jobs
from core.runs.records import EMBEDDING, RunRecord
from core.runs.requests import queue_analysis
from core.runs.store import RunStore
from core.tables import dataset as dataset_tables
from ui import errors, map_photos, state
from ui.evaluate import check_run_data
from ui.job_panel import JobPanel, last_outcome
from ui.run_status import queued_toast

COMPUTE = "compute_map"  # the button's key
COLOR_BY = "map_color_by"
HIGHLIGHT = "map_highlight"
CHART = "embedding_chart"  # the chart's key (and its selection's, in session state), per job: CHART_<id>
ALL_CLASSES = "all classes"
COLORINGS = {"breed": "breed", "species": "cat / dog"}
GALLERY_CAP = 24
GALLERY_COLUMNS = 6
MAP_ICON = ":material/scatter_plot:"
CHANGED = (
    "The run's images have changed since this map was computed, so its photos cannot be shown; "
    "compute the map again."
)


def chart_key(job: RunRecord) -> str:
    """The chart's key: one per map, so a selection on one map never reads as rows of another."""
    return f"{CHART}_{job.id}"


def compute(store: RunStore, record: RunRecord, split: str) -> None:
    """Queue the map of `split` (or join the one already queued) and make sure a worker runs it."""
    with errors.shown():
        job = queue_analysis(store, EMBEDDING, record.id, map_options(split))
        jobs.start_worker(store.workspace)
        queued_toast(store, job, f": the map of run {record.id}'s {split} images")
        st.rerun()  # the page now follows the job


def offer(store: RunStore, record: RunRecord, split: str, last: RunRecord | None) -> None:
    """No finished map: why the last one did not finish (if any), what computing one does, the button."""
    last_outcome(last, MAP_JOB)
    st.info(
        f"Run {record.id} has no map of its {split} images yet. Computing it places every image by its "
        "backbone features (PCA, then t-SNE) in the background; a few thousand images take a minute or "
        "two. If the run's features of this split are not cached yet (a fine-tuned run, or a split its "
        "training did not read), they are extracted first, with progress shown here.",
        icon=MAP_ICON,
    )
    if st.button("Compute the map", key=COMPUTE, type="primary", icon=MAP_ICON):
        compute(store, record, split)


MAP_JOB = JobPanel(
    key="map",
    noun="the map",
    background="The map is computed in the background: you can leave this page meanwhile.",
    progress=map_progress,
)


@st.cache_data(max_entries=8, show_spinner="Reading the map…")
def load_map(path: str, modified: float) -> pd.DataFrame | None:
    """The map's table (core.embeddings.maps.read_map), read once per file version."""
    return read_map(Path(path))


def map_table(store: RunStore, job: RunRecord) -> pd.DataFrame | None:
    """The finished job's map, or None (and why) when its file is gone or damaged."""
    path = store.paths(job.id).embedding
    frame = load_map(str(path), path.stat().st_mtime if path.is_file() else 0.0)
    if frame is None:
        errors.show(f"The file of the map (run {job.id}) is missing or damaged; compute the map again.")
    return frame


def controls(frame: pd.DataFrame) -> tuple[str, str | None]:
    """Colour by breed or cat/dog (only for Oxford breeds) and a class to highlight: (color_by, highlight)."""
    left, right = st.columns([1, 2], vertical_alignment="bottom")
    color_by = "breed"
    if has_species(frame):
        color_by = left.radio(
            "Colour by",
            list(COLORINGS),
            format_func=COLORINGS.get,
            key=COLOR_BY,
            horizontal=True,
            persist_state="session",
        )
    counts = class_counts(frame)
    choice = right.selectbox(
        "Highlight a class",
        [ALL_CLASSES, *counts],
        format_func=lambda c: c if c == ALL_CLASSES else f"{c} ({counts[c]})",
        key=HIGHLIGHT,
    )
    return color_by, None if choice == ALL_CLASSES else choice


def map_view(store: RunStore, record: RunRecord, job: RunRecord) -> None:
    """The finished map: controls, the chart, then the photo of a clicked point or a selection's gallery."""
    frame = map_table(store, job)
    if frame is None:
        offer(store, record, map_split(job), None)
        return
    color_by, highlight = controls(frame)
    figure = embedding_scatter(frame, color_by, highlight)
    event = st.plotly_chart(
        figure, key=chart_key(job), on_select="rerun", selection_mode=("points", "box", "lasso")
    )
    map_photos.hover_photos(chart_key(job), job.id, photos.map_version(store, job.id))
    method = job.metrics.get("method", "t-SNE")
    st.caption(
        f"{len(frame)} {job.metrics.get('split', '')} images of run {record.id}, placed by {method} of their "
        "backbone features: nearby points look alike to the model. Hover a point to see its photo, breed "
        "and file; click it to see the photo large. For a gallery, choose Box or Lasso select in the "
        "chart's toolbar and draw around points (choose Pan again to click single points)."
    )
    rows = selected_rows(event.selection, len(frame))
    if rows:
        selection(record, frame, rows)


def selection(record: RunRecord, frame: pd.DataFrame, rows: list[int]) -> None:
    """One selected point: its photo, large; several: what they are and a gallery of the first ones."""
    source = run_source(record)
    if source is None:
        return
    chosen = frame.iloc[rows]
    if len(rows) == 1:
        photo(source, record.data, chosen.iloc[0])
        return
    st.subheader(f"{len(rows)} selected images")
    kinds = chosen["class_name"].astype(str).value_counts()
    st.caption(", ".join(f"{name} {count}" for name, count in kinds.items()))
    gallery(source, record.data, chosen.head(GALLERY_CAP), len(rows))


def photo(source: DataSource, data: DataConfig, row: pd.Series) -> None:
    """One image of the map at full size, with its label and file name."""
    image = example(source, data, str(row["split"]), int(row["index"]), str(row["item"]))
    if image is None:
        return
    height, width = image.shape[:2]
    st.markdown(f"**{row['class_name']}** · `{row['item']}` · {width} × {height} px")
    st.image(image, caption=f"{row['class_name']} · {row['item']}")


def gallery(source: DataSource, data: DataConfig, rows: pd.DataFrame, total: int) -> None:
    """Thumbnails of the given rows (decoded now, kept for later reruns), captioned with label and file."""
    st.caption(f"Showing {len(rows)} of {total}; click a single point to see it large.")
    grid = st.columns(GALLERY_COLUMNS)
    for n, (_, row) in enumerate(rows.iterrows()):
        split, index, item = str(row["split"]), int(row["index"]), str(row["item"])
        small = example_thumbnail(source, data_key(data), split, index)
        if small[1] != item:
            st.warning(CHANGED)
            return
        grid[n % GALLERY_COLUMNS].image(small[0], caption=f"{row['class_name']} · {item}")


def data_key(data: DataConfig) -> tuple:
    """A run's data settings as the caches' key (the source is passed unhashed)."""
    return dataclasses.astuple(data)


def example(source: DataSource, data: DataConfig, split: str, index: int, item: str) -> np.ndarray | None:
    """The full-size image of one example, or None (and why) when the data has changed since the map."""
    image, _, name = state.load_example(source, data_key(data), split, index)
    if name != item:
        st.warning(CHANGED)
        return None
    return image


@st.cache_data(max_entries=512, show_spinner=False)
def example_thumbnail(_source: DataSource, key: tuple, split: str, index: int) -> tuple[np.ndarray, str]:
    """(square thumbnail, file name) of one example; `key` names the source for the cache."""
    return dataset_tables.example_thumbnail(_source, split, index, photos.THUMBNAIL_SIDE)


def run_source(record: RunRecord) -> DataSource | None:
    """The run's data source for its photos, or None (and why) when it cannot be read from here."""
    with errors.shown(hint="The map is still shown; its photos need the run's images."):
        check_run_data(record)
        with st.spinner("Opening the run's images…"):
            # The same opened source as the hover thumbnails' (core.embeddings.photos) and the pages'.
            return dataset_tables.source_slot(record.data, state.workspace()).open(download=False)
    return None
