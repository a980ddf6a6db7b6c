"""Colours, line styles and the epoch axis every PetLab figure shares."""

from __future__ import annotations

import math

from plotly.colors import qualitative

# Curves get a dot per epoch only while the dots stay apart.
MARKERS_UP_TO_EPOCHS = 30
MAX_EPOCH_TICKS = 10
SPLIT_DASHES = {"validation": "solid", "train": "dash"}
RUN_COLORS = ("#2e86ab", "#e4572e", "#8d99ae")  # this run, the other run, "same"
PALETTE = qualitative.Plotly  # plotly.colors, not plotly.express: express costs ~0.4 s to import


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
