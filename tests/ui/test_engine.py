"""The model engine (ui/engine.py): TensorFlow's side imported once per server, in the background."""

from __future__ import annotations

import os
import threading

import pytest

from core.errors import PetLabError
from tests.apptest import missing_module
from tests.test_layers import first_heavy_imports
from ui import engine


def test_a_loading_job_runs_in_the_background_and_hands_over_its_value():
    gate = threading.Event()
    loading = engine.Loading(lambda: gate.wait(60) and "loaded", "test-job")
    assert not loading.ready() and not loading.wait(0.05)  # the caller was not held up
    gate.set()
    assert loading.wait(60) and loading.ready()
    assert loading.result() == "loaded"


def test_a_failed_job_raises_its_error_to_whoever_asks():
    loading = engine.Loading(lambda: engine.import_modules(missing_module), "test-job")
    assert loading.wait(60)
    with pytest.raises(PetLabError) as raised:
        loading.result()
    message = str(raised.value)
    assert message.startswith("The model engine (TensorFlow) could not be loaded (ModuleNotFoundError")
    assert "restart the dashboard" in message and message.count(". ") == 0 and "\n" not in message


def test_the_engine_imports_at_a_lower_priority_than_the_pages():
    def own_priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    here = own_priority()
    assert engine.Loading(own_priority, "test-job", niceness=3).result() == min(here + 3, 19)
    assert engine.Loading(own_priority, "test-job").result() == here  # a model load is not lowered
    assert own_priority() == here


def test_the_server_has_one_engine_and_it_loads_the_model_side():
    first = engine.start()
    assert engine.start() is first
    assert first.wait(300) and first.result() is None
    import sys

    assert {"core.inference.predict", "core.inference.explain", "core.model.augmentation"} <= set(sys.modules)


def test_importing_the_engine_module_starts_nothing_and_loads_no_tensorflow():
    assert first_heavy_imports(["ui.engine"]) == {}


def test_a_rerun_of_the_app_keeps_the_keras_session(monkeypatch, workspace):
    """In a workspace of its own: run against the checkout's default one, the app spawned its device
    probe there and shared that registry with the other test worker."""
    import keras
    from streamlit.runtime.scriptrunner import script_runner

    from tests.apptest import start_app

    # Streamlit 1.67's own after-rerun cleanup clears the Keras session; if a new Streamlit
    # renames it, PetLab's replacement would silently stop working, so this fails first.
    assert callable(script_runner._clean_problem_modules)
    monkeypatch.setattr(script_runner, "_clean_problem_modules", keras.backend.clear_session)
    first = keras.backend.get_uid("petlab_session_probe")
    start_app()
    assert keras.backend.get_uid("petlab_session_probe") == first + 1  # not reset by clear_session
