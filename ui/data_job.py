"""The dataset download in the dashboard: the Dataset page's offer, progress and Cancel; the sidebar's note.

Downloading and preparing a dataset is a job of the worker process (core.training.prepare),
queued here (core.runs.requests.queue_prepare: a second request joins the running job) and
followed through the registry only, so leaving or reloading a page never stops it, and every
page and tab shows it. A panel polls once a second while a job is queued or running; with no
job the sidebar costs one small registry read per rerun and polls nothing.
"""

from __future__ import annotations

from typing import NoReturn

import streamlit as st

from core.config import DataConfig
from core.errors import NotFoundError
from core.runs import worker_process as jobs
from core.runs.requests import last_prepare_job, prepare_job, preparing, queue_prepare
from core.runs.store import RunStore
from core.tables.runs import prepare_progress
from ui import errors, state
from ui.job_panel import JobPanel, follow_job, last_outcome

DATA_PAGE = "views/dataset.py"
DOWNLOAD_ICON = ":material/download:"


def offer_download(store: RunStore, data: DataConfig, missing: NotFoundError) -> NoReturn:
    """The tfds data is not prepared: follow the job preparing it, or offer to start one. Stops the page."""
    job = prepare_job(store, data)
    if job is not None:
        follow_job(store, job.id, job.status, DOWNLOAD)
        st.stop()
    last = last_prepare_job(store, data)
    last_outcome(last, DOWNLOAD)
    st.info(errors.sentence(missing), icon=DOWNLOAD_ICON)
    if st.button(
        "Download and prepare the dataset", key="prepare_dataset", type="primary", icon=DOWNLOAD_ICON
    ):
        with errors.shown():
            queue_prepare(store, data)
            jobs.start_worker(store.workspace)
            st.rerun()  # the page now follows the job
    st.stop()


DOWNLOAD = JobPanel(
    key="prepare",
    noun="the download",
    background="The download runs in the background: you can leave this page or close the tab; "
    "only Cancel stops it.",
    progress=prepare_progress,
)


def sidebar_note() -> None:
    """A compact note on every page while a dataset is being prepared (one small read when none is)."""
    with errors.shown():
        store = state.store()
        job = preparing(store)
        if job is not None:
            sidebar_progress(store, job.id)


@st.fragment(run_every=1)
def sidebar_progress(store: RunStore, job_id: int) -> None:
    """The running job's progress in the sidebar, read every second; the page runs again once it ends."""
    job = store.get(job_id)
    if not job.active:
        st.rerun()
    fraction, text = prepare_progress(job)
    st.progress(fraction, text=f"Preparing the dataset · {text}")
    st.page_link(DATA_PAGE, label="Follow it on the Dataset page", icon=DOWNLOAD_ICON)
