"""Training page: start head training or fine-tuning, follow the run live, compare runs.

Runs execute in a separate worker process (core.runs.worker_process); this page only queues
them and reads the registry, so a run keeps going when the page is left,
reloaded or the server restarts, and runs started from a terminal show up too.
Every browser session sees the same runs; a run started while another one
trains waits in the queue, and the page says so. A failed run that finished at
least one epoch can be resumed from its backup; the runs table downloads as CSV.
"""

from __future__ import annotations

import time

import pandas as pd
import plotly.express as px
import streamlit as st

from core.errors import PetLabError
from core.runs import worker_process as jobs
from core.runs.requests import queue_finetune_run, queue_head_run, resumable_epoch, resume_run
from core.runs.store import RunRecord, RunStore
from core.tables.runs import (
    current_run,
    estimate_eta,
    finetunable_runs,
    format_duration,
    history_frame,
    runs_csv,
    runs_frame,
)
from ui import state

STATUS_ICONS = {
    "queued": ":material/hourglass_top:",
    "running": ":material/directions_run:",
    "done": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/stop_circle:",
    "broken": ":material/broken_image:",
}
RESUME_ERROR = "resume_error"  # why the last Resume click failed, shown once


def queued_toast(store: RunStore, run_id: int, what: str) -> None:
    """Say a run was queued, and behind which run when another one is training."""
    active = store.active()
    behind = f"; it starts when run {active.id} ends" if active and active.id != run_id else ""
    st.toast(f"Run {run_id} queued{what}{behind}", icon=":material/rocket_launch:")


def start_head(store: RunStore) -> None:
    data = state.data_config()
    try:
        state.check_data_path()  # a path outside the data roots is refused with a message, not ignored
        if data.source != "tfds":  # a wrong folder fails here, not minutes later in the worker
            state.source_slot(data).open(download=False)
        run_id = queue_head_run(store, data, state.train_config())
        jobs.start_worker(store.workspace)
    except PetLabError as exc:
        state.show_error(exc)
        return
    queued_toast(store, run_id, "")


def start_finetune(store: RunStore, parent: int) -> None:
    try:
        run_id = queue_finetune_run(store, parent, state.finetune_config())
        jobs.start_worker(store.workspace)
    except PetLabError as exc:
        state.show_error(exc)
        return
    queued_toast(store, run_id, f": fine-tuning run {parent}")


def resume(store: RunStore, run_id: int) -> None:
    """The Resume button's callback: runs before the page is drawn again, so it shows the new status."""
    try:
        done = resume_run(store, run_id)
        jobs.start_worker(store.workspace)
    except PetLabError as exc:
        st.session_state[RESUME_ERROR] = str(exc)
        return
    queued_toast(store, run_id, f" to resume after epoch {done}")


def settings_summary(values: dict) -> None:
    st.markdown(" · ".join(f"{name} **{value}**" for name, value in values.items()))


def start_section(store: RunStore) -> None:
    head, tune = st.columns(2, gap="large")
    with head, st.container(border=True):
        st.subheader("Head training")
        t, d = state.train_config(), state.data_config()
        settings_summary(
            {"data": d.source, "backbone": t.backbone, "weights": t.weights, "size": f"{t.image_size} px",
             "epochs": t.epochs, "lr": f"{t.lr:g}", "batch": t.batch_size, "patience": t.patience,
             "augmentation": t.augment}
        )  # fmt: skip
        st.caption("Change these in the sidebar and on the Augmentation page.")
        if st.button("Start head training", key="start_head", type="primary", icon=":material/play_arrow:"):
            start_head(store)
    with tune, st.container(border=True):
        st.subheader("Fine-tuning")
        parents = {r.id: r for r in finetunable_runs(store)}
        f = state.finetune_config()
        settings_summary({"epochs": f.epochs, "lr": f"{f.lr:g}", "unfreeze": f.unfreeze})
        if not parents:
            st.caption("Fine-tuning starts from a finished run; train a head first.")
        # A keyed widget keeps its old value when its options change: follow newly finished runs.
        if st.session_state.get("finetune_parent") not in parents:
            st.session_state["finetune_parent"] = next(iter(parents), None)
        parent = st.selectbox(
            "From run", list(parents), key="finetune_parent",
            format_func=lambda i: f"run {i} ({parents[i].config['train']['backbone']})",
        )  # fmt: skip
        if st.button(
            "Start fine-tuning", key="start_finetune", disabled=parent is None, icon=":material/tune:"
        ):
            start_finetune(store, parent)


