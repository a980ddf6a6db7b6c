"""The model engine: TensorFlow and PetLab's Keras side, loaded once per server in the background.

Importing TensorFlow takes seconds, so no page imports it to draw. `start()` begins the import
in a thread of its own (one per server process, held by st.cache_resource) once a page is drawn;
the pages that need a model (Predict, the Augmentation preview) draw their layout, say "Loading
the model engine…" in their own area with `wait_drawn`, and carry on when it is ready.

The import thread runs at a lower CPU priority (a nice value, per thread on Linux), so the
page switches that happen meanwhile keep the processor: under load it roughly triples how much
of it they get (see the report of issue 15). It only imports; TensorFlow's own compute threads
are created later by the threads that run a model, at the normal priority.

Two things Streamlit does after every rerun cost a page switch most of a second once TensorFlow is
in the server (measured, issue 15): it calls `keras.backend.clear_session()` (0.4 s and growing
on 2 cores, and racing with a model being loaded in a background thread) and `gc.collect(2)` over
TensorFlow's objects. The server builds no model in a page script (models load here, once, and are
cached), so `keep_keras_session` turns the first off; .streamlit/config.toml turns off the
second (`runner.postScriptGC`), and the engine moves the objects of its imports out of the
garbage collector's way (`gc.freeze`) so Python's own collections stay short too.

`Loading` is the background job both the engine and a Predict page's model use: `ready()`,
`wait(timeout)`, and `result()`, which re-raises the job's failure in the thread that asks.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import streamlit as st
from streamlit.runtime.scriptrunner import script_runner

from core.errors import PetLabError

T = TypeVar("T")

ENGINE_NICENESS = 10
LOADING_ENGINE = "Loading the model engine…"
# How often a waiting page redraws its message, which is also when a rerun can interrupt it.
POLL_SECONDS = 0.25


class Loading(Generic[T]):
    """`make()` run once in a background thread; its value or its exception, for any thread that asks.

    Not a daemon thread: at exit Python waits for it, because killing a thread in the middle of
    importing TensorFlow or building a model aborts the whole process ("terminate called …").
    """

    def __init__(self, make: Callable[[], T], name: str, niceness: int = 0) -> None:
        self._make, self._niceness = make, niceness
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=False)
        self._thread.start()

    def _run(self) -> None:
        if self._niceness:
            lower_priority(self._niceness)
        try:
            self._value = self._make()
        except BaseException as exc:  # handed to whoever asks for the result
            self._error = exc
        finally:
            self._done.set()

    def ready(self) -> bool:
        """True once the job has finished, whether it succeeded or failed."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds (None: until done); True if the job has finished."""
        return self._done.wait(timeout)

    def result(self) -> T:
        """The job's value, waiting for it; re-raises the job's exception."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def lower_priority(niceness: int) -> None:
    """Lower the calling thread's CPU priority (Linux schedules threads one by one); elsewhere nothing."""
    with contextlib.suppress(AttributeError, OSError):  # no setpriority (Windows), or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


def import_engine() -> None:
    """What the pages that need a model import: prediction, Grad-CAM and the augmentation layers."""
    import core.inference.explain
    import core.inference.predict
    import core.model.augmentation  # noqa: F401


def import_modules(load: Callable[[], None] = import_engine) -> None:
    """Import the engine's modules (`load`); any failure becomes one sentence a person can act on."""
    keep_keras_session()
    try:
        load()
    except Exception as exc:
        raise PetLabError(
            f"The model engine (TensorFlow) could not be loaded ({type(exc).__name__}: {exc}); "
            "reinstall PetLab's requirements and restart the dashboard."
        ) from None
    gc.freeze()  # TensorFlow's hundreds of thousands of objects live as long as the server


def _clean_after_rerun() -> None:
    """Streamlit's after-rerun cleanup without `keras.backend.clear_session()` (see the module docstring)."""
    if "matplotlib.pyplot" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["matplotlib.pyplot"].close("all")


def keep_keras_session() -> None:
    """Stop Streamlit from clearing the Keras session after every rerun of this server's scripts.

    Streamlit 1.67 calls its module function `_clean_problem_modules` after each script run;
    PetLab replaces it with the same cleanup minus Keras (pinned Streamlit version: tested).
    """
    script_runner._clean_problem_modules = _clean_after_rerun


@st.cache_resource(show_spinner=False)
def _engine() -> Loading[None]:
    return Loading(import_modules, "petlab-engine", niceness=ENGINE_NICENESS)


def start() -> Loading[None]:
    """The engine of this server process, starting its import on the first call."""
    return _engine()


def require() -> None:
    """Wait for the engine without drawing anything; raises its failure as a PetLabError."""
    start().result()


def wait_drawn(loading: Loading, message: str = LOADING_ENGINE) -> None:
    """Say `message` (with the seconds waited) where the page stands until `loading` is done, then clear it.

    The message is redrawn every POLL_SECONDS, so a click or a page switch meanwhile interrupts
    the wait at once instead of after the load. Raises the job's failure.
    """
    if not loading.ready():
        slot = st.empty()
        started = time.monotonic()
        while True:
            slot.info(f"{message} {time.monotonic() - started:.0f} s", icon=":material/hourglass_top:")
            if loading.wait(POLL_SECONDS):
                break
        slot.empty()
    loading.result()
