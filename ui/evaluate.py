"""Evaluating a run from the dashboard: the offer, the run's data check, and the evaluation itself.

Evaluation loads the run's model (core.inference.evaluate, TensorFlow), so that module is
imported only when a button asks for it.
"""

from __future__ import annotations

import streamlit as st

from core.data.roots import resolve_within_roots
from core.runs.records import RunRecord
from core.runs.store import RunStore
from ui import errors, state
from ui.widgets import progress_bar


def check_run_data(record: RunRecord) -> None:
    """BadInputError when the run's data lies outside the folders this dashboard may read."""
    if record.data.path:
        resolve_within_roots(record.data.path, state.data_roots())


def evaluate_button(store: RunStore, record: RunRecord) -> None:
    """Say the run has no evaluation yet, and offer to compute it."""
    st.info(
        f"Run {record.id} has no test evaluation yet (or it was deleted): compute it to see its "
        "accuracy, confusion matrix and mistakes.",
        icon=":material/fact_check:",
    )
    if st.button("Evaluate on the test split", key="evaluate_run", type="primary"):
        evaluate(store, record)


def evaluate(store: RunStore, record: RunRecord) -> None:
    """Evaluate the run with a progress bar (the report replaces any older one), then rerun."""
    from core.inference.evaluate import evaluate_run  # imports TensorFlow

    with errors.shown(), progress_bar() as bar:
        check_run_data(record)
        evaluate_run(store, record.id, progress=bar)
        st.rerun()
