"""Dataset figures: images per breed."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.tables.dataset import SPECIES_COLORS


def label_counts_bar(table: pd.DataFrame) -> go.Figure:
    """Images per breed (columns class, species, count), in the table's order, cats and dogs coloured.

    Plain bar traces (one per species, for the legend), not plotly express: the Dataset page
    redraws it on every rerun, and express took ~0.2 s of each.
    """
    traces = [
        go.Bar(
            x=rows["class"].tolist(),
            y=rows["count"].tolist(),
            name=species,
            marker_color=SPECIES_COLORS.get(species),
            hovertemplate="breed=%{x}<br>images=%{y}<extra>" + species + "</extra>",
        )
        for species, rows in table.groupby("species", sort=True)
    ]
    layout = {
        "height": 380,
        "margin": {"t": 10, "b": 10},
        "barmode": "relative",
        "legend": {"title": {"text": "species"}},
        "xaxis": {
            "title": {"text": "breed"},
            "tickangle": -45,
            "categoryorder": "array",
            "categoryarray": table["class"].tolist(),
        },
        "yaxis": {"title": {"text": "images"}},
    }
    return go.Figure(traces, layout)
