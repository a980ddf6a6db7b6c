"""Label issues page: the training and validation images whose labels a finished run's features dispute.

The ranking is a job of the worker (core.training.label_issues: k heads on the cached features,
out-of-fold predictions, ranked with cleanlab); this page queues it, follows it, and shows the
most suspect images with their given and suggested label. Marking an image keep / exclude /
relabel saves it at once in the workspace (core.curation.marks, ui.curation); the next run on the
same dataset trains on the curated data, and its config records which curation that was.
"""

from __future__ import annotations

import streamlit as st

from core.curation.ranking import read_ranking
from core.runs.records import LABEL_ISSUES
from core.runs.requests import latest_analysis
from ui import curation, errors, state, widgets
from ui.job_panel import follow_job

NO_RUNS = "There is no finished run to study yet: train one on the Training page first."

st.title("Label issues")
st.caption(
    "Photos whose label the model disputes: each is predicted by a head that never saw it, and "
    "ranked by how strongly that prediction disagrees with its label. Relabel or exclude the wrong "
    "ones; the next run trains on the curated data."
)
store = state.store()
run, _ = widgets.pick_finished_run(store, "Run", "label_issues_run", NO_RUNS)
job = latest_analysis(store, LABEL_ISSUES, run.id)
if job is not None and job.active:
    follow_job(store, job.id, job.status, curation.RANKING)
    st.stop()
ranking = read_ranking(store.paths(job.id).label_issues) if job is not None and job.status == "done" else None
if ranking is None:
    if job is not None and job.status == "done":
        errors.show(f"The ranking of run {job.id} is missing or damaged; find the label issues again.")
    curation.offer_ranking(store, run, job)
    st.stop()
curation.review(store, job, ranking)
