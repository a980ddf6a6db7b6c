"""Helpers for driving the dashboard under streamlit.testing.v1.AppTest: start it, open pages, read it."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO

APP = REPO / "app.py"
TIMEOUT = 120
TINY = {"backbone": "mobilenetv3small", "weights": "none", "image_size": 32}


def png_bytes(color=(200, 40, 40), size=(40, 30)) -> bytes:
    """A PNG with a gradient, so that flips and rotations change it."""
    ramp = np.linspace(0, 1, size[0] * size[1]).reshape(size[1], size[0], 1)
    pixels = (ramp * np.array(color)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(color=(40, 40, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def start_app(**sidebar) -> AppTest:
    """Run app.py once, then set sidebar widgets by key (applied on the next run)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    for key, value in sidebar.items():
        sidebar_widget(at, key).set_value(value)
    return at


def sidebar_widget(at: AppTest, key: str):
    for kind in ("selectbox", "text_input", "number_input", "select_slider", "radio"):
        for widget in getattr(at.sidebar, kind):
            if widget.key == key:
                return widget
    raise KeyError(key)


def open_page(at: AppTest, name: str) -> AppTest:
    at.switch_page(f"views/{name}.py").run()
    assert not at.exception, at.exception
    return at


def chart(at: AppTest, key: str) -> dict:
    """The plotly figure (as JSON) of the chart with this key."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(f"-{key}"):
            return json.loads(element.proto.spec)
    raise KeyError(key)


def texts(elements) -> list[str]:
    return [element.value for element in elements]


def missing_module() -> None:
    """An engine import that fails as a broken installation would."""
    import importlib

    importlib.import_module("petlab_no_such_module")
