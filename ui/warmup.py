"""Server start: import what the pages need before the first browser asks for one.

`streamlit run app.py` serves app.py's `st.App` (Streamlit 1.67): its lifespan hook runs once when
the server starts, before any session. `lifespan` starts `warm_imports` in a background thread there
(the server answers at once), so the first page's script finds pandas, plotly and PetLab's
TensorFlow-free modules already imported instead of importing them while the person waits (about 1 s
of the first page on 2 cores, measured for issue 15). The first page's script `wait()`s for that
thread before importing anything itself: two threads importing the same packages at once can
deadlock on Python's import locks. TensorFlow is not imported here: it would take the processor the
first page needs; the engine (ui/engine.py) loads it after the first page is drawn.
"""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ui.engine import Loading

ROOT = Path(__file__).resolve().parent.parent
_warming: Loading[None] | None = None  # set by the lifespan, in the server process only


def page_imports(root: Path = ROOT) -> list[str]:
    """The modules the router (all of app.py) and the pages (their top level) import, without repeats.

    Only the pages' top level: a page imports TensorFlow's side inside functions, when needed.
    """
    router = root / "app.py"
    trees = [ast.walk(ast.parse(router.read_text(encoding="utf-8")))]
    trees += [
        ast.parse(page.read_text(encoding="utf-8")).body for page in sorted((root / "views").glob("*.py"))
    ]
    names: dict[str, None] = {}
    for nodes in trees:
        for node in nodes:
            if isinstance(node, ast.Import):
                names.update(dict.fromkeys(alias.name for alias in node.names))
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names[node.module] = None
                names.update(dict.fromkeys(f"{node.module}.{alias.name}" for alias in node.names))
    return [name for name in names if name != "__future__"]


def warm_imports() -> None:
    """Import every module the router and the pages import, and draw one tiny plotly figure.

    Written out, not read from `page_imports()` and imported by name: PetLab never imports a module
    named at run time (tests/core/data/test_safe_loading.py). tests/ui/test_warmup.py checks that
    this list covers `page_imports()`, so a page's new import fails a test until it is added here.
    """
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import plotly.graph_objects as go
    import streamlit.runtime.uploaded_file_manager  # noqa: F401

    import core.catalog.augmentations
    import core.config
    import core.curation.ranking
    import core.data.images
    import core.data.zip_import
    import core.embeddings.maps
    import core.figures.curves
    import core.figures.data
    import core.figures.evaluation
    import core.predictions.answers
    import core.predictions.lite
    import core.reports.run_report
    import core.runs.requests
    import core.runs.worker_process
    import core.tables.dataset
    import core.tables.evaluation
    import core.tables.runs  # noqa: F401
    import ui.batch_predict
    import ui.curation
    import ui.data_job
    import ui.embedding
    import ui.engine
    import ui.errors
    import ui.evaluate
    import ui.exports
    import ui.gallery
    import ui.job_panel
    import ui.live
    import ui.run_status
    import ui.runs_table
    import ui.sidebar
    import ui.state
    import ui.sweep
    import ui.widgets  # noqa: F401

    go.Figure(go.Bar(x=["a"], y=[1])).to_json()  # plotly builds its validators on first use
    streamlit_first_uses()


def streamlit_first_uses() -> None:
    """What Streamlit does once per process, the first time a script draws (0.25 s of the first page).

    `st.set_page_config(page_icon=…)` imports `streamlit.emojis`, which compiles a regular
    expression of every emoji; the first element a script draws checks whether Streamlit runs in a
    REPL with `inspect.stack()`, which reads the source path of every loaded module (Streamlit
    1.67's `_maybe_print_use_warning`; run here in the server, it prints nothing).
    """
    import streamlit.emojis  # noqa: F401
    from streamlit import delta_generator

    delta_generator._maybe_print_use_warning()


def wait() -> None:
    """Wait for the server-start imports, if this server started them and they are still running."""
    if _warming is not None:
        _warming.wait()  # a failed import surfaces where the page imports it, as it would unwarmed


@asynccontextmanager
async def lifespan(app) -> AsyncIterator[None]:
    """The st.App lifespan: start warming the imports, and serve at once."""
    global _warming
    _warming = Loading(warm_imports, "petlab-warmup")
    yield
