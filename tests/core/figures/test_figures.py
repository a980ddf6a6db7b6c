"""core.figures: the dashboard's and the report's figures, built from small tables, without Streamlit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.figures import curves, data, evaluation, style
from core.tables.evaluation import confusion_frame

NAMES = ["Abyssinian", "beagle", "pug"]
REPORT = {"class_names": NAMES, "confusion_matrix": [[2, 1, 1], [1, 2, 0], [0, 2, 1]]}


def history(epochs: int, runs: int = 1) -> pd.DataFrame:
    rows = [
        {"run": f"run {r}", "epoch": e, "metric": m, "split": s, "value": 1.0 / e}
        for r in range(1, runs + 1)
        for e in range(1, epochs + 1)
        for m in ("accuracy", "loss")
        for s in ("train", "validation")
    ]
    return pd.DataFrame(rows, columns=["run", "epoch", "metric", "split", "value"])


@pytest.mark.parametrize(
    ("epochs", "step"), [(1, 1), (10, 1), (11, 2), (25, 5), (50, 5), (51, 10), (120, 20), (1000, 100)]
)
def test_epoch_ticks_stay_whole_and_few(epochs, step):
    assert style.epoch_tick_step(epochs) == step
    assert math.ceil(epochs / step) <= style.MAX_EPOCH_TICKS


def test_training_curves_axes_ticks_and_markers():
    short = curves.training_curves(history(5), "loss", "split", "Loss")
    assert short.layout.title.text == "Loss"
    assert short.layout.xaxis.title.text == "epoch" and short.layout.yaxis.title.text == "loss"
    assert (short.layout.xaxis.tickmode, short.layout.xaxis.dtick) == ("linear", 1)
    assert {t.name for t in short.data} == {"train", "validation"}
    assert {t.mode for t in short.data} == {"lines+markers"}
    dashes = {t.name: t.line.dash for t in short.data}
    assert dashes == {"train": "dash", "validation": "solid"}

    long = curves.training_curves(history(200, runs=2), "accuracy", "run", "Accuracy")
    assert long.layout.xaxis.dtick == 20
    assert {t.mode for t in long.data} == {"lines"}  # 200 dots per line would hide the curve
    assert {t.name for t in long.data} == {
        "run 1, train",
        "run 1, validation",
        "run 2, train",
        "run 2, validation",
    }


def test_training_curves_of_no_epochs_yet():
    figure = curves.training_curves(history(0), "loss", "split", "Loss")
    assert figure.layout.xaxis.dtick == 1 and not figure.data


def test_confusion_heatmap_counts_shares_and_hidden_diagonal():
    counts = confusion_frame(REPORT)
    figure = evaluation.confusion_heatmap(counts)
    (heatmap,) = figure.data
    assert list(heatmap.x) == NAMES and list(heatmap.y) == NAMES
    assert np.array_equal(np.asarray(heatmap.z), counts.to_numpy())
    assert (
        figure.layout.xaxis.title.text == "predicted breed" and figure.layout.yaxis.title.text == "true breed"
    )
    assert figure.layout.yaxis.autorange == "reversed"  # the first breed on top, like the table
    assert heatmap.customdata[2][1].tolist() == [2, 3, 2 / 3]  # count, row total, share

    shares = evaluation.confusion_heatmap(counts, normalize=True, hide_diagonal=True).data[0]
    z = np.asarray(shares.z, dtype=float)
    assert np.isnan(np.diag(z)).all() and z[0, 1] == pytest.approx(0.25)
    assert shares.zmax == 1 and shares.colorbar.tickformat == ".0%"


def test_confused_pairs_bar_largest_on_top():
    pairs = pd.DataFrame(
        {
            "true": ["pug", "beagle"],
            "predicted": ["beagle", "Abyssinian"],
            "count": [2, 1],
            "share": [0.6, 0.3],
        }
    )
    figure = evaluation.confused_pairs_bar(pairs)
    assert list(figure.data[0].y) == ["pug → beagle", "beagle → Abyssinian"]
    assert list(figure.layout.yaxis.categoryarray) == ["beagle → Abyssinian", "pug → beagle"]
    assert "pair" not in pairs.columns  # the caller's table is left as it was


def test_recall_difference_bar_in_points_coloured_by_the_run_ahead():
    diff = pd.DataFrame(
        {
            "breed": ["pug", "beagle"],
            "run 1": [0.9, 0.5],
            "run 2": [0.4, 0.75],
            "difference": [0.5, -0.25],
            "better": ["run 1", "run 2"],
        }
    )
    figure = evaluation.recall_difference_bar(diff, "run 1", "run 2")
    bars = {trace.name: (list(trace.x), list(trace.y)) for trace in figure.data}
    assert bars == {"run 1": (["pug"], [50.0]), "run 2": (["beagle"], [-25.0])}
    assert figure.layout.yaxis.title.text == "per-breed accuracy, run 1 − run 2 (pp)"


def test_label_counts_bar_keeps_the_table_order():
    table = pd.DataFrame({"class": ["pug", "Abyssinian"], "species": ["dog", "cat"], "count": [5, 3]})
    figure = data.label_counts_bar(table)
    assert list(figure.layout.xaxis.categoryarray) == ["pug", "Abyssinian"]
    assert figure.layout.xaxis.title.text == "breed" and figure.layout.yaxis.title.text == "images"
    assert {trace.name for trace in figure.data} == {"cat", "dog"}
