"""Experiment figures: the learning-rate finder's curve, a sweep's curves and settings."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.figures.style import MARKERS_UP_TO_EPOCHS, RUN_COLORS, epoch_axis


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
    import plotly.express as px  # here, not at import: express costs the first page ~0.4 s

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
    import plotly.express as px  # here, not at import: express costs the first page ~0.4 s

    shown = frame.copy()
    if "learning rate" in shown:
        shown["learning rate"] = np.log10(shown["learning rate"])
        shown = shown.rename(columns={"learning rate": "log10 learning rate"})
    fig = px.parallel_coordinates(
        shown, color="val accuracy %", color_continuous_scale=px.colors.sequential.Viridis
    )
    fig.update_layout(height=360, margin={"t": 50, "b": 20, "l": 60, "r": 40})
    return fig
