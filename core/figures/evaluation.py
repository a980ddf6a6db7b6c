"""Test-set figures: the confusion matrix, the most confused pairs, two runs' per-breed recall."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.figures.style import RUN_COLORS
from core.tables.evaluation import row_shares

CONFUSION_HOVER = (
    "true <b>%{y}</b><br>predicted <b>%{x}</b><br>"
    "%{customdata[0]} of %{customdata[1]} test images (%{customdata[2]:.1%})<extra></extra>"
)
PAIRS_HOVER = (
    "%{customdata[2]:.1%} of the <b>%{customdata[0]}</b> test images were predicted "
    "as <b>%{customdata[1]}</b> (%{x})<extra></extra>"
)


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
    import plotly.express as px  # here, not at import: express costs the first page ~0.4 s

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
    import plotly.express as px  # here, not at import: express costs the first page ~0.4 s

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
