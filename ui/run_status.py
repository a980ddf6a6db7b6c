"""The run the Training page follows: its heading, one small panel per status, Cancel and Resume.

Every panel reads the typed run record (core.runs.records: `record.live` for progress) and
has the same signature, so `show` picks one by the status a person sees ("broken" included).
A sweep or a learning-rate finder pass is followed like a run: a sweep's bar says which
setting and epoch it is at, and a cancel stops it before the next setting.
"""

from __future__ import annotations

import time

import streamlit as st

from core.errors import PetLabError
from core.runs import worker_process as jobs
from core.runs.records import EMBEDDING, LABEL_ISSUES, LR_FIND, PREPARE, SWEEP, RunRecord
from core.runs.requests import resumable_epoch, resume_run
from core.runs.store import RunStore
from core.tables.runs import epoch_seconds, estimate_eta, format_duration, result_summary
from core.tables.sweeps import sweep_progress
from ui import errors, state

STATUS_ICONS = {
    "queued": ":material/hourglass_top:",
    "running": ":material/directions_run:",
    "done": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/stop_circle:",
    "broken": ":material/broken_image:",
}
RESUME_ERROR = "resume_error"  # why the last Resume click failed, shown once
EPOCH_SECONDS = "epoch_seconds"  # ((run, epoch), finished epochs' seconds) of the followed run
ETA_MARKS = "eta_marks"  # {"<run>:<epoch>": (time, step) when this session first saw that epoch}
PREPARING = "Preparing the data and building the model…"


def queued_toast(store: RunStore, run_id: int, what: str) -> None:
    """Say a run was queued, and behind which run when another one is training."""
    active = store.active()
    behind = f"; it starts when run {active.id} ends" if active and active.id != run_id else ""
    st.toast(f"Run {run_id} queued{what}{behind}", icon=":material/rocket_launch:")


def resume(store: RunStore, run_id: int) -> None:
    """The Resume button's callback: runs before the page is drawn again, so it shows the new status."""
    try:
        done = resume_run(store, run_id)
        jobs.start_worker(store.workspace)
    except PetLabError as exc:  # a callback draws nothing: `show` shows it on the rerun that follows
        st.session_state[RESUME_ERROR] = errors.sentence(exc)
        return
    queued_toast(store, run_id, f" to resume after epoch {done}")


def describe_kind(record: RunRecord) -> str:
    """What a run does, in words: 'head training', 'fine-tuning of run 2', 'sweep of 12 settings'."""
    if record.kind == SWEEP:
        return f"sweep of {len(record.config.get('sweep', {}).get('settings', []))} settings"
    if record.kind == LR_FIND:
        return "learning-rate finder"
    if record.kind == EMBEDDING:
        return f"embedding map of run {record.parent}"
    if record.kind == LABEL_ISSUES:
        return f"label issues of run {record.parent}"
    if record.kind == "finetune":
        return f"fine-tuning of run {record.parent}"
    return "head training" if record.parent is None else f"head training (winner of sweep {record.parent})"


def heading(record: RunRecord) -> str:
    """'#### <icon> Run 3: fine-tuning of run 2 · mobilenetv3small · status **running**'."""
    what = describe_kind(record)
    icon = STATUS_ICONS.get(record.shown_status, "")
    return f"#### {icon} Run {record.id}: {what} · {record.train.backbone} · status **{record.shown_status}**"


def eta_text(store: RunStore, record: RunRecord) -> str:
    """'about 3 min 05 s left', from finished epochs or, in the first one, the speed seen so far."""
    p = record.live
    marks = st.session_state.setdefault(ETA_MARKS, {})
    mark = marks.setdefault(f"{record.id}:{p.epoch}", (time.time(), p.step or 0))
    eta = estimate_eta(p, finished_epoch_seconds(store, record), mark, time.time())
    return "estimating time left…" if eta is None else f"about {format_duration(eta)} left"


def finished_epoch_seconds(store: RunStore, record: RunRecord) -> list[float]:
    """The run's epoch times, read once per epoch (not at every poll of the live panel)."""
    key = (record.id, record.live.epoch)
    cached = st.session_state.get(EPOCH_SECONDS)
    if cached is None or cached[0] != key:
        cached = (key, epoch_seconds(store.history(record.id)))
        st.session_state[EPOCH_SECONDS] = cached
    return cached[1]


def running(store: RunStore, record: RunRecord, records: list[RunRecord]) -> None:
    """A bar: preparing (a stage with counts, if reported), then epoch and batch with the time left."""
    p = record.live
    if record.kind == SWEEP:
        fraction, text = sweep_progress(record)
        st.progress(fraction, text=text)
    elif p.training:
        step = p.step or 0
        text = f"Epoch {p.epoch} of {p.epochs} · batch {step} of {p.steps} · {eta_text(store, record)}"
        st.progress(min(1.0, step / p.steps), text=text)
    elif p.stage and p.total:
        st.progress(min(1.0, (p.done or 0) / p.total), text=f"{p.stage.capitalize()}: {p.done} of {p.total}")
    else:
        st.progress(0.0, text=PREPARING)
    st.caption(f"Running for {format_duration(record.duration)}.")