def curves(frame: pd.DataFrame, metric: str, color: str, key: str, title: str) -> None:
    part = frame[frame["metric"] == metric]
    fig = px.line(
        part, x="epoch", y="value", color=color, line_dash="split", markers=True, title=title,
        line_dash_map={"validation": "solid", "train": "dash"}, labels={"value": metric, "split": ""},
    )  # fmt: skip
    fig.update_layout(height=320, margin={"t": 40, "b": 10}, xaxis={"dtick": 1})
    st.plotly_chart(fig, key=key)


def eta_text(record: RunRecord, history: list[dict]) -> str:
    p = record.progress
    marks = st.session_state.setdefault("eta_marks", {})
    mark = marks.setdefault(f"{record.id}:{p.get('epoch')}", (time.time(), p.get("step") or 0))
    eta = estimate_eta(p, [h["seconds"] for h in history], mark, time.time())
    return "estimating time left…" if eta is None else f"about {format_duration(eta)} left"


def run_status(store: RunStore, record: RunRecord, records: list[RunRecord]) -> None:
    train = record.config.get("train", {})
    what = "fine-tuning of run " + str(record.parent) if record.kind == "finetune" else "head training"
    st.markdown(
        f"#### {STATUS_ICONS.get(record.shown_status, '')} Run {record.id}: {what} · {train.get('backbone')} "
        f"· status **{record.shown_status}**"
    )
    if RESUME_ERROR in st.session_state:
        st.error(st.session_state.pop(RESUME_ERROR), icon=STATUS_ICONS["failed"])
    history = store.history(record.id)
    if record.status == "running":
        p = record.progress
        if not p.get("steps") and p.get("stage") and p.get("total"):
            st.progress(
                min(1.0, p["done"] / p["total"]),
                text=f"{p['stage'].capitalize()}: {p['done']} of {p['total']}",
            )
        elif not p.get("steps"):
            st.progress(0.0, text="Preparing the data and building the model…")
        else:
            epoch, epochs, step, steps = p["epoch"], p["epochs"], p.get("step") or 0, p["steps"]
            st.progress(
                min(1.0, step / steps),
                text=f"Epoch {epoch} of {epochs} · batch {step} of {steps} · {eta_text(record, history)}",
            )
        st.caption(f"Running for {format_duration(record.duration)}.")
    elif record.status == "queued":
        active = next((r for r in records if r.status == "running"), None)
        behind = f" behind run {active.id}" if active else ""
        st.info(
            f"Run {record.id} is queued{behind}; it starts when the worker is free.",
            icon=STATUS_ICONS["queued"],
        )
        if jobs.queue_stalled(store):
            st.warning("No training process is picking up the queue (the worker stopped).")
            if st.button("Start the worker", key="resume_queue"):
                jobs.start_worker(store.workspace)
    elif record.broken:
        st.error(record.broken, icon=STATUS_ICONS["broken"])
    elif record.status == "done":
        m = record.metrics
        parts = (
            [f"best validation accuracy {100 * m['best_val_accuracy']:.1f}%"]
            if "best_val_accuracy" in m
            else []
        )
        if m.get("test_accuracy") is not None:
            parts.append(f"test accuracy {100 * m['test_accuracy']:.1f}%")
        st.success(f"Run {record.id} is done: {', '.join(parts) or 'no metrics'}.", icon=STATUS_ICONS["done"])
    elif record.status == "failed":
        st.error(f"Run {record.id} failed: {state.redact(record.error or '')}", icon=STATUS_ICONS["failed"])
        done = resumable_epoch(store, record.id)
        if done:
            st.button(
                f"Resume from epoch {done + 1}", key="resume_run", icon=":material/replay:",
                help="Continue training from the last finished epoch's backup.",
                on_click=resume, args=(store, record.id),
            )  # fmt: skip
        tail = jobs.log_tail(store.workspace)
        if tail:
            with st.expander("Worker log"):
                st.code(tail, language=None)
    elif record.status == "cancelled":
        st.warning(
            f"Run {record.id} was cancelled; the best weights so far are kept.",
            icon=STATUS_ICONS["cancelled"],
        )

    if record.status in ("queued", "running"):
        if record.cancel_requested:
            st.warning("Stopping at the next batch; the best weights so far are kept.")
        else:
            st.button(
                "Cancel run", key="cancel_run", icon=":material/stop:",
                on_click=store.request_cancel, args=(record.id,),
            )  # fmt: skip
    waiting = [r.id for r in records if r.status == "queued" and r.id != record.id]
    if waiting:
        st.caption("Also queued: " + ", ".join(f"run {i}" for i in sorted(waiting)))
    frame = history_frame(store, [record.id])
    if not frame.empty:
        left, right = st.columns(2)
        with left:
            curves(frame, "accuracy", "split", "live_accuracy_chart", "Accuracy")
        with right:
            curves(frame, "loss", "split", "live_loss_chart", "Loss")


