"""The Evaluation page's gallery of misclassified test images, most confident mistakes first.

The report lists each test image's label, prediction and confidence in test-split order;
the images themselves come from the decoded-image cache (core.tables.evaluation.read_test_split),
and are shown only while they are still the split the report was computed on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core.config import DataConfig
from core.runs.records import RunRecord
from core.runs.store import RunStore
from core.tables.dataset import thumbnail
from core.tables.evaluation import (
    has_samples,
    matches_test_split,
    misclassified,
    mistake_caption,
    mistakes_by_class,
    read_test_split,
)
from ui import errors
from ui.evaluate import check_run_data, evaluate

GALLERY_CAP = 24
GALLERY_COLUMNS = 6
ALL = "all breeds"
UNREADABLE = "The test images cannot be read, so the mistakes are not shown."


@st.cache_resource(max_entries=4, show_spinner="Loading the test images…")
def cached_test_split(workspace: str, data: DataConfig, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of a data source's test split at `image_size`, kept for the next reruns."""
    return read_test_split(Path(workspace), data, image_size)


def current_test_split(store: RunStore, record: RunRecord, report: dict) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of the run's test split, read again once when they do not match the report."""
    key = (str(store.workspace), record.data, record.train.image_size)
    check_run_data(record)
    images, labels = cached_test_split(*key)
    if not matches_test_split(report, labels):  # the data may have changed since they were loaded
        cached_test_split.clear(*key)
        images, labels = cached_test_split(*key)
    return images, labels


def gallery_images(store: RunStore, record: RunRecord, report: dict) -> np.ndarray | None:
    """The test images the report was computed on, or None (and why) when they cannot be shown."""
    images = labels = None
    with errors.shown(hint=UNREADABLE):
        images, labels = current_test_split(store, record, report)
    if images is None or matches_test_split(report, labels):
        return images
    st.warning(
        "The test images have changed since this evaluation; evaluate the run again to see its mistakes.",
        icon=":material/sync_problem:",
    )
    if st.button("Evaluate again on the current test split", key="reevaluate_run"):
        evaluate(store, record)
    return None


def gallery(store: RunStore, record: RunRecord, report: dict) -> None:
    """Pick a true breed (or all), see its misclassified test images with what they were taken for."""
    st.subheader("Misclassified test images")
    if not has_samples(report):
        st.info("This evaluation does not list its test images; evaluate the run again to see them.")
        return
    wrong = mistakes_by_class(report)
    if not wrong:
        st.success("No test image was misclassified.", icon=":material/check_circle:")
        return
    images = gallery_images(store, record, report)
    if images is None:
        return
    total = sum(wrong.values())
    breed = st.selectbox(
        "True breed",
        [ALL, *wrong],
        key="gallery_breed",
        format_func=lambda b: f"{b} ({total if b == ALL else wrong[b]})",
    )
    indices = misclassified(report, None if breed == ALL else breed, GALLERY_CAP)
    shown = total if breed == ALL else wrong[breed]
    st.caption(
        f"Showing {len(indices)} of {shown} mistakes, most confident first: "
        "true breed → predicted (confidence)."
    )
    grid = st.columns(GALLERY_COLUMNS)
    for n, i in enumerate(indices):
        image = thumbnail(np.asarray(images[i]), 160)
        grid[n % GALLERY_COLUMNS].image(image, caption=mistake_caption(report, i))
