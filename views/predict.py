"""Predict page: photos in, top-5 breeds with probabilities out, from a finished run's model.

The page draws its run picker and uploader without TensorFlow. Choosing a run starts loading
its model in the background (ui.engine: the engine's import first, then the model and its
Grad-CAM, each traced once on a blank image). Until the model is loaded, photos are answered by
the run's LiteRT copy (core.predictions.lite: no TensorFlow, a fraction of a second), so even a
fresh server's first photo is answered at once. All the photos go through the model in one
batch and their top-5 are drawn first; then, beside each, a Grad-CAM overlay shows where the
model looked for the top breed (or any other class picked under it), each in a fragment of its
own, so picking a class redraws only that photo's overlay.
Many photos at once (a zip or a folder, to a CSV and a gallery) have a section of their own
(ui.batch_predict).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.data.images import IMAGE_EXTENSIONS, decode_image
from core.predictions.answers import PhotoPredictor, Prediction
from core.predictions.lite import LitePredictor, lite_predictor
from core.runs.layout import RunPaths
from core.runs.records import RunRecord
from core.runs.store import RunStore
from core.tables.dataset import thumbnail
from core.tables.evaluation import class_choices
from ui import batch_predict, engine, errors, state, widgets

if TYPE_CHECKING:
    from core.inference.explain import GradCam
    from core.inference.predict import Predictor

TOP_K = 5
# Offered too so that core can say clearly why such a photo cannot be read.
EXTRA_TYPES = ("heic", "heif", "avif")
GRADCAM_SPINNER = "Computing the Grad-CAM heatmap…"
PREPARING_GRADCAM = "Preparing Grad-CAM for this model…"
GRADCAM_FOLLOWS = "Grad-CAM follows…"
OPACITY = "gradcam_alpha"
DEFAULT_OPACITY = 0.4


@st.cache_resource(max_entries=4, show_spinner=False)
def model_loading(
    workspace: str, run_id: int, model_mtime: float, _store: RunStore, _engine: engine.Loading
) -> engine.Loading[Predictor]:
    """One model per (run, model file version), loaded in the background and kept for every later photo."""
    return engine.Loading(lambda: ready_predictor(_store, run_id, _engine), f"petlab-model-{run_id}")


def ready_predictor(store: RunStore, run_id: int, engine_loading: engine.Loading) -> Predictor:
    """The run's predictor, its forward pass traced: what the background load of a model does."""
    engine_loading.result()
    from core.inference.predict import Predictor

    predictor = Predictor.for_run(store, run_id)
    predictor.warm_up()
    return predictor


@st.cache_resource(max_entries=4, show_spinner=False)
def lite_model(workspace: str, run_id: int, model_mtime: float, copy_mtime: float) -> LitePredictor | None:
    """The run's LiteRT predictor, or None (no LiteRT, no current copy, or a copy it cannot read).

    Keyed by the copy's time too: a copy written while the server runs (`python -m core lite-copy`) is used.
    """
    try:
        return lite_predictor(RunPaths.of(workspace, run_id))
    except Exception:  # a damaged copy: the Keras model answers, as for a run without one
        return None


def lite_until_loaded(loading: engine.Loading[Predictor], copy_key: tuple) -> LitePredictor | None:
    """The run's LiteRT predictor while its Keras model loads; None once it has (the copy's memory,
    0.2 GB for ResNet50V2, is then freed: the Keras model answers from now on)."""
    if loading.ready():
        lite_model.clear(*copy_key)
        return None
    return lite_model(*copy_key)


def answering(loading: engine.Loading[Predictor], lite: LitePredictor | None, run_id: int) -> PhotoPredictor:
    """The Keras predictor once it is loaded; until then the LiteRT copy, or a wait for the Keras one."""
    if lite is not None and not loading.ready():
        return lite
    engine.wait_drawn(engine.start())
    engine.wait_drawn(loading, f"Loading the model of run {run_id}…")
    return loading.result()


@st.cache_data(max_entries=32, show_spinner=False)
def predictions(
    _predictor: PhotoPredictor, model_key: tuple, kind: str, items: list[tuple[str, bytes]]
) -> list[Prediction]:
    """Top-5 of every photo, in one batch; `model_key` and `kind` name the predictor for the cache."""
    return _predictor.predict_many(items, top_k=TOP_K)


@st.cache_resource(max_entries=4, show_spinner=False)
def explainer_loading(
    workspace: str, run_id: int, model_mtime: float, _model: engine.Loading[Predictor]
) -> engine.Loading[GradCam]:
    """One Grad-CAM per (run, model file version), built and traced in the background once the model is."""
    return engine.Loading(lambda: ready_explainer(_model.result()), f"petlab-gradcam-{run_id}")


def ready_explainer(predictor: Predictor) -> GradCam:
    """Grad-CAM on the predictor's model, its gradient pass traced on a blank image (the slow first call)."""
    from core.inference.explain import GradCam

    explainer = GradCam(predictor.model)
    explainer(np.zeros((predictor.image_size, predictor.image_size, 3), np.uint8))
    return explainer


