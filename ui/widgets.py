"""Small Streamlit pieces shared by pages: a progress bar for core's callbacks, the finished-run picker,
a photo's ranked predictions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.runs.records import RunRecord
from core.runs.store import RunStore
from core.tables.evaluation import run_label
from core.tables.runs import predictable_runs

# What Streamlit's markdown would read as formatting: CommonMark punctuation, and ':' and '$'
# (Streamlit's :color[...] / :material/...: directives and LaTeX).
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


def literal(text: str) -> str:
    """`text` escaped for a markdown label, so a class or file name shows exactly as it is."""
    return _MARKDOWN.sub(r"\\\1", text)


class ProgressBar:
    """A core progress callback (stage, done, total) drawn as one st.progress bar."""

    def __init__(self) -> None:
        self._slot = st.empty()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if total:
            self._slot.progress(min(1.0, done / total), text=f"{stage}: {done} / {total}")
        else:
            self._slot.progress(0.0, text=f"{stage}…")

    def clear(self) -> None:
        """Remove the bar."""
        self._slot.empty()


@contextmanager
def progress_bar() -> Iterator[ProgressBar]:
    """A ProgressBar for the block, removed when it ends (also when it fails)."""
    bar = ProgressBar()
    try:
        yield bar
    finally:
        bar.clear()


def pick_finished_run(
    store: RunStore, label: str, key: str, empty_text: str
) -> tuple[RunRecord, list[RunRecord]]:
    """A selectbox of finished runs, best validation accuracy first; stops the page when there are none.

    Returns (the chosen RunRecord, all finished runs).
    """
    runs = predictable_runs(store)
    if not runs:
        st.info(empty_text)
        st.page_link("views/training.py", label="Go to Training", icon=":material/model_training:")
        st.stop()
    by_id = {r.id: r for r in runs}
    chosen = st.selectbox(label, list(by_id), format_func=lambda i: run_label(by_id[i]), key=key)
    return by_id[chosen], runs


def top_predictions(top: list[tuple[str, float]], key: str) -> None:
    """Ranked (class, probability 0-1) pairs as one labelled bar each, in order, in a container keyed `key`.

    Native bars rather than a plotly chart: they are on screen as soon as the page's delta arrives.
    """
    with st.container(key=key):
        for name, probability in top:
            # A float32 softmax can round a hair above 1, which st.progress refuses.
            st.progress(min(max(probability, 0.0), 1.0), text=f"{literal(name)} · {100 * probability:.1f}%")