@st.fragment(run_every=1)
def live_panel(store: RunStore) -> None:
    """Polls the registry every second: status, progress, curves and the table of runs."""
    records = store.list()
    snapshot = tuple((r.id, r.status) for r in records)
    seen = st.session_state.get("runs_seen")
    st.session_state["runs_seen"] = snapshot
    if seen is not None and seen != snapshot and st.session_state.get("live_fragment_rerun"):
        st.rerun()  # a run started or ended: refresh the parts outside this panel too
    st.session_state["live_fragment_rerun"] = True
    record = current_run(records)
    if record is None:
        st.info("No runs yet: choose settings in the sidebar and start head training above.")
        return
    run_status(store, record, records)
    st.subheader("All runs")
    st.dataframe(
        runs_frame(records), hide_index=True, key="runs_table",
        column_config={
            "best val accuracy %": st.column_config.NumberColumn(format="%.1f"),
            "test accuracy %": st.column_config.NumberColumn(format="%.1f"),
            "learning rate": st.column_config.NumberColumn(format="%g"),
        },
    )  # fmt: skip
    st.download_button(
        "Download the table as CSV", runs_csv(records), file_name="petlab-runs.csv", mime="text/csv",
        key="download_runs", icon=":material/download:", on_click="ignore",
    )  # fmt: skip


def comparison(store: RunStore) -> None:
    records = [r for r in store.list() if r.status != "queued"]
    if not records:
        return
    st.subheader("Compare runs")
    ids = [r.id for r in records]
    finished = [r.id for r in records if r.status == "done"][:3]
    # Keep the selection valid as runs come and go; start from the latest finished runs.
    kept = [i for i in st.session_state.get("compare_runs", []) if i in ids]
    st.session_state["compare_runs"] = kept or finished
    chosen = st.multiselect(
        "Runs to compare", ids, key="compare_runs",
        format_func=lambda i: f"run {i} ({next(r.status for r in records if r.id == i)})",
    )  # fmt: skip
    frame = history_frame(store, chosen)
    if frame.empty:
        st.caption("The chosen runs have no finished epochs yet.")
        return
    left, right = st.columns(2)
    with left:
        curves(frame, "accuracy", "run", "compare_accuracy_chart", "Accuracy (dashed: train)")
    with right:
        curves(frame, "loss", "run", "compare_loss_chart", "Loss (dashed: train)")


st.title("Training")
store = state.store()
st.session_state["live_fragment_rerun"] = False  # a full run: the panel must not trigger another
start_section(store)
live_panel(store)
comparison(store)
