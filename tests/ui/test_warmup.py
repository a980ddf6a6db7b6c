"""Server start (ui/warmup.py, app.py's st.App): the pages' imports are warmed, TensorFlow is not."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from tests.conftest import REPO
from ui import warmup


def test_the_warmed_modules_are_the_ones_the_router_and_pages_import():
    names = warmup.page_imports()
    assert {"ui.sidebar", "ui.state", "ui.engine", "core.config"} <= set(names)  # app.py's main()
    assert {"pandas", "core.tables.dataset", "core.runs.store"} <= set(names)  # pages' top level
    assert not [n for n in names if n.split(".")[0] in ("tensorflow", "keras")]
    assert not [n for n in names if n.startswith(("core.inference", "core.training", "core.model"))]


def test_warming_imports_every_module_the_pages_import_and_no_tensorflow():
    """…and does Streamlit's own first-draw work (ui.warmup.streamlit_first_uses)."""
    script = """
import importlib.util, json, sys
from ui import warmup
warmup.warm_imports()
modules = [n for n in warmup.page_imports() if n.split(".")[0] not in ("os", "typing", "__future__")]
def is_module(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # `from package import function` names no module
        return False
from streamlit import delta_generator
print(json.dumps({"missing": [n for n in modules if is_module(n) and n not in sys.modules],
                  "heavy": [m for m in ("tensorflow", "keras") if m in sys.modules],
                  "streamlit_first_uses": ["streamlit.emojis" in sys.modules,
                                           delta_generator._use_warning_has_been_displayed]}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    # Streamlit's once-per-process costs of the first page are paid too (fails if Streamlit renames them).
    assert found == {"missing": [], "heavy": [], "streamlit_first_uses": [True, True]}


def test_the_server_imports_app_py_as_an_st_app_without_drawing_anything():
    script = """
import importlib.util, sys
import streamlit as st
spec = importlib.util.spec_from_file_location("app", "app.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(type(module.app).__name__, "ui.sidebar" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    # The st.App, and none of the router's imports: they are the warm-up's job, after the server is up.
    assert out.stdout.split()[-2:] == ["App", "False"]


def test_a_page_waits_for_the_warmup_the_server_started():
    release, warmed = threading.Event(), []

    def warm() -> None:
        release.wait(60)
        warmed.append(True)

    warmup._warming = warmup.Loading(warm, "test-warmup")  # type: ignore[arg-type]
    try:
        threading.Timer(0.2, release.set).start()
        warmup.wait()
        assert warmed == [True]
    finally:
        warmup._warming = None
