"""The Training page's experiments on cached features: the learning-rate finder and sweeps.

Both are jobs of the worker's queue (core.runs.requests.queue_lr_find / queue_sweep); this
module only queues them and draws what the registry holds: the finder's curve with its
suggestion and a button that puts it in the sidebar, the sweep form (a grid of values or
random draws from ranges, and how many heads that makes), and the newest sweep's leaderboard,
members' validation curves and a parallel-coordinates view of settings against validation
accuracy. The live panel (ui.live) follows a running sweep or finder pass like any run.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import config as cfg
from core.catalog.choices import LR_CHOICES
from core.catalog.experiments import (
    MAX_MEMBERS,
    SWEEP_CHOICES,
    SWEEP_RANGES,
    SWEEPABLE,
    Settings,
    count_settings,
    describe_name,
    grid,
    nearest_on_log_scale,
    random_draws,
)
from core.data.tfds_source import tfds_prepared
from core.figures.experiments import lr_finder_curve, sweep_curves, sweep_parallel
from core.runs import worker_process as jobs
from core.runs.records import LR_FIND, SWEEP, RunRecord
from core.runs.requests import queue_lr_find, queue_prepare, queue_sweep
from core.runs.store import RunStore
from core.tables.sweeps import (
    latest,
    leaderboard_frame,
    members_curves,
    members_of,
    settings_frame,
    sweep_progress,
)
from ui import errors, state
from ui.run_status import queued_toast

FIND_LR = "find_lr"  # the finder's button
USE_LR = "use_lr"  # "Use <lr>"
SWEEP_MODE = "sweep_mode"  # "grid" or "random"
SWEEP_DRAWS = "sweep_draws"
START_SWEEP = "start_sweep"
GRID_KEY, RANGE_KEY = "sweep_grid_{}", "sweep_range_{}"  # the form's widget per setting
MODES = {"grid": "Every combination (grid)", "random": "Random draws from ranges"}
SELECTION_NOTE = (
    "The winner is chosen by validation accuracy alone (ties: the lower validation loss); "
    "the test split is never used to choose."
)
NO_SUGGESTION = (
    "The loss did not fall at any learning rate tried, so there is no suggestion; check that the "
    "labels fit the images, or try another batch size."
)


def data_for_runs(store: RunStore) -> cfg.DataConfig:
    """The sidebar's data, checked before anything is queued (a missing reference dataset is queued first).

    A path outside the data roots or a wrong folder fails here (a PetLabError), not later in the worker.
    """
    data = state.data_config()
    state.check_data_path()
    if data.source != "tfds":
        state.source_slot(data).open(download=False)
    elif not tfds_prepared(state.workspace(), data.path):
        queue_prepare(store, data)  # the download goes first, as its own job; the run waits
    return data


# -- the learning-rate finder ----------------------------------------------------------------------


def start_lr_find(store: RunStore) -> None:
    with errors.shown():
        job = queue_lr_find(store, data_for_runs(store), state.train_config())
        jobs.start_worker(store.workspace)
        queued_toast(store, job, ": finding a learning rate")


def lr_finder(store: RunStore, records: list[RunRecord]) -> None:
    """The finder's button, then the newest pass: its curve, its suggestion and "Use" for the sidebar."""
    st.markdown("**Learning-rate finder**")
    st.caption(
        "A short pass over the cached features with the learning rate rising from 1e-7 to 10; "
        "a good rate is where the loss falls fastest."
    )
    if st.button("Find a learning rate", key=FIND_LR, icon=":material/query_stats:"):
        start_lr_find(store)
        return
    job = latest(records, LR_FIND)
    if job is None:
        return
    if job.active:
        st.caption(f"Finding a learning rate (run {job.id}); follow it in the panel below.")
    elif job.status == "failed":
        errors.show(f"The learning-rate finder (run {job.id}) failed: {job.error or 'no reason recorded'}")
    elif job.status == "done":
        finder_result(store, job)


def finder_result(store: RunStore, job: RunRecord) -> None:
    curve = read_curve(store, job)
    if curve is None:
        errors.show(
            f"The curve of the learning-rate finder (run {job.id}) is missing; find a learning rate again."
        )
        return
    suggestion = job.metrics.get("suggested_lr")
    st.plotly_chart(lr_finder_curve(curve, suggestion), key="lr_finder_chart")
    st.caption(f"Run {job.id}: {job.train.backbone} on {job.data.source}, batch size {job.train.batch_size}.")
    if suggestion is None:
        st.warning(NO_SUGGESTION)
        return
    nearest = nearest_on_log_scale(suggestion, LR_CHOICES)
    st.button(
        f"Use {nearest:g}",
        key=USE_LR,
        icon=":material/input:",
        on_click=state.use_lr,
        args=(suggestion,),
        help=f"The finder suggests {suggestion:.2g}; the sidebar's nearest learning rate is {nearest:g}.",
    )


def read_curve(store: RunStore, job: RunRecord) -> pd.DataFrame | None:
    """The finder job's curve (lr, loss, raw_loss), or None when its file is gone or damaged."""
    try:
        return pd.read_csv(store.paths(job.id).lr_curve)
    except (OSError, ValueError):
        return None


# -- the sweep form --------------------------------------------------------------------------------