@st.cache_data(max_entries=256, show_spinner=False)
def gradcam_heatmap(
    _explainer: GradCam, model_key: tuple, image: np.ndarray, class_index: int
) -> tuple[np.ndarray, int]:
    """(heatmap at the image's size, class explained); `model_key` names the explainer for the cache."""
    return _explainer(image, class_index)


def photos() -> list[tuple[str, bytes]]:
    types = [e.lstrip(".") for e in IMAGE_EXTENSIONS] + list(EXTRA_TYPES)
    uploads = st.file_uploader(
        "Photos",
        type=types,
        accept_multiple_files=True,
        key="predict_upload",
        max_upload_size=state.PHOTO_UPLOAD_MB,
    )
    items = [(u.name, u.getvalue()) for u in uploads or []]
    if st.toggle("Take a photo with the camera", key="use_camera"):
        shot = st.camera_input("Camera", key="camera_photo")
        if shot is not None:
            items.append(("camera photo", shot.getvalue()))
    return items


def show_top5(index: int, image: np.ndarray | None, prediction: Prediction) -> DeltaGenerator | None:
    """One photo's card: the photo and its top-5 (or why it cannot be read); returns the Grad-CAM slot."""
    with st.container(border=True):
        if prediction.error:
            left, right = st.columns([1, 2], vertical_alignment="center")
            left.markdown(f"**{widgets.literal(prediction.name)}**")
            right.error(errors.sentence(prediction.error), icon=":material/broken_image:")
            return None
        left, middle, right = st.columns([1, 1, 2], vertical_alignment="center")
        left.image(image, caption=prediction.name)
        best, probability = prediction.top[0]
        right.markdown(f"Most likely **{widgets.literal(best)}** ({100 * probability:.1f}%)")
        with right:
            widgets.top_predictions(prediction.top, f"top5_{index}")
        slot = middle.empty()
        slot.caption(GRADCAM_FOLLOWS)
        return slot


def photo_thumbnail(data: bytes, name: str) -> np.ndarray:
    return thumbnail(decode_image(data, name), 320)


@st.fragment
def explain(
    index: int,
    image: np.ndarray,
    prediction: Prediction,
    predictor: PhotoPredictor,
    model_key: tuple,
    explainer: engine.Loading[GradCam],
) -> None:
    """The Grad-CAM overlay of one photo, for the class picked in its own selectbox (reruns alone)."""
    from core.inference.explain import overlay

    names = predictor.class_names
    top = dict(prediction.top)
    chosen = st.selectbox(
        "Explain class",
        class_choices(names, prediction.top),
        key=f"gradcam_class_{index}",
        format_func=lambda i: f"{names[i]} ({100 * top[names[i]]:.1f}%)" if names[i] in top else names[i],
        help="Grad-CAM: the parts of the photo that raised this class's score the most are red.",
    )
    with errors.shown():
        engine.wait_drawn(explainer, PREPARING_GRADCAM)
        with st.spinner(GRADCAM_SPINNER):
            heatmap, explained = gradcam_heatmap(explainer.result(), model_key, image, int(chosen))
        alpha = st.session_state.get(OPACITY, DEFAULT_OPACITY)
        st.image(overlay(image, heatmap, alpha), caption=f"Grad-CAM: {names[explained]}")


def opacity_slider() -> None:
    st.columns([1, 2])[0].slider(
        "Grad-CAM opacity",
        0.0,
        1.0,
        DEFAULT_OPACITY,
        0.05,
        key=OPACITY,
        help="How strongly the heatmap is painted over each photo.",
    )


def file_time(path: Path) -> float:
    """The file's modification time, 0 when it is missing: what names its version in the caches."""
    return path.stat().st_mtime if path.exists() else 0.0


def choose_run(store: RunStore) -> RunRecord:
    record, _ = widgets.pick_finished_run(
        store, "Model", "predict_run", "There is no finished run yet: train one on the Training page first."
    )
    return record


st.title("Predict")
store = state.store()
record = choose_run(store)
items = photos()
paths = store.paths(record.id)
model_key = (str(store.workspace), record.id, file_time(paths.model))
# From now on in the background: the model, then Grad-CAM on it (traced once, its slow part).
loading = model_loading(*model_key, store, engine.start())
gradcam = explainer_loading(*model_key, loading)
lite = lite_until_loaded(loading, (*model_key, file_time(paths.lite_model)))
batch_predict.section(loading, model_key, TOP_K)
if not items:
    st.caption("Upload one or more photos (jpg, png, webp, …) or take one with the camera.")
    st.stop()
with errors.shown(stop=True):
    predictor = answering(loading, lite, record.id)
    with st.spinner("Looking at the photos…"):
        results = predictions(predictor, model_key, type(predictor).__name__, items)
opacity_slider()
# Every photo's top-5 first, then the Grad-CAM overlays into the slots left beside them.
images = [
    None if p.error else photo_thumbnail(data, p.name) for (_, data), p in zip(items, results, strict=True)
]
slots = [show_top5(index, image, p) for index, (image, p) in enumerate(zip(images, results, strict=True))]
for index, (image, prediction, slot) in enumerate(zip(images, results, slots, strict=True)):
    if slot is not None:
        with slot.container():
            explain(index, image, prediction, predictor, model_key, gradcam)
