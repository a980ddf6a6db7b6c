"""The Training page's lists of runs: the table of every run (with its CSV) and the runs to compare."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.runs.records import RunRecord

RUNS_TABLE_COLUMNS = {
    "best val accuracy %": st.column_config.NumberColumn(format="%.1f"),
    "test accuracy %": st.column_config.NumberColumn(format="%.1f"),
    "learning rate": st.column_config.NumberColumn(format="%g"),
}
COMPARE_RUNS = "compare_runs"  # the multiselect's key


def runs_table(table: pd.DataFrame, csv: str) -> None:
    """Every run, newest first (core.tables.runs.runs_frame), and its CSV download (runs_csv)."""
    st.subheader("All runs")
    st.dataframe(table, hide_index=True, key="runs_table", column_config=RUNS_TABLE_COLUMNS)
    st.download_button(
        "Download the table as CSV",
        csv,
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
