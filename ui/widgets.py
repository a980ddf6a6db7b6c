"""Small Streamlit pieces shared by pages."""

from __future__ import annotations

import streamlit as st


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
