"""Dataset page: classes, split sizes, label counts, random samples and one image at full size.

A zip of class folders uploaded here is imported into the workspace
(core.data.zip_import) and becomes the sidebar's folder source. The reference dataset, when
not prepared yet, is downloaded and prepared by the worker, not by this page (ui.data_job):
the page follows the job and opens the data once it is done.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from core.config import SPLITS
from core.data import DataSource
from core.data.zip_import import ImportReport, import_zip
from core.errors import NotFoundError, PetLabError
from core.figures.data import label_counts_bar
from core.tables.dataset import counts_by_class, headline_counts, sample_indices, species_of, thumbnail
from ui import curation, data_job, errors, state
from ui.widgets import literal, progress_bar

SAMPLES = 12
GRID_COLUMNS = 6
MIN_PER_CLASS = 5
# (upload's file id, ok, message) of the last zip import, kept while the upload stays.
ZIP_RESULT = "zip_import_result"


def zip_import() -> None:
    """Upload a zip of class folders; once imported, the sidebar switches to that folder."""
    with st.expander("Import your own images from a zip", icon=":material/folder_zip:"):
        st.caption(
            f"One folder per class inside the zip (cat/…, dog/…, at the top or under one folder), "
            f"at least two classes with {MIN_PER_CLASS} images each; other files are skipped."
        )
        upload = st.file_uploader(
            "Zip of class folders", type=["zip"], key="dataset_zip", max_upload_size=state.ZIP_UPLOAD_MB
        )
        if upload is None:
            return
        result = st.session_state.get(ZIP_RESULT)
        if result is None or result[0] != upload.file_id:
            import_upload(upload)
        _, ok, message = st.session_state[ZIP_RESULT]
        if ok:
            st.success(message, icon=":material/check_circle:")
        else:
            errors.show(message)


def import_upload(upload: UploadedFile) -> None:
    """Import the zip once per upload, keeping the outcome for later reruns; on success use its folder."""
    try:
        with progress_bar() as bar:
            report = import_zip(upload, state.workspace(), upload.name, MIN_PER_CLASS, progress=bar)
    except PetLabError as exc:  # kept, and shown while the upload stays
        st.session_state[ZIP_RESULT] = (upload.file_id, False, errors.sentence(exc))
        return
    st.session_state[ZIP_RESULT] = (upload.file_id, True, import_summary(report))
    state.use_folder(report.path)
    st.rerun()  # so that the sidebar shows the new folder


def import_summary(report: ImportReport) -> str:
    """What an import brought in, for the page: images per class and what was skipped."""
    classes = ", ".join(f"{name} {count}" for name, count in report.class_counts.items())
    text = (
        f"Imported {report.images} images in {len(report.class_counts)} classes ({classes}) "
        f"into `{state.redact(str(report.path))}`; the sidebar now uses this folder."
    )
    if report.skipped:
        shown = ", ".join(report.skipped[:5]) + (", …" if len(report.skipped) > 5 else "")
        text += f" Skipped {len(report.skipped)} files that are not images in a class folder ({shown})."
    return text


def open_source() -> DataSource:
    """The sidebar's source, opened with a progress bar; stops the page with a clear message.

    The tfds dataset is only opened here when it is prepared; otherwise the page follows (or
    offers to start) the worker's job that prepares it, and stops.
    """
    with errors.shown(stop=True):  # a path outside the data roots: nothing is opened or listed
        slot = state.source_slot()
    if slot.opened is not None:
        return slot.opened
    with errors.shown(hint="Choose another dataset source or folder in the sidebar.", stop=True):
        try:
            with progress_bar() as bar:
                return slot.open(progress=bar, download=False)
        except NotFoundError as exc:
            if slot.data.source != "tfds":
                raise
            missing = exc
    data_job.offer_download(state.store(), slot.data, missing)


def counts_chart(description: dict) -> None:
    st.subheader("Label counts")
    left, right = st.columns(2)
    split = left.segmented_control(
        "Split", ["all", *SPLITS], default="train", key="counts_split", persist_state="session"
    )
    order = right.segmented_control(
        "Sort by", ["count", "name", "species"], default="count", key="counts_sort", persist_state="session"
    )
    figure = label_counts_bar(counts_by_class(description, split, order))
    st.plotly_chart(figure, key="label_counts_chart")


def sample_grid(source: DataSource, key: tuple) -> None:
    st.subheader("Random samples")
    classes = source.class_names
    kinds = sorted({species_of(name) for name in classes})
    cols = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
    split = cols[0].selectbox("Split", SPLITS, key="sample_split", persist_state="session")
    kind = cols[1].selectbox("Species", ["all", *kinds], key="sample_species", persist_state="session")
    shown = [n for n in classes if kind == "all" or species_of(n) == kind]
    breed = cols[2].selectbox("Breed", ["all", *shown], key="sample_breed", persist_state="session")
    if cols[3].button("Reshuffle", key="reshuffle_samples", icon=":material/shuffle:"):
        st.session_state["sample_seed"] = st.session_state.get("sample_seed", 0) + 1
    indices = sample_indices(
        source.labels(split),
        classes,
        SAMPLES,
        st.session_state.get("sample_seed", 0),
        breed=None if breed == "all" else breed,
        species_name=None if kind == "all" else kind,
    )
    if not indices:
        st.info("No images in this split match the filter.")
        return
    examples = {i: state.load_example(source, key, split, i) for i in indices}
    grid = st.columns(GRID_COLUMNS)
    for n, (image, label, name) in enumerate(examples.values()):
        grid[n % GRID_COLUMNS].image(thumbnail(image, 200, square=True), caption=f"{classes[label]} · {name}")

    st.subheader("Full size")
    chosen = st.selectbox(
        "Image",
        indices,
        format_func=lambda i: f"{examples[i][2]} ({classes[examples[i][1]]})",
        key="full_image",
    )
    image, label, name = examples[chosen]
    height, width, channels = image.shape
    st.markdown(
        f"**{literal(classes[label])}** · `{name}` · shape **{height} × {width} × {channels}** (uint8 RGB)"
    )
    st.image(image, caption=f"{name}: {width}×{height} px")


title, reload = st.columns([4, 1], vertical_alignment="bottom")
title.title("Dataset")
reload.button(
    "Reload",
    key="reload_dataset",
    icon=":material/refresh:",
    on_click=state.forget_source,
    help="Read the dataset again, e.g. after adding images or class folders.",
)
zip_import()
source = open_source()
description = source.describe()
for column, (label, value) in zip(st.columns(4), headline_counts(description).items(), strict=True):
    column.metric(label, value)
counts_chart(description)
data = state.data_config()
curation.draw_curated_counts(source, data)
sample_grid(source, (data.source, data.path, str(state.workspace())))
