"""Training curves: one metric per epoch, train and validation, for one run or several."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.figures.style import MARKERS_UP_TO_EPOCHS, PALETTE, SPLIT_DASHES, epoch_axis


def training_curves(frame: pd.DataFrame, metric: str, color: str, title: str) -> go.Figure:
    """One metric's curves per epoch from core.tables.runs.history_frame; train dashed, validation solid.

    `color` is the column that tells the lines apart by colour ("split" for one run, "run" to compare).
    Built from plain scatter traces, not plotly express: the live panel rebuilds it at every epoch, and
    express takes 40-100 ms a figure where this takes a few.
    """
    part = frame[frame["metric"] == metric]
    last_epoch = int(part["epoch"].max()) if len(part) else 1
    mode = "lines+markers" if last_epoch <= MARKERS_UP_TO_EPOCHS else "lines"
    fig = go.Figure()
    for n, (group, lines) in enumerate(part.groupby(color, sort=False)):
        for split, line in lines.groupby("split", sort=False):
            fig.add_trace(
                go.Scatter(
                    x=line["epoch"].to_numpy(),
                    y=line["value"].to_numpy(),
                    mode=mode,
                    name=str(split) if color == "split" else f"{group}, {split}",
                    line={"color": PALETTE[n % len(PALETTE)], "dash": SPLIT_DASHES.get(str(split), "solid")},
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
