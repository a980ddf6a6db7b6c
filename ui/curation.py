"""Label curation in the dashboard: the label-issue job, the suspects gallery and its marks, the notes
other pages show.

The ranking is a worker job (core.training.label_issues), queued here and followed through the
registry. With a ranking, the most suspect training and validation images are drawn with their
given and suggested label; a control per image marks it keep / exclude / relabel to a class, saved
at once in the workspace (core.curation.marks), and the marks file is the source of truth: every
run of the page sets the controls from it, so two tabs marking the same data agree on the next
rerun. Thumbnails are decoded on demand through the TF-free data path the Dataset page uses.

`draw_curated_counts` (the Dataset page) and `curation_note` (the Training page) say what the
next run trains on.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from core.config import DataConfig
from core.curation import DEFAULT_FOLDS
from core.curation.apply import curated_counts, files_match, marks_match
from core.curation.marks import (
    ACTIONS,
    CURATED_SPLITS,
    Curation,
    Mark,
    clear_marks,
    describe_counts,
    read_marks,
    remove_mark,
    save_mark,
)
from core.data import DataSource
from core.errors import PetLabError
from core.runs import worker_process as jobs
from core.runs.records import LABEL_ISSUES, RunRecord
from core.runs.requests import queue_analysis
from core.runs.store import RunStore
from core.tables.dataset import example_thumbnail
from core.tables.runs import JobWords, job_progress
from core.workspace import read_json
from ui import errors, state
from ui.evaluate import check_run_data
from ui.job_panel import JobPanel, last_outcome

ACTION_LABELS = {"keep": "Keep", "exclude": "Exclude", "relabel": "Relabel"}
FOLD_CHOICES = (3, 5, 10)
SHOWN_CHOICES = (12, 24, 48, 96)
COLUMNS = 4
THUMBNAIL_PX = 256  # drawn as wide as its card (a quarter of the page)
MARK_KEY, TO_KEY = "curation_mark:{}:{}:{}", "curation_to:{}:{}:{}"  # job, split, index
MARK_ERROR = "curation_error"  # why the last mark could not be saved, shown once
CURATED_ICON = ":material/rule:"


# -- the job ---------------------------------------------------------------------------------------


def offer_ranking(store: RunStore, run: RunRecord, last: RunRecord | None) -> None:
    """Why there is no ranking (the last job failed or was cancelled), and the button that queues one."""
    last_outcome(last, RANKING)
    st.info(
        f"Run {run.id} has no label-issue ranking yet. Finding one predicts every training and "
        "validation image with a head that never saw it (k heads on the cached features, one per "
        "fold), then ranks the images by how strongly those predictions disagree with their labels.",
        icon=CURATED_ICON,
    )
    folds = st.segmented_control(
        "Folds", FOLD_CHOICES, default=DEFAULT_FOLDS, key="label_issue_folds", help="Heads to train, k."
    )
    if st.button("Find label issues", key="find_label_issues", type="primary", icon=":material/search:"):
        with errors.shown():
            queue_analysis(store, LABEL_ISSUES, run.id, {"folds": int(folds or DEFAULT_FOLDS)})
            jobs.start_worker(store.workspace)
            st.rerun()  # the page now follows the job


RANKING_WORDS = JobWords(
    "Waiting for the worker (another run may be training first)…", "loading the run and its features"
)
RANKING = JobPanel(
    key="label_issues",
    noun="the ranking",
    background="It runs in the worker: you can leave this page; the ranking is kept with the run.",
    progress=partial(job_progress, words=RANKING_WORDS),
)


# -- the suspects and their marks ------------------------------------------------------------------


def review(store: RunStore, job: RunRecord, ranking: pd.DataFrame) -> None:
    """The finished ranking: its summary, the marks saved and the most suspect images to mark."""
    base = empty_curation(store, job)
    marks = saved_marks(store, job, base)
    left, middle, right = st.columns(3)
    left.metric("Images ranked", len(ranking))
    middle.metric("Flagged by confident learning", int(ranking["issue"].sum()))
    right.metric("Out-of-fold accuracy", f"{100 * job.metrics.get('out_of_fold_accuracy', 0.0):.1f}%")
    st.caption(
        "Score: the label's quality from 0 (the heads that never saw the image are sure it is another "
        "class) to 1; most suspect first."
    )
    if MARK_ERROR in st.session_state:
        errors.show(st.session_state.pop(MARK_ERROR))
    marks_summary(store, job, marks)
    shown = st.segmented_control(
        "Suspects shown", SHOWN_CHOICES, default=SHOWN_CHOICES[1], key="suspects_shown"
    )
    with errors.shown():
        gallery(store, job, ranking.head(shown or SHOWN_CHOICES[1]), marks, base)


def empty_curation(store: RunStore, job: RunRecord) -> Curation:
    """No marks yet, on the data the job ranked: its fingerprint and the run's classes."""
    classes = list(read_json(store.paths(job.parent).class_names))
    return Curation(job.metrics.get("fingerprint", ""), classes)


