"""The embedding map's figure (core.figures.embedding), up to 20,000 points.

Catches: an SVG scatter (too slow for thousands of points), points lost or doubled between
traces, customdata that does not name each point's row (the page turns clicks into rows with
it), and a highlight that leaves other classes coloured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data.breeds import OXFORD_BREEDS
from core.embeddings.maps import map_frame
from core.figures.embedding import MUTED, embedding_scatter
from core.tables.dataset import SPECIES_COLORS


def oxford_map(points: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(OXFORD_BREEDS), points)
    names = np.array([f"{OXFORD_BREEDS[label]}_{n}.jpg" for n, label in enumerate(labels)])
    coords = rng.normal(size=(points, 2)).astype(np.float32)
    return map_frame(coords, labels, np.arange(points), names, np.array(OXFORD_BREEDS), "train")


def rows_of(fig) -> np.ndarray:
    return np.concatenate([np.asarray(trace.customdata) for trace in fig.data])


def test_twenty_thousand_points_are_one_webgl_point_each():
    frame = oxford_map(20_000)
    fig = embedding_scatter(frame)
    assert {trace.type for trace in fig.data} == {"scattergl"}
    assert sum(len(trace.x) for trace in fig.data) == 20_000
    assert sorted(rows_of(fig).tolist()) == list(range(20_000))
    assert len(fig.data) == len(OXFORD_BREEDS)  # one legend entry per breed


def test_each_point_carries_its_row_and_hover_text():
    frame = oxford_map(300)
    for trace in embedding_scatter(frame).data:
        rows = np.asarray(trace.customdata)
        assert np.allclose(np.asarray(trace.x), frame["x"].to_numpy()[rows])
        assert set(frame["class_name"].astype(str).iloc[rows]) == {trace.name}
        assert list(trace.hovertext) == [
            f"{frame['class_name'].iloc[r]} · {frame['item'].iloc[r]}" for r in rows
        ]


def test_colour_by_species_uses_the_dataset_colours():
    fig = embedding_scatter(oxford_map(500), "species")
    assert {trace.name: trace.marker.color for trace in fig.data} == {
        "cat": SPECIES_COLORS["cat"],
        "dog": SPECIES_COLORS["dog"],
    }


def test_a_highlighted_breed_keeps_its_colour_and_the_rest_is_grey():
    frame = oxford_map(2_000)
    plain = {trace.name: trace.marker.color for trace in embedding_scatter(frame).data}
    fig = embedding_scatter(frame, highlight="beagle")
    grey, beagle = fig.data  # the highlighted class drawn last, on top
    assert beagle.name == "beagle" and beagle.marker.color == plain["beagle"]
    assert grey.marker.color == MUTED
    assert set(frame["class_name"].astype(str).iloc[np.asarray(beagle.customdata)]) == {"beagle"}
    assert "beagle" not in set(frame["class_name"].astype(str).iloc[np.asarray(grey.customdata)])
    assert len(grey.x) + len(beagle.x) == len(frame)
    by_species = embedding_scatter(frame, "species", highlight="Bengal").data[1]
    assert by_species.marker.color == SPECIES_COLORS["cat"]
