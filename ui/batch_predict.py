"""The Predict page's section for many photos: a zip or a folder in; a CSV, a table and a gallery out.

The photos go through the page's background-loaded model (core.inference.batch.predict_folder,
imported once the engine is ready), with a progress bar. The outcome is kept per model and
source for the later reruns, so filtering the gallery by predicted class reads no photo twice
and predicts nothing again; only the (at most GALLERY_CAP) thumbnails shown are decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from core.data.images import decode_image
from core.data.roots import resolve_within_roots
from core.errors import BadInputError, PetLabError
from core.tables.dataset import thumbnail
from core.tables.predictions import BatchResult, columns, predictions_csv, table_rows
from ui import engine, errors, state, widgets

if TYPE_CHECKING:
    from core.inference.batch import Source
    from core.inference.predict import Predictor

SECTION = "Many photos: a folder or zip"
RESULT = "batch_result"  # session state: (model and source, BatchResult or None, error sentence or None)
GALLERY_CAP = 60
GALLERY_COLUMNS = 6
UNREADABLE_SHOWN = 50


def section(loading: engine.Loading[Predictor], model_key: tuple, top_k: int) -> None:
    """The expander: choose a zip or folder, predict it once, then show the CSV, table and gallery."""
    with st.expander(SECTION, icon=":material/photo_library:"):
        st.caption(
            "Upload a zip of photos, or give a folder on the server: every photo in it (sub-folders too) "
            "gets its top classes, in a table you can download."
        )
        source, source_key = choose_source()
        if source is None:
            return
        key = (*model_key, *source_key)
        kept = st.session_state.get(RESULT)
        if kept is None or kept[0] != key:
            kept = st.session_state[RESULT] = (key, *run_batch(loading, source, top_k))
        _, result, error = kept
        if error:
            errors.show(error)
        elif result is not None:
            show_result(result, source, key)


def choose_source() -> tuple[Source | None, tuple]:
    """The uploaded zip, or the folder typed (inside the data roots) and confirmed; (None, ()) before."""
    upload = st.file_uploader(
        "Zip of photos", type=["zip"], key="batch_zip", max_upload_size=state.ZIP_UPLOAD_MB
    )
    if upload is not None:
        return upload, ("zip", upload.file_id)
    text = st.text_input(
        "…or a folder on the server",
        key="batch_folder",
        placeholder="pets/new-photos",
        help="A folder inside the data folders this dashboard may read (its workspace and start folder).",
    ).strip()
    kept = st.session_state.get(RESULT)
    asked = st.button("Predict the folder", key="batch_folder_go", disabled=not text)
    if not text:
        return None, ()
    with errors.shown():
        folder = resolve_within_roots(text, state.data_roots())
        if not folder.is_dir():
            raise BadInputError(f"{text} is not a folder; type the path of a folder of photos.")
        source_key = ("folder", str(folder))
        if asked and kept is not None and kept[0][-2:] == source_key:
            del st.session_state[RESULT]  # asked again: the folder may have changed
        if asked or (kept is not None and kept[0][-2:] == source_key):
            return folder, source_key
    return None, ()


def run_batch(
    loading: engine.Loading[Predictor], source: Source, top_k: int
) -> tuple[BatchResult | None, str | None]:
    """(result, None) or (None, the error's sentence), the photos predicted with a progress bar."""
    try:
        engine.wait_drawn(engine.start())
        engine.wait_drawn(loading, "Loading the model…")
        from core.inference.batch import predict_folder

        with widgets.progress_bar() as bar:
            return predict_folder(loading.result(), source, top_k, progress=bar), None
    except PetLabError as exc:
        return None, errors.sentence(exc)


def show_result(result: BatchResult, source: Source, key: tuple) -> None:
    """Summary, the CSV download, the unreadable files, the table and the gallery."""
    if not result.predicted and not result.unreadable:
        st.info("No photos (jpg, png, webp, …) were found there.", icon=":material/image_not_supported:")
        return
    st.success(
        f"Predicted {result.predicted} photos; {len(result.unreadable)} could not be read.",
        icon=":material/check_circle:",
    )
    st.download_button(
        "Download the CSV",
        predictions_csv(result),
        file_name="predictions.csv",
        mime="text/csv",
        key="batch_csv",
        on_click="ignore",
        icon=":material/download:",
        disabled=not result.predicted,
    )
    show_unreadable(result.unreadable)
    if result.predicted:
        names = columns(result.top_k)
        st.dataframe([dict(zip(names, row, strict=True)) for row in table_rows(result)], hide_index=True)
        gallery(result, source, key)


def show_unreadable(unreadable: list[tuple[str, str]]) -> None:
    if not unreadable:
        return
    st.warning(
        f"{len(unreadable)} files could not be read and are not in the CSV:", icon=":material/broken_image:"
    )
    lines = [f"- `{file}`: {errors.sentence(reason)}" for file, reason in unreadable[:UNREADABLE_SHOWN]]
    if len(unreadable) > UNREADABLE_SHOWN:
        lines.append(f"- … and {len(unreadable) - UNREADABLE_SHOWN} more")
    st.markdown("\n".join(lines))


def gallery(result: BatchResult, source: Source, key: tuple) -> None:
    """Thumbnails of the photos, filtered by their most likely class, at most GALLERY_CAP at once."""
    counts = result.class_counts()
    chosen = st.selectbox(
        "Show photos predicted as",
        [None, *counts],
        format_func=lambda c: f"every class ({result.predicted})" if c is None else f"{c} ({counts[c]})",
        key="batch_class",
    )
    rows = result.with_class(chosen)
    shown = rows[:GALLERY_CAP]
    if len(rows) > GALLERY_CAP:
        st.caption(f"The first {GALLERY_CAP} of {len(rows)} photos.")
    images = thumbnails(source, key, tuple(file for file, _ in shown))
    grid = st.columns(GALLERY_COLUMNS)
    for index, ((file, top), image) in enumerate(zip(shown, images, strict=True)):
        cell = grid[index % GALLERY_COLUMNS]
        best, probability = top[0]
        caption = f"{Path(file).name} · {best} {100 * probability:.0f}%"
        if image is None:
            cell.caption(caption)
        else:
            cell.image(image, caption=caption)


@st.cache_data(max_entries=16, show_spinner=False)
def thumbnails(_source: Source, key: tuple, files: tuple[str, ...]) -> list[np.ndarray | None]:
    """Small square thumbnails of `files` of the source `key` names (None for one that is gone)."""
    from core.inference.batch import open_photos, read_photo

    images: list[np.ndarray | None] = []
    with open_photos(_source) as photos:
        readers = dict(photos)
        for file in files:
            data, error = read_photo(file, readers[file]) if file in readers else (None, "gone")
            try:
                images.append(None if error else thumbnail(decode_image(data, file), 160, square=True))
            except PetLabError:  # changed on disk since the prediction
                images.append(None)
    return images
