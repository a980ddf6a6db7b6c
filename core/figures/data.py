"""Dataset figures: images per breed."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.tables.dataset import SPECIES_COLORS


def label_counts_bar(table: pd.DataFrame) -> go.Figure:
    """Images per breed (columns class, species, count), in the table's order, cats and dogs coloured."""
    import plotly.express as px  # here, not at import: express costs the first page ~0.4 s

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