def grid_values(train: cfg.TrainConfig) -> dict[str, list[float]]:
    """A multiselect per setting, starting at the sidebar's value; an empty one keeps that value."""
    values = {}
    for column, name in zip(st.columns(len(SWEEPABLE)), SWEEPABLE, strict=True):
        base = getattr(train, name)
        options = sorted({*(LR_CHOICES if name == "lr" else SWEEP_CHOICES[name]), base})
        values[name] = column.multiselect(
            describe_name(name).capitalize(),
            options,
            default=[base],
            key=GRID_KEY.format(name),
            format_func=_g,
        )
    return {name: chosen for name, chosen in values.items() if chosen}


def random_ranges(train: cfg.TrainConfig) -> dict[str, tuple | list]:
    """A range (or, for the batch size, a choice) per setting to draw from."""
    lr, dropout, smoothing, batch, epochs = st.columns(len(SWEEPABLE))
    around = tuple(nearest_on_log_scale(train.lr * factor, LR_CHOICES) for factor in (0.1, 10))
    ranges: dict[str, tuple | list] = {
        "lr": lr.select_slider(
            "Learning rate",
            LR_CHOICES,
            value=around,
            format_func=_g,
            key=RANGE_KEY.format("lr"),
        ),
        "dropout": dropout.slider(
            "Dropout", 0.0, 0.9, SWEEP_RANGES["dropout"], 0.05, key=RANGE_KEY.format("dropout")
        ),
        "label_smoothing": smoothing.slider(
            "Label smoothing",
            0.0,
            0.5,
            SWEEP_RANGES["label_smoothing"],
            0.05,
            key=RANGE_KEY.format("label_smoothing"),
        ),
        "epochs": epochs.slider("Epochs", 1, 100, SWEEP_RANGES["epochs"], key=RANGE_KEY.format("epochs")),
    }
    options = sorted({*SWEEP_CHOICES["batch_size"], train.batch_size})
    sizes = batch.multiselect(
        "Batch size", options, default=[train.batch_size], key=RANGE_KEY.format("batch_size")
    )
    return ranges | ({"batch_size": sizes} if sizes else {})


def sweep_form(store: RunStore) -> None:
    """Pick the values to try, see how many heads that makes, and start the sweep."""
    train = state.train_config()
    mode = st.radio("Settings", list(MODES), format_func=MODES.get, horizontal=True, key=SWEEP_MODE)
    if mode == "grid":
        values = grid_values(train)
        count = count_settings(values)
    else:
        ranges = random_ranges(train)
        count = int(st.number_input("Number of settings", 1, MAX_MEMBERS, 12, key=SWEEP_DRAWS))
    heads = f"**{count}** head{'s' if count != 1 else ''}"
    st.caption(
        f"That makes {heads} (at most {MAX_MEMBERS}), each with early stopping on validation loss; "
        "everything else is the sidebar's."
    )
    if st.button(
        "Start sweep",
        key=START_SWEEP,
        type="primary",
        icon=":material/grid_view:",
        disabled=count > MAX_MEMBERS,
    ):
        with errors.shown():
            settings = grid(values) if mode == "grid" else random_draws(ranges, count, train.seed)
            start_sweep(store, train, settings)


def start_sweep(store: RunStore, train: cfg.TrainConfig, settings: list[Settings]) -> None:
    sweep_id = queue_sweep(store, data_for_runs(store), train, settings)
    jobs.start_worker(store.workspace)
    queued_toast(store, sweep_id, f": a sweep of {len(settings)} settings")


# -- the newest sweep ------------------------------------------------------------------------------


def sweep_results(store: RunStore, records: list[RunRecord]) -> None:
    """The newest sweep: where it is, its leaderboard, its members' curves and settings against accuracy."""
    sweep = latest(records, SWEEP)
    if sweep is None:
        return
    members = members_of(records, sweep.id)
    total = len(sweep.config.get("sweep", {}).get("settings", []))
    st.markdown(f"**Sweep {sweep.id}** · {total} settings · status **{sweep.shown_status}**")
    if sweep.active:
        fraction, text = sweep_progress(sweep)
        st.progress(fraction, text=text)
    elif sweep.status == "failed":
        errors.show(f"Sweep {sweep.id} failed: {sweep.error or 'no reason recorded'}")
    winner = sweep.metrics.get("winner")
    if winner is not None:
        st.success(
            f"The winner is promoted to run {winner}: evaluate, predict with, export or fine-tune it "
            "like any run.",
            icon=":material/emoji_events:",
        )
    if not members:
        return
    st.dataframe(
        leaderboard_frame(sweep, members),
        hide_index=True,
        key="sweep_leaderboard",
        column_config={
            "val accuracy %": st.column_config.NumberColumn(format="%.1f"),
            "val loss": st.column_config.NumberColumn(format="%.4f"),
            "winner": st.column_config.CheckboxColumn(),
        },
    )
    st.caption(SELECTION_NOTE)
    member_charts(store, sweep, members)


def member_charts(store: RunStore, sweep: RunRecord, members: list[RunRecord]) -> None:
    """The members' validation curves side by side, then the parallel-coordinates view."""
    curves = members_curves(store, members)
    if not curves.empty:
        for column, metric in zip(st.columns(2), ("accuracy", "loss"), strict=True):
            column.plotly_chart(sweep_curves(curves, metric), key=f"sweep_{metric}_chart")
    table = settings_frame(sweep, members)
    if len(table) and table.shape[1] > 1:
        st.plotly_chart(sweep_parallel(table), key="sweep_parallel_chart")


def _g(value: float) -> str:
    return f"{value:g}"
