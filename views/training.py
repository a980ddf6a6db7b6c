"""Training page: start head training or fine-tuning, follow the run live, experiment, compare runs.

Runs execute in a separate worker process (core.runs.worker_process); this page only queues
them and reads the registry, so a run keeps going when the page is left,
reloaded or the server restarts, and runs started from a terminal show up too.
Every browser session sees the same runs; a run started while another one
trains waits in the queue, and the page says so. A failed run that finished at
least one epoch can be resumed from its backup (ui.run_status); the runs table downloads as CSV.
Experiments on cached features, the learning-rate finder and sweeps, are queued and shown by ui.sweep;
they and the comparison of runs sit in sections computed only while open.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.figures.curves import training_curves
from core.runs import worker_process as jobs
from core.runs.records import RunRecord
from core.runs.requests import queue_finetune_run, queue_head_run
from core.runs.store import RunStore
from core.tables.runs import CURVE_METRICS, finetunable_runs, history_frame, training_runs
from ui import curation, errors, run_status, runs_table, state, sweep
from ui.live import LiveView
from ui.run_status import queued_toast

FINETUNE_PARENT = "finetune_parent"  # the "From run" selectbox's key
LIVE_VIEW = "live_view"  # the live panel's ui.live.LiveView, kept between polls
LIVE_FRAGMENT_RERUN = "live_fragment_rerun"  # False right after a full run of the page
# Sections computed and drawn only while open (st.expander with on_change="rerun"): the page
# itself draws at once, whatever the registry holds.
EXPERIMENTS, COMPARE = "experiments_open", "compare_open"


def settings_summary(values: dict[str, object]) -> None:
    """One line: 'name **value** · name **value** · …'."""
    st.markdown(" · ".join(f"{name} **{value}**" for name, value in values.items()))


def start_head(store: RunStore) -> None:
    with errors.shown():
        run_id = queue_head_run(store, sweep.data_for_runs(store), state.train_config())
        jobs.start_worker(store.workspace)
        queued_toast(store, run_id, "")


def start_finetune(store: RunStore, parent: int) -> None:
    with errors.shown():
        run_id = queue_finetune_run(store, parent, state.finetune_config())
        jobs.start_worker(store.workspace)
        queued_toast(store, run_id, f": fine-tuning run {parent}")


def head_section(store: RunStore) -> None:
    st.subheader("Head training")
    d, t = state.data_config(), state.train_config()
    settings_summary(
        {
            "data": d.source,
            "backbone": t.backbone,
            "weights": t.weights,
            "size": f"{t.image_size} px",
            "epochs": t.epochs,
            "lr": f"{t.lr:g}",
            "batch": t.batch_size,
            "patience": t.patience,
            "augmentation": t.augment,
        }
    )
    st.caption("Change these in the sidebar and on the Augmentation page.")
    curation.curation_note(d)
    if st.button("Start head training", key="start_head", type="primary", icon=":material/play_arrow:"):
        start_head(store)


def finetune_section(store: RunStore) -> None:
    st.subheader("Fine-tuning")
    parents = {r.id: r for r in finetunable_runs(store)}
    f = state.finetune_config()
    settings_summary({"epochs": f.epochs, "lr": f"{f.lr:g}", "unfreeze": f.unfreeze})
    if not parents:
        st.caption("Fine-tuning starts from a finished run; train a head first.")
    # A keyed widget keeps its old value when its options change: follow newly finished runs.
    if st.session_state.get(FINETUNE_PARENT) not in parents:
        st.session_state[FINETUNE_PARENT] = next(iter(parents), None)
    parent = st.selectbox(
        "From run",
        list(parents),
        key=FINETUNE_PARENT,
        format_func=lambda i: f"run {i} ({parents[i].train.backbone})",
    )
    if st.button("Start fine-tuning", key="start_finetune", disabled=parent is None, icon=":material/tune:"):
        start_finetune(store, parent)


def curves(frame: pd.DataFrame, color: str, key_prefix: str, title_note: str = "") -> None:
    """Accuracy and loss side by side, as charts `<key_prefix>_accuracy_chart` and `…_loss_chart`."""
    for column, metric in zip(st.columns(2), ("accuracy", "loss"), strict=True):
        figure = training_curves(frame, metric, color, f"{metric.capitalize()}{title_note}")
        column.plotly_chart(figure, key=f"{key_prefix}_{metric}_chart")


@st.fragment(run_every=1)
def live_panel(store: RunStore) -> None:
    """Polls the registry every second; reads runs and builds curves only when they changed (ui.live)."""
    view = st.session_state.setdefault(LIVE_VIEW, LiveView())
    changed = view.refresh(store)
    if "runs" in changed and st.session_state.get(LIVE_FRAGMENT_RERUN):
        st.rerun()  # a run started, ended or was removed: refresh the parts outside this panel too
    st.session_state[LIVE_FRAGMENT_RERUN] = True
    record = view.followed
    if record is None:
        st.info("No runs yet: choose settings in the sidebar and start head training above.")
        return
    run_status.show(store, record, view.records)
    for column, metric in zip(st.columns(2), CURVE_METRICS, strict=True):
        if metric in view.figures:
            column.plotly_chart(view.figures[metric], key=f"live_{metric}_chart")
    runs_table.runs_table(view.table, view.table_csv)


def lazy_section(label: str, key: str, icon: str) -> DeltaGenerator | None:
    """A collapsed expander whose content is computed only while it is open: the container, or None."""
    section = st.expander(label, key=key, icon=icon, on_change="rerun")
    return section if section.open else None


def experiments(store: RunStore, records: list[RunRecord]) -> None:
    """The learning-rate finder and sweeps: many heads on the cached features of the sidebar's data."""
    section = lazy_section(
        "Experiments on cached features: learning-rate finder, sweeps", EXPERIMENTS, ":material/science:"
    )
    if section is None:
        return
    with section:
        with st.container(border=True):
            sweep.lr_finder(store, records)
        with st.container(border=True):
            st.markdown("**Sweep**: train a head per setting, keep the best by validation")
            sweep.sweep_form(store)
        sweep.sweep_results(store, records)


def comparison(store: RunStore, records: list[RunRecord]) -> None:
    records = [r for r in training_runs(records) if r.status != "queued"]
    if not records:
        return
    section = lazy_section("Compare runs: overlaid curves", COMPARE, ":material/stacked_line_chart:")
    if section is None:
        return
    with section:
        frame = history_frame(store, runs_table.pick_runs_to_compare(records))
        if frame.empty:
            st.caption("The chosen runs have no finished epochs yet.")
            return
        curves(frame, "run", "compare", " (dashed: train)")


st.title("Training")
store = state.store()
st.session_state[LIVE_FRAGMENT_RERUN] = False  # a full run: the panel must not trigger another
head, tune = st.columns(2, gap="large")
with head, st.container(border=True):
    head_section(store)
with tune, st.container(border=True):
    finetune_section(store)
live_panel(store)
all_runs = store.list()
experiments(store, all_runs)
comparison(store, all_runs)
