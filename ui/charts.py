"""Every plotly figure the dashboard draws, each built by one named function.

Pure functions: a table in (from core.tables), a plotly figure out; no Streamlit, so each
is testable on its own, and the pages only place them (`st.plotly_chart(charts.x(...))`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core.tables.dataset import SPECIES_COLORS
from core.tables.evaluation import row_shares

# Curves get a dot per epoch only while the dots stay apart.
MARKERS_UP_TO_EPOCHS = 30
MAX_EPOCH_TICKS = 10
SPLIT_DASHES = {"validation": "solid", "train": "dash"}
RUN_COLORS = ("#2e86ab", "#e4572e", "#8d99ae")  # this run, the other run, "same"
CONFUSION_HOVER = (
    "true <b>%{y}</b><br>predicted <b>%{x}</b><br>"
    "%{customdata[0]} of %{customdata[1]} test images (%{customdata[2]:.1%})<extra></extra>"
)
PAIRS_HOVER = (
    "%{customdata[2]:.1%} of the <b>%{customdata[0]}</b> test images were predicted "
    "as <b>%{customdata[1]}</b> (%{x})<extra></extra>"
)


def epoch_tick_step(last_epoch: int, max_ticks: int = MAX_EPOCH_TICKS) -> int:
    """Epochs between ticks: the first of 1, 2, 5, 10, 20, 50, … that gives at most `max_ticks` ticks."""
    magnitude = 1
    while True:
        for base in (1, 2, 5):
            step = base * magnitude
            if math.ceil(max(1, last_epoch) / step) <= max_ticks:
                return step
        magnitude *= 10


def epoch_axis(last_epoch: int) -> dict:
    """Layout of an epoch axis: whole epochs only, a readable number of ticks at any length."""
    return {"title": "epoch", "tickmode": "linear", "tick0": 0, "dtick": epoch_tick_step(last_epoch)}


def training_curves(frame: pd.DataFrame, metric: str, color: str, title: str) -> go.Figure:
    """One metric's curves per epoch from core.tables.runs.history_frame; train dashed, validation solid.

    `color` is the column that tells the lines apart by colour ("split" for one run, "run" to compare).
    Built from plain scatter traces, not plotly express: the live panel rebuilds it at every epoch, and
    express takes 40-100 ms a figure where this takes a few.
    """
    part = frame[frame["metric"] == metric]
    last_epoch = int(part["epoch"].max()) if len(part) else 1
    mode = "lines+markers" if last_epoch <= MARKERS_UP_TO_EPOCHS else "lines"
    palette = px.colors.qualitative.Plotly
    fig = go.Figure()
    for n, (group, lines) in enumerate(part.groupby(color, sort=False)):
        for split, line in lines.groupby("split", sort=False):
            fig.add_trace(
                go.Scatter(
                    x=line["epoch"].to_numpy(),
                    y=line["value"].to_numpy(),
                    mode=mode,
                    name=str(split) if color == "split" else f"{group}, {split}",
                    line={"color": palette[n % len(palette)], "dash": SPLIT_DASHES.get(str(split), "solid")},
                    legendgroup=str(group),
                )
            )
    fig.update_layout(
        title=title,
        height=320,
        margin={"t": 40, "b": 10},
        xaxis=epoch_axis(last_epoch),
        yaxis_title=metric,
    )
    return fig


def confusion_heatmap(
    counts: pd.DataFrame, normalize: bool = False, hide_diagonal: bool = False
) -> go.Figure:
    """The confusion matrix (core.tables.evaluation.confusion_frame) as a heatmap, true breeds as rows.

    `normalize` colours each cell by its share of the true breed's images; `hide_diagonal`
    leaves the correct predictions blank, so the colour scale shows the mistakes.
    """
    totals = counts.sum(axis=1).to_numpy()
    shares = row_shares(counts).to_numpy()
    z = np.array(shares if normalize else counts.to_numpy(), dtype=float)  # a writable copy
    if hide_diagonal:
        np.fill_diagonal(z, np.nan)
    names = list(counts.index)
    custom = np.dstack([counts.to_numpy(), np.repeat(totals[:, None], len(names), axis=1), shares])
    heatmap = go.Heatmap(
        z=z,
        x=names,
        y=names,
        customdata=custom,
        colorscale="Blues",
        xgap=1,
        ygap=1,
        zmin=0,
        zmax=1 if normalize else None,
        colorbar={"title": "share" if normalize else "images", "tickformat": ".0%" if normalize else ""},
        hovertemplate=CONFUSION_HOVER,
    )
    fig = go.Figure(heatmap)
    side = max(360, 22 * len(names) + 160)
    fig.update_layout(height=side, margin={"t": 10, "b": 10, "l": 10, "r": 10})
    fig.update_xaxes(title="predicted breed", tickangle=-60, tickfont_size=10, type="category")
    fig.update_yaxes(title="true breed", autorange="reversed", tickfont_size=10, type="category")
    return fig


def confused_pairs_bar(pairs: pd.DataFrame) -> go.Figure:
    """The most confused breed pairs (core.tables.evaluation.confused_pairs), largest on top."""
    pairs = pairs.assign(pair=pairs["true"] + " → " + pairs["predicted"])
    fig = px.bar(
        pairs,
        x="count",
        y="pair",
        orientation="h",
        text="count",
        custom_data=["true", "predicted", "share"],
        labels={"count": "test images predicted as the other breed", "pair": ""},
    )
    fig.update_traces(hovertemplate=PAIRS_HOVER)
    fig.update_layout(height=80 + 30 * len(pairs), margin={"t": 10, "b": 10})
    fig.update_yaxes(categoryorder="array", categoryarray=pairs["pair"].tolist()[::-1])
    return fig


def recall_difference_bar(diff: pd.DataFrame, this: str, that: str) -> go.Figure:
    """Per-breed recall of run `this` minus run `that` (core.tables.evaluation.recall_diff_frame), in pp."""
    diff = diff.assign(**{"difference (pp)": 100 * diff["difference"]})
    fig = px.bar(
        diff,
        x="breed",
        y="difference (pp)",
        color="better",
        color_discrete_map=dict(zip((this, that, "same"), RUN_COLORS, strict=True)),
        hover_data={this: ":.1%", that: ":.1%", "better": False},
        category_orders={"breed": diff["breed"].tolist()},
        labels={"difference (pp)": f"per-breed accuracy, {this} − {that} (pp)", "breed": ""},
    )
    fig.update_layout(height=420, margin={"t": 10, "b": 10}, xaxis_tickangle=-60, legend_title="ahead")
    return fig


def label_counts_bar(table: pd.DataFrame) -> go.Figure:
    """Images per breed (columns class, species, count), in the table's order, cats and dogs coloured."""
    fig = px.bar(
        table,
        x="class",
        y="count",
        color="species",
        color_discrete_map=SPECIES_COLORS,
        category_orders={"class": table["class"].tolist()},
        labels={"class": "breed", "count": "images"},
    )
    fig.update_layout(height=380, margin={"t": 10, "b": 10}, xaxis_tickangle=-45)
    return fig


