"""The run report's sections as HTML fragments: settings, data counts, curves, test results, mistakes.

Every text that comes from a person or a data set (class names, paths, settings, error messages)
is escaped here, once, with the html module or pandas' escaping `to_html`. Figures are the
dashboard's own (core.figures), drawn by the plotly.js the page holds once (include_plotlyjs=False).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from core import config as cfg
from core.figures.curves import training_curves
from core.figures.evaluation import confusion_heatmap
from core.runs.records import RunRecord
from core.tables.evaluation import confusion_frame, headline_metrics, per_class_frame
from core.tables.runs import CURVE_METRICS, format_duration

NOT_EVALUATED = (
    "This run has no test evaluation yet, so there are no test results: evaluate it on the Evaluation "
    "page (or with python -m core evaluate --run {run}) and write the report again."
)
NO_EPOCHS = "This run has no finished epoch yet, so there are no curves."


def note(text: str) -> str:
    """A highlighted sentence (escaped)."""
    return f'<p class="note">{escape(text)}</p>'


def settings_table(values: Mapping[str, Any], caption: str) -> str:
    """A two-column table of setting names and values (both escaped), with a caption."""
    rows = "".join(
        f"<tr><th>{escape(str(name))}</th><td>{escape(_shown(value))}</td></tr>"
        for name, value in values.items()
    )
    return f'<table class="settings"><caption>{escape(caption)}</caption>{rows}</table>'


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run_facts(record: RunRecord) -> dict[str, Any]:
    """What the run was and how it ended: kind, parent, status, epochs, duration, best validation."""
    metrics = record.metrics
    best = metrics.get("best_val_accuracy")
    facts = {
        "kind": record.kind,
        "started from run": record.parent,
        "status": record.shown_status,
        "epochs run": metrics.get("epochs_run"),
        "best epoch": metrics.get("best_epoch"),
        "best validation accuracy": None if best is None else f"{100 * best:.1f}%",
        "duration": format_duration(record.duration),
    }
    if record.error or record.broken:
        facts["note"] = record.broken or record.error
    return facts


def config_section(record: RunRecord) -> str:
    """The run's facts and its data, head-training and (if any) fine-tuning settings, side by side."""
    tables = [
        settings_table(run_facts(record), "Run"),
        settings_table(cfg.to_dict(record.data), "Data"),
        settings_table(cfg.to_dict(record.train), "Head training"),
    ]
    if record.finetune is not None:
        tables.append(settings_table(cfg.to_dict(record.finetune), "Fine-tuning"))
    return f'<div class="columns">{"".join(tables)}</div>'


def frame_table(frame: pd.DataFrame, formatters: dict | None = None) -> str:
    """A table (pandas' to_html, which escapes every cell and header) without the row index."""
    return frame.to_html(index=False, escape=True, border=0, formatters=formatters, na_rep="—")


def data_section(description: dict | None, unavailable: str | None) -> str:
    """Images per split and per class and split (core.data DataSource.describe()), or why not shown."""
    if description is None:
        return note(f"The data's counts are not shown: {unavailable or 'the data source cannot be opened.'}")
    sizes = description["sizes"]
    per_split = pd.DataFrame([{"split": split, "images": int(sizes[split])} for split in cfg.SPLITS])
    per_class = pd.DataFrame({"breed": description["classes"]})
    for split in cfg.SPLITS:
        per_class[split] = description["label_counts"][split]
    per_class["all"] = per_class[list(cfg.SPLITS)].sum(axis=1)
    summary = f"{len(description['classes'])} classes, {sum(sizes.values())} images ({description['kind']})."
    return (
        f'<p>{escape(summary)}</p><div class="columns">{frame_table(per_split)}{frame_table(per_class)}</div>'
    )


def figure_div(figure: go.Figure, div_id: str) -> str:
    """A plotly figure as a <div id=div_id> and the script drawing it with the page's plotly.js."""
    config = {"displaylogo": False, "responsive": True}
    return pio.to_html(figure, full_html=False, include_plotlyjs=False, div_id=div_id, config=config)


def curves_section(frame: pd.DataFrame) -> str:
    """Accuracy and loss per epoch (core.tables.runs.history_frame of one run), train and validation."""
    if frame.empty:
        return note(NO_EPOCHS)
    figures = (
        figure_div(training_curves(frame, metric, "split", metric.capitalize()), f"curve-{metric}")
        for metric in CURVE_METRICS
    )
    return f'<div class="curves">{"".join(figures)}</div>'


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def per_class_table(report: dict) -> str:
    """Precision, recall and F1 per breed (core.tables.evaluation.per_class_frame), weakest F1 first."""
    table = per_class_frame(report).sort_values("f1").rename(columns={"support": "test images"})
    return frame_table(table, {"precision": percent, "recall": percent, "f1": percent})


def mistakes_gallery(mistakes: Iterable[tuple[str, str]]) -> str:
    """Thumbnails (caption, data: URI) of misclassified test images, captions escaped."""
    figures = "".join(
        f'<figure><img src="{escape(uri)}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
        for caption, uri in mistakes
    )
    return f'<div class="mistakes">{figures}</div>'


def results_section(
    run_id: int, report: dict | None, mistakes: list[tuple[str, str]], why_none: str | None
) -> str:
    """Headline metrics, confusion matrix, per-breed table and the most confident mistakes; or why none."""
    if report is None:
        return note(NOT_EVALUATED.format(run=run_id))
    matrix = figure_div(confusion_heatmap(confusion_frame(report)), "confusion-matrix")
    parts = [
        settings_table(headline_metrics(report), "Headline"),
        "<h3>Confusion matrix</h3>",
        matrix,
        "<h3>Per breed</h3>",
        per_class_table(report),
        "<h3>Misclassified test images, most confident first</h3>",
        mistakes_gallery(mistakes) if mistakes else note(why_none or "No mistake to show."),
    ]
    return "\n".join(parts)
