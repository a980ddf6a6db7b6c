"""Predict page: photos in, top-5 breeds with probabilities out, from a finished run's model."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from core.dashboard import model_path, predictable_runs, thumbnail
from core.errors import PetLabError
from core.images import IMAGE_EXTENSIONS, decode_image
from core.predict import Prediction, Predictor
from core.registry import RunRecord, RunStore
from ui import state

TOP_K = 5
# Offered too so that core can say clearly why such a photo cannot be read.
EXTRA_TYPES = ("heic", "heif", "avif")


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def load_predictor(workspace: str, run_id: int, model_mtime: float) -> Predictor:
    """One loaded model per (run, model file version), kept for every later photo."""
    return Predictor.for_run(state.store(), run_id)


def run_label(record: RunRecord) -> str:
    m = record.metrics
    parts = [f"run {record.id}", record.config["train"]["backbone"]]
    if record.kind == "finetune":
        parts.append(f"fine-tuned from run {record.parent}")
    if m.get("best_val_accuracy") is not None:
        parts.append(f"val {100 * m['best_val_accuracy']:.1f}%")
    if m.get("test_accuracy") is not None:
        parts.append(f"test {100 * m['test_accuracy']:.1f}%")
    return " · ".join(parts)


def photos() -> list[tuple[str, bytes]]:
    types = [e.lstrip(".") for e in IMAGE_EXTENSIONS] + list(EXTRA_TYPES)
    uploads = st.file_uploader(
        "Photos", type=types, accept_multiple_files=True, key="predict_upload",
        max_upload_size=state.PHOTO_UPLOAD_MB,
    )  # fmt: skip
    items = [(u.name, u.getvalue()) for u in uploads or []]
    if st.toggle("Take a photo with the camera", key="use_camera"):
        shot = st.camera_input("Camera", key="camera_photo")
        if shot is not None:
            items.append(("camera photo", shot.getvalue()))
    return items


def show(index: int, data: bytes, prediction: Prediction) -> None:
    with st.container(border=True):
        left, right = st.columns([1, 2], vertical_alignment="center")
        if prediction.error:
            left.markdown(f"**{prediction.name}**")
            right.error(prediction.error, icon=":material/broken_image:")
            return
        left.image(thumbnail(decode_image(data, prediction.name), 320), caption=prediction.name)
        best, probability = prediction.top[0]
        right.markdown(f"Most likely **{best}** ({100 * probability:.1f}%)")
        names = [name for name, _ in prediction.top]
        fig = px.bar(
            x=[100 * p for _, p in prediction.top], y=names, orientation="h", text_auto=".1f",
            labels={"x": "probability %", "y": ""},
        )  # fmt: skip
        fig.update_layout(height=60 + 36 * len(names), margin={"t": 10, "b": 10}, xaxis_range=[0, 100])
        fig.update_yaxes(categoryorder="array", categoryarray=names[::-1])
        right.plotly_chart(fig, key=f"prediction_chart_{index}")


def choose_run(store: RunStore) -> RunRecord:
    runs = predictable_runs(store)  # best validation accuracy first: the default
    if not runs:
        st.info("There is no finished run yet: train one on the Training page first.")
        st.page_link("views/training.py", label="Go to Training", icon=":material/model_training:")
        st.stop()
    by_id = {r.id: r for r in runs}
    chosen = st.selectbox("Model", list(by_id), format_func=lambda i: run_label(by_id[i]), key="predict_run")
    return by_id[chosen]


st.title("Predict")
store = state.store()
record = choose_run(store)
items = photos()
if not items:
    st.caption("Upload one or more photos (jpg, png, webp, …) or take one with the camera.")
    st.stop()
path = model_path(store, record.id)
try:
    predictor = load_predictor(
        str(store.workspace), record.id, path.stat().st_mtime if path.exists() else 0.0
    )
    with st.spinner("Looking at the photos…"):
        results = predictor.predict_many(items, top_k=TOP_K)
except PetLabError as exc:
    state.show_error(exc)
    st.stop()
for index, ((_, data), prediction) in enumerate(zip(items, results, strict=True)):
    show(index, data, prediction)