def saved_marks(store: RunStore, job: RunRecord, base: Curation) -> Curation:
    """The marks saved for the job's data; none (and a note) when they were made on other data."""
    try:
        current = read_marks(store.workspace, job.data)
    except PetLabError as exc:  # damaged: say so, and offer to start again (a new mark replaces it too)
        errors.show(exc)
        st.button(
            "Clear the saved marks",
            key="clear_damaged_marks",
            on_click=clear_marks,
            args=(store.workspace, job.data),
        )
        return base
    if current is None:
        return base
    if (current.fingerprint, current.classes) != (base.fingerprint, base.classes):
        if current.marks:
            st.warning(
                f"{len(current.marks)} marks saved for this dataset were made on an earlier version of it; "
                "they no longer apply, and marking an image here replaces them.",
                icon=":material/sync_problem:",
            )
        return base
    return current


def browsing_source(job: RunRecord) -> DataSource:
    """The job's data, opened as the Dataset page opens it (no TensorFlow); PetLabError when it cannot be."""
    check_run_data(job)
    return state.source_slot(DataConfig(source=job.data.source, path=job.data.path)).open(download=False)


@st.cache_data(max_entries=512, show_spinner=False)
def suspect_thumbnail(_source: DataSource, key: tuple, split: str, index: int) -> np.ndarray:
    """A square thumbnail of one image; `key` names the source for the cache."""
    return example_thumbnail(_source, split, index, THUMBNAIL_PX)[0]


def gallery(store: RunStore, job: RunRecord, suspects: pd.DataFrame, marks: Curation, base: Curation) -> None:
    """The suspects in a grid, most suspect first, each with its caption and mark control."""
    source = browsing_source(job)
    rows = suspects.to_dict("records")
    entries = ((row["split"], int(row["index"]), row["file"]) for row in rows)
    if not files_match(entries, source.item_name, split_sizes(source)):
        st.warning(
            "The images of this dataset have changed since the ranking; find the label issues again.",
            icon=":material/sync_problem:",
        )
        return
    key = (job.data.source, job.data.path, str(store.workspace))
    for n, row in enumerate(rows):
        if n % COLUMNS == 0:
            grid = st.columns(COLUMNS)  # a row of the grid: the suspects stay in rank order row by row
        sync_widgets(job, marks, row)
        with grid[n % COLUMNS].container(border=True):
            st.image(suspect_thumbnail(source, key, row["split"], int(row["index"])), width="stretch")
            st.markdown(caption(row))
            mark_control(store, job, base, row)


def caption(row: dict) -> str:
    """'given **beagle** → suggested **pug** · score 0.012', then the file and its split."""
    return (
        f"given **{row['given']}** → suggested **{row['suggested']}** · score {row['score']:.3f}  \n"
        f"`{row['file']}` ({row['split']})"
    )


def relabel_choices(classes: list[str], given: str) -> list[str]:
    return [name for name in classes if name != given]