def queued(store: RunStore, record: RunRecord, records: list[RunRecord]) -> None:
    """Behind which run it waits; a button to start the worker when nothing picks the queue up."""
    download = (
        r for r in reversed(records) if r.status == "queued" and r.kind == PREPARE and r.id < record.id
    )
    running = (
        r for r in records if r.status == "running" and (r.trains or r.experiment or r.kind == PREPARE)
    )
    active = next(running, None) or next(download, None)
    if active is None:
        behind = ""
    elif active.kind == PREPARE:
        behind = f" behind the dataset download (run {active.id})"
    else:
        behind = f" behind run {active.id}"
    text = f"Run {record.id} is queued{behind}; it starts when the worker is free."
    st.info(text, icon=STATUS_ICONS["queued"])
    if jobs.queue_stalled(store, records):
        st.warning("No training process is picking up the queue (the worker stopped).")
        if st.button("Start the worker", key="resume_queue"):
            jobs.start_worker(store.workspace)


def done(store: RunStore, record: RunRecord, records: list[RunRecord]) -> None:
    st.success(f"Run {record.id} is done: {done_summary(record)}.", icon=STATUS_ICONS["done"])


def done_summary(record: RunRecord) -> str:
    """A finished run's results in words; an experiment's say what it found."""
    if record.kind == LR_FIND:
        lr = record.metrics.get("suggested_lr")
        return "no learning rate to suggest" if lr is None else f"suggested learning rate {lr:.2g}"
    if record.kind == SWEEP and record.metrics.get("winner") is not None:
        return f"the winner is run {record.metrics['winner']}, {result_summary(record)}"
    return result_summary(record)


def broken(store: RunStore, record: RunRecord, records: list[RunRecord]) -> None:
    st.error(record.broken, icon=STATUS_ICONS["broken"])


def failed(store: RunStore, record: RunRecord, records: list[RunRecord]) -> None:
    """Why it failed, Resume when a backup holds a finished epoch, and the worker's log."""
    st.error(f"Run {record.id} failed: {state.redact(record.error or '')}", icon=STATUS_ICONS["failed"])
    epochs_done = resumable_epoch(store, record.id)
    if epochs_done:
        st.button(
            f"Resume from epoch {epochs_done + 1}",
            key="resume_run",
            icon=":material/replay:",
            help="Continue training from the last finished epoch's backup.",
            on_click=resume,
            args=(store, record.id),
        )
    worker_log(store)


def cancelled(store: RunStore, record: RunRecord, records: list[RunRecord]) -> None:
    text = f"Run {record.id} was cancelled; the best weights so far are kept."
    if record.kind == SWEEP:
        winner = record.metrics.get("winner")
        kept = f"; the best of them is run {winner}" if winner is not None else ""
        text = f"Sweep {record.id} was cancelled; the settings that finished are kept{kept}."
    st.warning(text, icon=STATUS_ICONS["cancelled"])


PANELS = {
    "running": running,
    "queued": queued,
    "done": done,
    "broken": broken,
    "failed": failed,
    "cancelled": cancelled,
}


def worker_log(store: RunStore) -> None:
    """The end of the training process' log, folded away."""
    tail = jobs.log_tail(store.workspace)
    if tail:
        with st.expander("Worker log"):
            st.code(tail, language=None)


def cancel_control(store: RunStore, record: RunRecord) -> None:
    """The Cancel button of a queued or running run, or the note that it is stopping."""
    if record.cancel_requested:
        if record.kind == SWEEP:
            st.warning("Stopping after the current setting; the settings that finished are kept.")
        else:
            st.warning("Stopping at the next batch; the best weights so far are kept.")
        return
    st.button(
        "Cancel run",
        key="cancel_run",
        icon=":material/stop:",
        on_click=store.request_cancel,
        args=(record.id,),
    )


def queued_behind(record: RunRecord, records: list[RunRecord]) -> None:
    """Which other runs wait in the queue."""
    waiting = sorted(
        r.id for r in records if r.status == "queued" and (r.trains or r.experiment) and r.id != record.id
    )
    if waiting:
        st.caption("Also queued: " + ", ".join(f"run {i}" for i in waiting))


def show(store: RunStore, record: RunRecord, records: list[RunRecord]) -> None:
    """The followed run: heading, a failed Resume's reason, its status panel, Cancel, the queue behind."""
    st.markdown(heading(record))
    if RESUME_ERROR in st.session_state:
        errors.show(st.session_state.pop(RESUME_ERROR))
    panel = PANELS.get(record.shown_status)
    if panel:
        panel(store, record, records)
    if record.status in ("queued", "running"):
        cancel_control(store, record)
    queued_behind(record, records)
