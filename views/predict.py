"""Predict page: photos in, top-5 breeds with probabilities out, from a finished run's model.

Beside each prediction, a Grad-CAM overlay shows where the model looked for the
top breed (or any other class picked under it); core.inference.explain computes it from the
predictor's own loaded model. TensorFlow is imported once there is a photo to look at, so
the page draws its run picker and uploader without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from core.data.images import IMAGE_EXTENSIONS, decode_image
from core.runs.records import RunRecord
from core.runs.store import RunStore
from core.tables.dataset import thumbnail
from core.tables.evaluation import class_choices
from ui import charts, errors, state, widgets

if TYPE_CHECKING:
    from core.inference.explain import GradCam
    from core.inference.predict import Prediction, Predictor

TOP_K = 5
# Offered too so that core can say clearly why such a photo cannot be read.
EXTRA_TYPES = ("heic", "heif", "avif")
GRADCAM_SPINNER = "Computing the Grad-CAM heatmap (the first one prepares the model: 10-30 s)…"


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def load_predictor(workspace: str, run_id: int, model_mtime: float) -> Predictor:
    """One loaded model per (run, model file version), kept for every later photo."""
    from core.inference.predict import Predictor

    return Predictor.for_run(state.store(), run_id)


@st.cache_resource(max_entries=4, show_spinner=False)
def load_explainer(workspace: str, run_id: int, model_mtime: float, _predictor: Predictor) -> GradCam:
    """One Grad-CAM per (run, model file version), built on the cached predictor's model."""
    from core.inference.explain import GradCam

    return GradCam(_predictor.model)


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


def show(index: int, data: bytes, prediction: Prediction, explain: Explain) -> None:
    with st.container(border=True):
        if prediction.error:
            left, right = st.columns([1, 2], vertical_alignment="center")
            left.markdown(f"**{prediction.name}**")
            right.error(prediction.error, icon=":material/broken_image:")
            return
        left, middle, right = st.columns([1, 1, 2], vertical_alignment="center")
        image = thumbnail(decode_image(data, prediction.name), 320)
        left.image(image, caption=prediction.name)
        with middle:
            explain(index, image, prediction)
        best, probability = prediction.top[0]
        right.markdown(f"Most likely **{best}** ({100 * probability:.1f}%)")
        right.plotly_chart(charts.prediction_bar(prediction.top), key=f"prediction_chart_{index}")


class Explain:
    """Draws the Grad-CAM overlay of one photo, for the class picked in its own selectbox."""

    def __init__(self, predictor: Predictor, model_key: tuple, alpha: float) -> None:
        self.predictor, self.model_key, self.alpha = predictor, model_key, alpha

    def __call__(self, index: int, image: np.ndarray, prediction: Prediction) -> None:
        from core.inference.explain import overlay

        names = self.predictor.class_names
        top = dict(prediction.top)
        chosen = st.selectbox(
            "Explain class",
            class_choices(names, prediction.top),
            key=f"gradcam_class_{index}",
            format_func=lambda i: f"{names[i]} ({100 * top[names[i]]:.1f}%)" if names[i] in top else names[i],
            help="Grad-CAM: the parts of the photo that raised this class's score the most are red.",
        )
        with errors.shown():
            explainer = load_explainer(*self.model_key, self.predictor)
            with st.spinner(GRADCAM_SPINNER):
                heatmap, explained = gradcam_heatmap(explainer, self.model_key, image, int(chosen))
            st.image(overlay(image, heatmap, self.alpha), caption=f"Grad-CAM: {names[explained]}")


def choose_run(store: RunStore) -> RunRecord:
    record, _ = widgets.pick_finished_run(
        store, "Model", "predict_run", "There is no finished run yet: train one on the Training page first."
    )
    return record


st.title("Predict")
store = state.store()
record = choose_run(store)
items = photos()
if not items:
    st.caption("Upload one or more photos (jpg, png, webp, …) or take one with the camera.")
    st.stop()
model = store.paths(record.id).model
model_key = (str(store.workspace), record.id, model.stat().st_mtime if model.exists() else 0.0)
with errors.shown(stop=True):
    predictor = load_predictor(*model_key)
    with st.spinner("Looking at the photos…"):
        results = predictor.predict_many(items, top_k=TOP_K)
alpha = st.columns([1, 2])[0].slider(
    "Grad-CAM opacity",
    0.0,
    1.0,
    0.4,
    0.05,
    key="gradcam_alpha",
    help="How strongly the heatmap is painted over each photo.",
)
explain = Explain(predictor, model_key, alpha)
for index, ((_, data), prediction) in enumerate(zip(items, results, strict=True)):
    show(index, data, prediction, explain)
