"""The Training page's lists of runs: the table of every run (with its CSV) and the runs to compare."""

from __future__ import annotations

import streamlit as st

from core.runs.records import RunRecord
from core.tables.runs import runs_csv, runs_frame

RUNS_TABLE_COLUMNS = {
    "best val accuracy %": st.column_config.NumberColumn(format="%.1f"),
    "test accuracy %": st.column_config.NumberColumn(format="%.1f"),
    "learning rate": st.column_config.NumberColumn(format="%g"),
}
COMPARE_RUNS = "compare_runs"  # the multiselect's key


def runs_table(records: list[RunRecord]) -> None:
    """Every run, newest first, and its CSV download."""
    st.subheader("All runs")
    st.dataframe(runs_frame(records), hide_index=True, key="runs_table", column_config=RUNS_TABLE_COLUMNS)
    st.download_button(
        "Download the table as CSV",
        runs_csv(records),
        file_name="petlab-runs.csv",
        mime="text/csv",
        key="download_runs",
        icon=":material/download:",
        on_click="ignore",
    )


def pick_runs_to_compare(records: list[RunRecord]) -> list[int]:
    """A multiselect of runs, starting from the latest finished ones; kept valid as runs come and go."""
    ids = [r.id for r in records]
    status = {r.id: r.status for r in records}
    kept = [i for i in st.session_state.get(COMPARE_RUNS, []) if i in ids]
    st.session_state[COMPARE_RUNS] = kept or [r.id for r in records if r.status == "done"][:3]
    return st.multiselect(
        "Runs to compare", ids, key=COMPARE_RUNS, format_func=lambda i: f"run {i} ({status[i]})"
    )
