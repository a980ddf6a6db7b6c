"""The one way the dashboard shows a PetLab error: its one sentence in the dashboard's words, without
the server's paths.

Pages wrap whatever may fail in `with errors.shown(): ...`; a PetLabError raised inside
is drawn with `show` and goes no further, so the rest of the page still draws (or the
page stops there, with `stop=True`). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.errors import PetLabError, in_dashboard_words
from ui import state

ERROR_ICON = ":material/error:"


def show(error: PetLabError | str) -> None:
    """Show an error as its one sentence (never a traceback, never a server path)."""
    st.error(sentence(error), icon=ERROR_ICON)


def sentence(error: PetLabError | str) -> str:
    """An error's one sentence as the dashboard says it: its dashboard wording, server paths redacted."""
    return state.redact(in_dashboard_words(error))


@contextmanager
def shown(hint: str | None = None, stop: bool = False) -> Iterator[None]:
    """Show a PetLabError raised in the block instead of raising it.

    `hint` is a caption drawn under the error (what to do next); `stop` ends the page's run
    after it, for a page that cannot draw anything more without what failed.
    """
    try:
        yield
    except PetLabError as exc:
        show(exc)
        if hint:
            st.caption(hint)
        if stop:
            st.stop()
