"""The line between what imports TensorFlow and what does not (core/__init__.py draws it).

Catches: a TensorFlow-free module (the backbone catalogue, run requests, registry reads, the
pages' tables, the sidebar) that starts importing keras or tensorflow, directly or through
another module, which would make the dashboard server load TensorFlow to draw a page; a new
package that sits on neither side; any core module importing streamlit.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import core
from tests.conftest import REPO

HEAVY = ("tensorflow", "keras", "tensorflow_datasets")


def core_modules(packages: tuple[str, ...]) -> list[str]:
    """Every module of the given top-level core modules or packages, as dotted names."""
    names = []
    for name in packages:
        path = REPO / "core" / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
        for file in files:
            parts = file.relative_to(REPO).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def first_heavy_imports(modules: list[str]) -> dict[str, list[str]]:
    """Import the modules one by one in a fresh interpreter; {module: heavy packages it pulled in}."""
    script = f"""
import importlib, json, sys
found = {{}}
for name in {modules!r}:
    importlib.import_module(name)
    heavy = [h for h in {HEAVY!r} if h in sys.modules]
    if heavy:
        found[name] = heavy
        break
print(json.dumps(found))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_core_package_sits_on_one_side_of_the_line():
    entries = {p.stem if p.is_file() else p.name for p in (REPO / "core").iterdir()}
    entries = {e for e in entries if not e.startswith(("_", ".")) and e != "py"}
    assert entries == set(core.TENSORFLOW_FREE) | set(core.NEEDS_TENSORFLOW)
    assert not set(core.TENSORFLOW_FREE) & set(core.NEEDS_TENSORFLOW)


def test_the_tensorflow_free_side_never_imports_tensorflow():
    modules = core_modules(core.TENSORFLOW_FREE)
    assert "core.catalog.backbones" in modules and "core.runs.requests" in modules
    assert first_heavy_imports(modules) == {}


def test_the_dashboard_shell_imports_no_tensorflow():
    """The sidebar's state and the shared widgets the server imports for every page."""
    shell = [
        p.relative_to(REPO).with_suffix("").as_posix().replace("/", ".") for p in (REPO / "ui").glob("*.py")
    ]
    assert first_heavy_imports(sorted(shell)) == {}


def test_the_check_would_see_a_tensorflow_import():
    """Control: the probe does report a module that imports keras."""
    assert first_heavy_imports(["core.model.backbones"]) == {"core.model.backbones": ["tensorflow", "keras"]}


def test_core_never_imports_streamlit():
    for file in sorted((REPO / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "streamlit" for n in names), file
