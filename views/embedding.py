"""Embedding map page: every image of a split as a point, placed by what a finished run's backbone sees.

Pick a finished run and a split. Without a finished map, the page offers to compute one (a worker
job, ui.embedding) and follows it; with one, it draws the map coloured by breed or cat/dog, with a
class to highlight, shows a hovered point's photo beside the cursor (ui.map_photos), and the photo
of a clicked point large or a gallery of a box or lasso selection. No TensorFlow: the map is read
from the job's folder, the photos from the run's data source.
"""

from __future__ import annotations

import streamlit as st

from core.config import SPLITS
from core.embeddings.maps import DEFAULT_SPLIT, latest_map_job
from ui import embedding, state, widgets
from ui.job_panel import follow_job

NO_RUNS = "There is no finished run to map yet: train one on the Training page first."

st.title("Embedding map")
st.caption(
    "Each image of a split becomes a point; images the model's backbone finds alike land close together. "
    "Mislabelled or unusual photos stand out as points among another breed's."
)
store = state.store()
record, _ = widgets.pick_finished_run(store, "Run", "map_run", NO_RUNS)
split = st.segmented_control(
    "Split", SPLITS, default=DEFAULT_SPLIT, required=True, key="map_split", persist_state="session"
)
job = latest_map_job(store, record.id, split)
if job is not None and job.active:
    follow_job(store, job.id, job.status, embedding.MAP_JOB)
elif job is not None and job.status == "done":
    embedding.map_view(store, record, job)
else:
    embedding.offer(store, record, split, job)
