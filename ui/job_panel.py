"""The panel that follows one job of the worker on a page: its progress, a stalled queue, Cancel.

A dataset download, an embedding map, a label-issue ranking: each is queued in the registry and
carried out by the worker process; a page follows it here, reading the registry once a second (an
st.fragment) only while the job is queued or running, and runs the whole page again once the job's
status changes (it started or ended), so the page then shows the result or says why it failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from core.runs import worker_process as jobs
from core.runs.records import RunRecord
from core.runs.store import RunStore
from ui import errors


@dataclass(frozen=True)
class JobPanel:
    """How the panel names one kind of job: `key` (widget keys `cancel_<key>` and `<key>_start_worker`),
    `noun` ("the download"), `background` (the caption under the bar) and its progress bar."""

    key: str
    noun: str
    background: str
    progress: Callable[[RunRecord], tuple[float, str]]


def last_outcome(last: RunRecord | None, panel: JobPanel) -> None:
    """Why the last job of this kind did not finish, if it failed or was cancelled (before a new offer)."""
    if last is not None and last.status == "failed":
        errors.show(
            f"The last {panel.noun.removeprefix('the ')} (run {last.id}) did not finish: {last.error}"
        )
    elif last is not None and last.status == "cancelled":
        st.caption(f"The last {panel.noun.removeprefix('the ')} (run {last.id}) was cancelled.")


@st.fragment(run_every=1)
def follow_job(store: RunStore, job_id: int, status: str, panel: JobPanel) -> None:
    """Job `job_id`'s progress bar and Cancel button, read every second while its status stays `status`."""
    job = store.get(job_id)
    if job.status != status:
        st.rerun()
    fraction, text = panel.progress(job)
    st.progress(fraction, text=text)
    st.caption(panel.background)
    if job.status == "queued" and jobs.queue_stalled(store):
        st.warning(f"No worker process is picking up {panel.noun} (the worker stopped).")
        if st.button("Start the worker", key=f"{panel.key}_start_worker"):
            with errors.shown():
                jobs.start_worker(store.workspace)
    if not job.cancel_requested:
        st.button(
            f"Cancel {panel.noun}",
            key=f"cancel_{panel.key}",
            icon=":material/stop:",
            on_click=store.request_cancel,
            args=(job.id,),
        )
