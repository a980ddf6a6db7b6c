"""core.figures stays light to import: the first dashboard page must not pay for plotly.express."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def modules_pulled_in(modules: list[str]) -> list[str]:
    """Import `modules` in a fresh interpreter; the plotly.express modules that came with them."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('plotly.express'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_figure_module_imports_plotly_express():
    modules = sorted(
        "core.figures." + path.stem
        for path in (REPO / "core" / "figures").glob("*.py")
        if path.stem != "__init__"
    )
    assert "core.figures.curves" in modules and "core.figures.evaluation" in modules
    assert modules_pulled_in(modules) == []


def test_the_check_would_see_plotly_express():
    """Control: the probe does report a module that imports plotly.express."""
    assert "plotly.express" in modules_pulled_in(["plotly.express"])
