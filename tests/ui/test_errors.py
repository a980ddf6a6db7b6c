"""ui.errors: a PetLabError is shown as its one sentence, without server paths; other errors are bugs."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def script_with_hint() -> None:
    import streamlit as st

    from core.errors import BadInputError
    from core.workspace import resolve_workspace
    from ui import errors

    with errors.shown(hint="Choose another folder."):
        raise BadInputError(f"The folder {resolve_workspace() / 'pets'} has no images.")
    st.write("the rest of the page")
    with errors.shown(stop=True):
        raise BadInputError("Nothing to show.")
    st.write("never drawn")


def script_with_a_bug() -> None:
    from ui import errors

    with errors.shown():
        raise ValueError("a bug")


def test_an_error_is_shown_with_its_hint_and_the_page_goes_on_or_stops(workspace):
    at = AppTest.from_function(script_with_hint).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["The folder workspace/pets has no images.", "Nothing to show."]
    assert [c.value for c in at.caption] == ["Choose another folder."]
    assert [m.value for m in at.markdown] == ["the rest of the page"]


def test_other_exceptions_are_not_hidden(workspace):
    at = AppTest.from_function(script_with_a_bug).run()
    assert at.exception and "a bug" in at.exception[0].message


def script_with_a_flag_remedy() -> None:
    from core.data.base import require_path
    from ui import errors

    with errors.shown():
        require_path(None, "folder")


def test_the_dashboard_says_what_to_do_in_its_own_words_not_in_command_line_flags(workspace):
    from core.data.base import require_path
    from core.errors import BadInputError, in_dashboard_words

    try:
        require_path(None, "folder")
    except BadInputError as exc:
        assert "--path" in str(exc)  # the command line keeps its flag
        assert "--" not in in_dashboard_words(exc) and "sidebar" in in_dashboard_words(exc)
    assert in_dashboard_words(BadInputError("Same for both.")) == "Same for both."
    at = AppTest.from_function(script_with_a_flag_remedy).run()
    assert [e.value for e in at.error] == ["The folder source needs a folder; choose one in the sidebar."]