def sync_widgets(job: RunRecord, marks: Curation, row: dict) -> None:
    """Set an image's controls from the saved marks (the file is the source of truth)."""
    place = (job.id, row["split"], row["index"])
    mark = marks.mark_of(row["split"], int(row["index"]))
    st.session_state[MARK_KEY.format(*place)] = mark.action if mark else None
    choices = relabel_choices(marks.classes, row["given"])
    default = row["suggested"] if row["suggested"] in choices else choices[0]
    st.session_state[TO_KEY.format(*place)] = mark.label if mark and mark.action == "relabel" else default


def mark_control(store: RunStore, job: RunRecord, base: Curation, row: dict) -> None:
    """Keep / exclude / relabel for one image, and the class it is relabelled to; saved on each change."""
    place = (job.id, row["split"], row["index"])
    callback = {"on_change": save_from_widgets, "args": (store, job, base, row)}
    action = st.segmented_control(
        f"Mark {row['file']}",
        ACTIONS,
        format_func=ACTION_LABELS.get,
        key=MARK_KEY.format(*place),
        label_visibility="collapsed",
        **callback,
    )
    st.selectbox(
        f"Relabel {row['file']} to",
        relabel_choices(base.classes, row["given"]),
        key=TO_KEY.format(*place),
        disabled=action != "relabel",
        label_visibility="collapsed",
        **callback,
    )


def save_from_widgets(store: RunStore, job: RunRecord, base: Curation, row: dict) -> None:
    """A mark control's callback: save what its widgets now say (no choice: forget the mark)."""
    split, index = row["split"], int(row["index"])
    action = st.session_state.get(MARK_KEY.format(job.id, split, index))
    try:
        if action is None:
            remove_mark(store.workspace, job.data, base, split, index)
            return
        label = st.session_state.get(TO_KEY.format(job.id, split, index)) if action == "relabel" else None
        save_mark(
            store.workspace, job.data, base, Mark(split, index, row["file"], row["given"], action, label)
        )
    except PetLabError as exc:  # a callback draws nothing: `review` shows it on the rerun that follows
        st.session_state[MARK_ERROR] = errors.sentence(exc)


def split_sizes(source: DataSource) -> dict[str, int]:
    return {split: source.split_size(split) for split in CURATED_SPLITS}


def marks_summary(store: RunStore, job: RunRecord, marks: Curation) -> None:
    """What the marks change, and the button that clears them."""
    if not marks.marks:
        st.caption("No marks yet: mark the images below; each choice is saved at once.")
        return
    counts = marks.counts()
    st.markdown(
        f"**Marks:** {describe_counts(counts)}, {counts['kept']} kept as they are. The next head run on "
        "this dataset trains on the curated data; the test split is never changed, so runs stay comparable."
    )
    st.button(
        "Clear all marks",
        key="clear_marks",
        icon=":material/delete_sweep:",
        on_click=clear_marks,
        args=(store.workspace, job.data),
    )


# -- what other pages show -------------------------------------------------------------------------


def draw_curated_counts(source: DataSource, data: DataConfig) -> None:
    """The Dataset page's note: what the saved marks change, and the curated per-class counts."""
    with errors.shown():
        marks = read_marks(state.workspace(), data)
        if marks is None or not marks.changing():
            return
        if not marks_match(marks, source.item_name, split_sizes(source)):
            st.warning(
                "Label marks were saved for an earlier version of this dataset; they no longer apply. "
                "Clear them on the Label issues page.",
                icon=":material/sync_problem:",
            )
            return
        labels = {split: source.labels(split) for split in CURATED_SPLITS}
        st.info(
            f"Curated on the Label issues page: {describe_counts(marks.counts())} (training and "
            "validation images). The next run trains on the curated data.",
            icon=CURATED_ICON,
        )
        table = curated_counts(marks, labels, source.class_names)
        if not table.empty:
            with st.expander("Images per class after curation"):
                st.dataframe(table, hide_index=True, key="curated_counts_table")


def curation_note(data: DataConfig) -> None:
    """The Training page's line: 'Trains on curated data: 3 relabelled, 2 excluded', when marks exist."""
    with errors.shown():
        marks = read_marks(state.workspace(), data)
        if marks is not None and marks.changing():
            counts = describe_counts(marks.counts())
            st.caption(f"Trains on curated data: {counts} (marked on the Label issues page).")
