"""Evaluation page: how a finished run does on the test split, where it errs, and its export.

Everything shown comes from the run's evaluation report (`runs/<ID>/evaluation.json`,
core.inference.evaluate); a run without one gets a button to compute it. The test images of
the gallery are read from the decoded-image cache, in the same order as the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core import config as cfg
from core.data import ImageCache, open_source
from core.data.roots import resolve_within_roots
from core.errors import PetLabError
from core.inference.evaluate import evaluate_run
from core.inference.export import export_dir, export_path, export_run, labels_path
from core.runs.store import RunRecord, RunStore
from core.tables.dataset import thumbnail
from core.tables.evaluation import (
    confused_pairs,
    confusion_frame,
    format_bytes,
    has_samples,
    load_evaluation,
    matches_test_split,
    metric_deltas,
    misclassified,
    mistakes_by_class,
    per_class_frame,
    recall_diff_frame,
    run_label,
    size_of,
    zip_folder,
)
from ui import state, widgets
from ui.widgets import ProgressBar

GALLERY_CAP = 24
GALLERY_COLUMNS = 6
TOP_PAIRS = 10
ALL = "all breeds"
# (key, button label, export format, quantize, download file suffix, what it is)
EXPORTS = (
    ("keras", "Keras", "keras", False, ".keras", "the Keras model, for Python and further training"),
    (
        "savedmodel",
        "SavedModel",
        "savedmodel",
        False,
        "-savedmodel.zip",
        "TensorFlow Serving (zipped folder)",
    ),
    ("tflite", "TFLite", "tflite", False, ".tflite", "TensorFlow Lite / LiteRT, float32"),
    ("tflite_quantized", "TFLite quantized", "tflite", True, "-quantized.tflite", "int8 weights, ~¼ size"),
)


NO_RUNS = "There is no finished run to evaluate yet: train one on the Training page first."


def choose_run(store: RunStore) -> tuple[RunRecord, list[RunRecord]]:
    return widgets.pick_finished_run(store, "Run", "eval_run", NO_RUNS)


def check_run_data(record: RunRecord) -> None:
    """BadInputError when the run's data lies outside the folders this dashboard may read."""
    path = record.config.get("data", {}).get("path")
    if path:
        resolve_within_roots(path, state.data_roots())


