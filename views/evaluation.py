"""Evaluation page: how a finished run does on the test split, where it errs, and its export.

Everything shown comes from the run's evaluation report (`store.paths(id).evaluation`,
written by core.inference.evaluate); a run without one gets a button to compute it. The test
images of the gallery (ui.gallery) are read from the decoded-image cache, in the same order as
the report. Only evaluating (ui.evaluate) and exporting (ui.exports) load TensorFlow, when their
buttons are clicked. The run's HTML report (core.reports.run_report) is built only when its download
button is clicked.
"""

from __future__ import annotations

import streamlit as st

from core.figures.evaluation import confused_pairs_bar, confusion_heatmap, recall_difference_bar
from core.reports.run_report import run_report_html
from core.runs.records import RunRecord
from core.runs.store import RunStore
from core.tables.evaluation import (
    confused_pairs,
    confusion_frame,
    headline_metrics,
    load_evaluation,
    metric_changes,
    per_class_frame,
    recall_diff_frame,
    run_label,
)
from ui import evaluate, exports, gallery, state, widgets

TOP_PAIRS = 10
TABS = ["Test results", "Mistakes", "Compare runs", "Export"]
TAB = "eval_tab"  # the open tab's label
NO_RUNS = "There is no finished run to evaluate yet: train one on the Training page first."
SCORE = {"min_value": 0.0, "max_value": 1.0, "format": "percent"}
PER_CLASS_COLUMNS = {
    "breed": st.column_config.TextColumn("breed", pinned=True),
    "precision": st.column_config.ProgressColumn("precision", **SCORE),
    "recall": st.column_config.ProgressColumn("recall", help="Per-breed accuracy", **SCORE),
    "f1": st.column_config.ProgressColumn("F1", **SCORE),
    "support": st.column_config.NumberColumn("test images", format="%d"),
}


def headline(report: dict) -> None:
    for column, (label, value) in zip(st.columns(4), headline_metrics(report).items(), strict=True):
        column.metric(label, value)


def confusion_section(report: dict) -> None:
    st.subheader("Confusion matrix")
    left, right = st.columns(2)
    normalize = left.toggle(
        "Share of each true breed",
        key="cm_normalize",
        help="Divide each row by its number of test images, so rows of rare breeds show as clearly.",
    )
    hide_diagonal = right.toggle(
        "Hide correct predictions",
        key="cm_hide_diagonal",
        help="Leave the diagonal blank, so that the colour scale shows the mistakes.",
    )
    figure = confusion_heatmap(confusion_frame(report), normalize, hide_diagonal)
    st.plotly_chart(figure, key="confusion_chart")


def per_class_table(report: dict) -> None:
    st.subheader("Per breed")
    table = per_class_frame(report).sort_values("f1")
    st.dataframe(table, hide_index=True, key="per_class_table", column_config=PER_CLASS_COLUMNS)
    st.caption("Sorted by F1, weakest first; click a column header to sort by it.")


def pairs_chart(report: dict) -> None:
    st.subheader("Most confused breeds")
    pairs = confused_pairs(report, TOP_PAIRS)
    if pairs.empty:
        st.success(
            "No confusions: every test image was classified correctly.", icon=":material/check_circle:"
        )
        return
    st.plotly_chart(confused_pairs_bar(pairs), key="confused_pairs_chart")
    st.caption("true breed → predicted breed, the largest off-diagonal cells of the confusion matrix.")


def comparison(store: RunStore, record: RunRecord, report: dict, runs: list[RunRecord]) -> None:
    st.subheader("Compare with another run")
    others = {r.id: r for r in runs if r.id != record.id}
    if not others:
        st.caption("Train another run to compare it with this one.")
        return
    other_id = st.selectbox(
        "Other run",
        list(others),
        index=None,
        format_func=lambda i: run_label(others[i]),
        placeholder="Choose a run",
        key="compare_run",
    )
    if other_id is None:
        return
    other = load_evaluation(store.paths(other_id).evaluation)
    if other is None:
        st.info(f"Run {other_id} has no test evaluation yet: choose it above and evaluate it first.")
        return
    this, that = f"run {record.id}", f"run {other_id}"
    for column, change in zip(st.columns(3), metric_changes(report, other, this, that), strict=True):
        column.metric(change.label, change.value, change.change, delta_color=change.delta_color)
    diff = recall_diff_frame(report, other, this, that)
    if diff.empty:
        st.info("The two runs have no breed in common.")
        return
    st.plotly_chart(recall_difference_bar(diff, this, that), key="compare_recall_chart")
    st.caption(f"Per-breed accuracy (recall) of {this} minus {that}, on each run's own test split.")


def report_download(store: RunStore, record: RunRecord) -> None:
    """The run's self-contained HTML report, built when the button is clicked (not on every rerun)."""
    st.download_button(
        "Download the report (HTML)",
        data=lambda: run_report_html(store, record.id).encode("utf-8"),
        file_name=f"petlab-run-{record.id}-report.html",
        mime="text/html",
        key="download_report",
        icon=":material/description:",
        on_click="ignore",
        help="One file with the settings, data counts, curves, test results and mistakes; "
        "it opens in any browser, offline.",
    )


st.title("Evaluation")
store = state.store()
record, runs = widgets.pick_finished_run(store, "Run", "eval_run", NO_RUNS)
report = load_evaluation(store.paths(record.id).evaluation)
if report is None:
    evaluate.evaluate_button(store, record)
    report_download(store, record)
    st.subheader("Export")
    exports.export_section(store, record)
    st.stop()

headline(report)
report_download(store, record)
# Lazy tabs: only the open tab's content is computed and sent, so the page draws at once.
results, mistakes, compare, export = st.tabs(TABS, key=TAB, on_change="rerun")
if results.open:
    with results:
        confusion_section(report)
        per_class_table(report)
if mistakes.open:
    with mistakes:
        pairs_chart(report)
        gallery.gallery(store, record, report)
if compare.open:
    with compare:
        comparison(store, record, report, runs)
if export.open:
    with export:
        exports.export_section(store, record)
