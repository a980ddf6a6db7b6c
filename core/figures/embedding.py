"""The embedding map: every image of a split as a point, coloured by breed or by cat/dog.

WebGL points (go.Scattergl), one trace per colour so the legend names them and a click on a
legend entry hides it. Each point's customdata is its row in the map's table
(core.embeddings.maps), which is how a click or a box/lasso selection comes back to the page;
the hover text is the class and file name (plotly's hover labels show text only). With a class
highlighted, its points keep their colour and are drawn on top; every other point is grey.
Nothing per point but coordinates, a row number and a short text, so 20,000 points stay light.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from core.tables.dataset import SPECIES_COLORS

COLOR_COLUMNS = {"breed": "class_name", "species": "species"}  # what "colour by" means in the table
BREED_PALETTE = qualitative.Dark24 + qualitative.Light24  # 48 colours: the 37 Oxford breeds each their own
MUTED = "#c9ced6"
HOVER = "%{hovertext}<extra></extra>"
MAP_HEIGHT = 560  # px for the points; the legend below gets LEGEND_ROW px per row of LEGEND_COLUMNS
LEGEND_ROW, LEGEND_COLUMNS = 19, 3


def marker_size(points: int) -> int:
    """Smaller points the more there are, so that dense clusters still show their shape."""
    return 7 if points <= 2_000 else 5 if points <= 10_000 else 4


def group_colors(frame: pd.DataFrame, color_by: str) -> dict[str, str]:
    """The colour of each class (palette by class order) or species (the Dataset page's colours)."""
    if color_by == "species":
        kinds = frame["species"].cat.categories
        return {str(kind): SPECIES_COLORS.get(str(kind), SPECIES_COLORS["other"]) for kind in kinds}
    classes = frame["class_name"].cat.categories
    return {str(name): BREED_PALETTE[n % len(BREED_PALETTE)] for n, name in enumerate(classes)}


def embedding_scatter(
    frame: pd.DataFrame, color_by: str = "breed", highlight: str | None = None
) -> go.Figure:
    """The map of core.embeddings.maps.read_map's table, coloured by "breed" or "species".

    `highlight`: a class name whose points alone keep their colour (drawn on top); None: all coloured.
    """
    column = COLOR_COLUMNS[color_by]
    colors = group_colors(frame, color_by)
    hover = (frame["class_name"].astype(str) + " · " + frame["item"].astype(str)).to_numpy()
    size = marker_size(len(frame))
    x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
    rows = np.arange(len(frame))
    traces = []
    if highlight is not None:
        chosen = (frame["class_name"] == highlight).to_numpy()
        mask_color = colors.get(str(frame.loc[chosen, column].iloc[0])) if chosen.any() else MUTED
        parts = [("other classes", ~chosen, MUTED, 0.35), (highlight, chosen, mask_color, 0.95)]
    else:
        codes, names = frame[column].cat.codes.to_numpy(), frame[column].cat.categories
        parts = [(str(names[c]), codes == c, colors[str(names[c])], 0.8) for c in np.unique(codes)]
    for name, mask, color, opacity in parts:
        # Plain dicts: go.Figure validates each trace once (a go.Scattergl would be validated twice).
        traces.append(
            {
                "type": "scattergl",
                "x": x[mask],
                "y": y[mask],
                "mode": "markers",
                "name": name,
                "customdata": rows[mask],
                "hovertext": hover[mask],
                "hovertemplate": HOVER,
                "marker": {"color": color, "size": size, "opacity": opacity},
            }
        )
    fig = go.Figure(traces)
    hidden = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}
    fig.update_layout(
        height=MAP_HEIGHT + LEGEND_ROW * math.ceil(len(traces) / LEGEND_COLUMNS),
        margin={"t": 10, "b": 10, "l": 10, "r": 10},
        xaxis=hidden,
        yaxis=hidden | {"scaleanchor": "x", "scaleratio": 1},
        # Below the map, across its width: 37 breeds beside it would squeeze the map.
        legend={"orientation": "h", "yanchor": "top", "y": -0.02, "itemsizing": "constant"},
        uirevision="embedding-map",  # keep the zoom when the colouring or highlight changes
    )
    # No dragmode: Streamlit then pans by default, where a click selects one point (with box or
    # lasso chosen in the toolbar, a click selects nothing).
    return fig