@st.cache_resource(max_entries=4, show_spinner="Loading the test images…")
def test_images(workspace: str, data_json: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of a data source's test split at `image_size`, from the image cache."""
    data = cfg.from_dict(cfg.DataConfig, json.loads(data_json))
    source = open_source(data.source, data.path, workspace=Path(workspace), data_config=data, download=False)
    return ImageCache(Path(workspace)).get(source, "test", image_size)


def evaluate_button(store: RunStore, record: RunRecord) -> None:
    st.info(
        f"Run {record.id} has no test evaluation yet (or it was deleted): compute it to see its "
        "accuracy, confusion matrix and mistakes.",
        icon=":material/fact_check:",
    )
    if st.button("Evaluate on the test split", key="evaluate_run", type="primary"):
        evaluate(store, record)


def evaluate(store: RunStore, record: RunRecord) -> None:
    """Evaluate the run with a progress bar (the report replaces any older one), then rerun."""
    bar = ProgressBar()
    try:
        check_run_data(record)
        evaluate_run(store, record.id, progress=bar)
    except PetLabError as exc:
        state.show_error(exc)
        return
    finally:
        bar.clear()
    st.rerun()


def headline(report: dict) -> None:
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{100 * report['accuracy']:.1f}%")
    cols[1].metric("Top-5 accuracy", f"{100 * report['top5_accuracy']:.1f}%")
    cols[2].metric("Test loss", f"{report['loss']:.3f}")
    cols[3].metric("Test images", report.get("count", int(np.sum(report["confusion_matrix"]))))


def confusion_heatmap(report: dict) -> None:
    left, right = st.columns(2)
    normalize = left.toggle(
        "Share of each true breed", key="cm_normalize",
        help="Divide each row by its number of test images, so rows of rare breeds show as clearly.",
    )  # fmt: skip
    hide_diagonal = right.toggle(
        "Hide correct predictions", key="cm_hide_diagonal",
        help="Leave the diagonal blank, so that the colour scale shows the mistakes.",
    )  # fmt: skip
    counts = confusion_frame(report)
    shares = confusion_frame(report, normalize=True)
    z = np.array(shares if normalize else counts, dtype=float)  # a writable copy
    if hide_diagonal:
        np.fill_diagonal(z, np.nan)
    names = list(counts.index)
    totals = np.repeat(counts.sum(axis=1).to_numpy()[:, None], len(names), axis=1)
    custom = np.dstack([counts.to_numpy(), totals, shares.to_numpy()])
    fig = go.Figure(
        go.Heatmap(
            z=z, x=names, y=names, customdata=custom, colorscale="Blues", xgap=1, ygap=1,
            zmin=0, zmax=1 if normalize else None,
            colorbar={"title": "share" if normalize else "images", "tickformat": ".0%" if normalize else ""},
            hovertemplate="true <b>%{y}</b><br>predicted <b>%{x}</b><br>"
            "%{customdata[0]} of %{customdata[1]} test images (%{customdata[2]:.1%})<extra></extra>",
        )
    )  # fmt: skip
    side = max(360, 22 * len(names) + 160)
    fig.update_layout(height=side, margin={"t": 10, "b": 10, "l": 10, "r": 10})
    fig.update_xaxes(title="predicted breed", tickangle=-60, tickfont_size=10, type="category")
    fig.update_yaxes(title="true breed", autorange="reversed", tickfont_size=10, type="category")
    st.plotly_chart(fig, key="confusion_chart")


def per_class_table(report: dict) -> None:
    st.subheader("Per breed")
    score = {"min_value": 0.0, "max_value": 1.0, "format": "percent"}
    st.dataframe(
        per_class_frame(report).sort_values("f1"),
        hide_index=True,
        key="per_class_table",
        column_config={
            "breed": st.column_config.TextColumn("breed", pinned=True),
            "precision": st.column_config.ProgressColumn("precision", **score),
            "recall": st.column_config.ProgressColumn("recall", help="Per-breed accuracy", **score),
            "f1": st.column_config.ProgressColumn("F1", **score),
            "support": st.column_config.NumberColumn("test images", format="%d"),
        },
    )
    st.caption("Sorted by F1, weakest first; click a column header to sort by it.")


def pairs_chart(report: dict) -> None:
    st.subheader("Most confused breeds")
    pairs = confused_pairs(report, TOP_PAIRS)
    if pairs.empty:
        st.success(
            "No confusions: every test image was classified correctly.", icon=":material/check_circle:"
        )
        return
    pairs["pair"] = pairs["true"] + " → " + pairs["predicted"]
    fig = px.bar(
        pairs, x="count", y="pair", orientation="h", text="count",
        custom_data=["true", "predicted", "share"],
        labels={"count": "test images predicted as the other breed", "pair": ""},
    )  # fmt: skip
    fig.update_traces(
        hovertemplate="%{customdata[2]:.1%} of the <b>%{customdata[0]}</b> test images were predicted "
        "as <b>%{customdata[1]}</b> (%{x})<extra></extra>"
    )
    fig.update_layout(height=80 + 30 * len(pairs), margin={"t": 10, "b": 10})
    fig.update_yaxes(categoryorder="array", categoryarray=pairs["pair"].tolist()[::-1])
    st.plotly_chart(fig, key="confused_pairs_chart")
    st.caption("true breed → predicted breed, the largest off-diagonal cells of the confusion matrix.")


def gallery(store: RunStore, record: RunRecord, report: dict) -> None:
    st.subheader("Misclassified test images")
    if not has_samples(report):
        st.info("This evaluation does not list its test images; evaluate the run again to see them.")
        return
    wrong = mistakes_by_class(report)
    if not wrong:
        st.success("No test image was misclassified.", icon=":material/check_circle:")
        return
    key = (
        str(store.workspace),
        json.dumps(record.config.get("data", {}), sort_keys=True),
        int(record.config["train"]["image_size"]),
    )
    try:
        check_run_data(record)
        images, labels = test_images(*key)
        if not matches_test_split(report, labels):  # the data may have changed since they were loaded
            test_images.clear(*key)
            images, labels = test_images(*key)
    except PetLabError as exc:
        state.show_error(exc)
        st.caption("The test images cannot be read, so the mistakes are not shown.")
        return
    if not matches_test_split(report, labels):
        st.warning(
            "The test images have changed since this evaluation; evaluate the run again to see its mistakes.",
            icon=":material/sync_problem:",
        )
        if st.button("Evaluate again on the current test split", key="reevaluate_run"):
            evaluate(store, record)
        return
    total = sum(wrong.values())
    breed = st.selectbox(
        "True breed", [ALL, *wrong], key="gallery_breed",
        format_func=lambda b: f"{b} ({total if b == ALL else wrong[b]})",
    )  # fmt: skip
    indices = misclassified(report, None if breed == ALL else breed, GALLERY_CAP)
    shown = total if breed == ALL else wrong[breed]
    st.caption(
        f"Showing {len(indices)} of {shown} mistakes, most confident first: "
        "true breed → predicted (confidence)."
    )
    names = report["class_names"]
    grid = st.columns(GALLERY_COLUMNS)
    for n, i in enumerate(indices):
        true, predicted = names[report["labels"][i]], names[report["predicted"][i]]
        grid[n % GALLERY_COLUMNS].image(
            thumbnail(np.asarray(images[i]), 160),
            caption=f"{true} → {predicted} ({100 * report['confidence'][i]:.0f}%)",
        )


def comparison(store: RunStore, record: RunRecord, report: dict, runs: list[RunRecord]) -> None:
    st.subheader("Compare with another run")
    others = {r.id: r for r in runs if r.id != record.id}
    if not others:
        st.caption("Train another run to compare it with this one.")
        return
    other_id = st.selectbox(
        "Other run", list(others), index=None, format_func=lambda i: run_label(others[i]),
        placeholder="Choose a run", key="compare_run",
    )  # fmt: skip
    if other_id is None:
        return
    other = load_evaluation(store.run_dir(other_id))
    if other is None:
        st.info(f"Run {other_id} has no test evaluation yet: choose it above and evaluate it first.")
        return
    this, that = f"run {record.id}", f"run {other_id}"
    deltas = metric_deltas(report, other)
    cols = st.columns(3)
    for col, key, label in (
        (cols[0], "accuracy", "Test accuracy"),
        (cols[1], "top5_accuracy", "Top-5 accuracy"),
    ):
        value, delta = deltas[key]
        change = f"{100 * delta:+.1f} pp vs {that}"
        col.metric(f"{label}, {this}", f"{100 * value:.1f}%", change, delta_color=delta_color(change))
    value, delta = deltas["loss"]
    change = f"{delta:+.3f} vs {that}"
    cols[2].metric(f"Test loss, {this}", f"{value:.3f}", change, delta_color=delta_color(change, "inverse"))
    diff = recall_diff_frame(report, other, this, that)
    if diff.empty:
        st.info("The two runs have no breed in common.")
        return
    diff["difference (pp)"] = 100 * diff["difference"]
    fig = px.bar(
        diff, x="breed", y="difference (pp)", color="better",
        color_discrete_map={this: "#2e86ab", that: "#e4572e", "same": "#8d99ae"},
        hover_data={this: ":.1%", that: ":.1%", "better": False},
        category_orders={"breed": diff["breed"].tolist()},
        labels={"difference (pp)": f"per-breed accuracy, {this} − {that} (pp)", "breed": ""},
    )  # fmt: skip
    fig.update_layout(height=420, margin={"t": 10, "b": 10}, xaxis_tickangle=-60, legend_title="ahead")
    st.plotly_chart(fig, key="compare_recall_chart")
    st.caption(f"Per-breed accuracy (recall) of {this} minus {that}, on each run's own test split.")


def delta_color(change: str, color: str = "normal") -> str:
    """Grey for a change that rounds to zero ("+0.0 pp"), else `color`."""
    return "off" if not any(c in "123456789" for c in change.split(" ")[0]) else color


def export_section(store: RunStore, record: RunRecord) -> None:
    run_dir = store.run_dir(record.id)
    st.caption(
        f"Files go to `runs/{record.id}/{export_dir(run_dir).name}/` in the workspace (exporting again "
        "replaces them), with labels.txt (the class names, one a "
        "line, in output order). Every model takes raw 0-255 RGB images at "
        f"{record.config['train']['image_size']} px."
    )
    cols = st.columns(len(EXPORTS))
    clicked = None
    for col, (key, label, fmt, quantize, _, help_text) in zip(cols, EXPORTS, strict=True):
        if col.button(f"Export {label}", key=f"export_{key}", help=help_text, width="stretch"):
            clicked = (fmt, quantize)
    if clicked:
        bar = ProgressBar()
        try:
            export_run(store, record.id, clicked[0], quantize=clicked[1], progress=bar)
        except PetLabError as exc:
            state.show_error(exc)
        finally:
            bar.clear()
    downloads(record.id, run_dir)
    st.markdown("**TensorBoard**: the training curves of every run, with")
    st.code(f"tensorboard --logdir {state.redact(str(store.runs_path))}", language="bash")


def downloads(run_id: int, run_dir: Path) -> None:
    ready = [
        (key, label, suffix, export_path(run_dir, fmt, quantize))
        for key, label, fmt, quantize, suffix, _ in EXPORTS
    ]
    ready = [item for item in ready if item[3].exists()]
    if not ready:
        st.caption("Nothing exported yet.")
        return
    cols = st.columns(len(ready) + 1)
    for col, (key, label, suffix, path) in zip(cols, ready, strict=False):
        data = (lambda p=path: zip_folder(p)) if path.is_dir() else (lambda p=path: p.read_bytes())
        col.download_button(
            f"{label} ({format_bytes(size_of(path))})", data, file_name=f"petlab-run{run_id}{suffix}",
            mime="application/zip" if path.is_dir() else "application/octet-stream",
            key=f"download_{key}", icon=":material/download:", on_click="ignore", width="stretch",
        )  # fmt: skip
    labels = labels_path(run_dir)
    if labels.is_file():
        cols[-1].download_button(
            "labels.txt", labels.read_text(encoding="utf-8"), file_name=f"petlab-run{run_id}-labels.txt",
            mime="text/plain", key="download_labels", icon=":material/download:", on_click="ignore",
            width="stretch",
        )  # fmt: skip


st.title("Evaluation")
store = state.store()
record, runs = choose_run(store)
report = load_evaluation(store.run_dir(record.id))
if report is None:
    evaluate_button(store, record)
    st.subheader("Export")
    export_section(store, record)
    st.stop()

headline(report)
results, mistakes, compare, export = st.tabs(["Test results", "Mistakes", "Compare runs", "Export"])
with results:
    st.subheader("Confusion matrix")
    confusion_heatmap(report)
    per_class_table(report)
with mistakes:
    pairs_chart(report)
    gallery(store, record, report)
with compare:
    comparison(store, record, report, runs)
with export:
    export_section(store, record)