def lr_finder_curve(curve: pd.DataFrame, suggestion: float | None) -> go.Figure:
    """A learning-rate finder's loss (smoothed; raw faint) against the learning rate on a log axis.

    `curve` has columns lr, loss, raw_loss (core.runs.layout.RunPaths.lr_curve); the suggested
    rate, if any, is marked with a dashed line and a dot on the curve.
    """
    fig = go.Figure()
    fig.add_scatter(x=curve["lr"], y=curve["raw_loss"], name="loss per batch", opacity=0.3, mode="lines")
    fig.add_scatter(x=curve["lr"], y=curve["loss"], name="loss (smoothed)", mode="lines")
    if suggestion is not None:
        at = int(np.argmin(np.abs(np.log(curve["lr"].to_numpy()) - math.log(suggestion))))
        fig.add_vline(x=suggestion, line_dash="dash", line_color=RUN_COLORS[1])
        fig.add_scatter(
            x=[suggestion],
            y=[curve["loss"].iloc[at]],
            name=f"suggested {suggestion:.2g}",
            mode="markers",
            marker={"size": 11, "color": RUN_COLORS[1]},
        )
    fig.update_layout(
        height=320,
        margin={"t": 40, "b": 10},
        title="Loss against learning rate",
        xaxis={"type": "log", "title": "learning rate"},
        yaxis={"title": "training loss"},
    )
    return fig


def sweep_curves(frame: pd.DataFrame, metric: str) -> go.Figure:
    """The validation curves of a sweep's members overlaid (core.tables.sweeps.members_curves)."""
    part = frame[frame["metric"] == metric]
    last_epoch = int(part["epoch"].max()) if len(part) else 1
    fig = px.line(
        part,
        x="epoch",
        y="value",
        color="run",
        markers=last_epoch <= MARKERS_UP_TO_EPOCHS,
        title=f"Validation {metric} per setting",
        labels={"value": f"validation {metric}", "run": ""},
    )
    fig.update_layout(height=340, margin={"t": 40, "b": 10}, xaxis=epoch_axis(last_epoch))
    return fig


def sweep_parallel(frame: pd.DataFrame) -> go.Figure:
    """Settings against validation accuracy, one line per finished member (core.tables.sweeps.settings_frame).

    The learning rate is shown as log10, so a grid of rates spreads evenly.
    """
    shown = frame.copy()
    if "learning rate" in shown:
        shown["learning rate"] = np.log10(shown["learning rate"])
        shown = shown.rename(columns={"learning rate": "log10 learning rate"})
    fig = px.parallel_coordinates(
        shown, color="val accuracy %", color_continuous_scale=px.colors.sequential.Viridis
    )
    fig.update_layout(height=360, margin={"t": 50, "b": 20, "l": 60, "r": 40})
    return fig
