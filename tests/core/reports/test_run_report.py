"""core.reports.run_report: one self-contained HTML file per training run, that opens offline.

Works on a private copy of the one real finished tiny run (tests/conftest.py `trained_copy`).
"""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from plotly.offline import get_plotlyjs

from core.errors import BadInputError, NotFoundError
from core.reports.run_report import run_report_html, write_run_report
from core.runs.layout import RunPaths
from core.runs.store import RunStore
from core.tables.evaluation import misclassified

ODD_NAME = "Ben<b>&gal"  # a class name that is HTML, to be shown as text
ESCAPED = "Ben&lt;b&gt;&amp;gal"


class Tags(HTMLParser):
    """Every start tag of a page with its attributes (a <script>'s text is not parsed into tags)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def attribute(self, tag: str, name: str) -> list[str]:
        return [attrs[name] for t, attrs in self.tags if t == tag and name in attrs]


def rename_bengal(workspace: Path) -> dict:
    """Give class "Bengal" an HTML-like name in run 1's evaluation; returns the report."""
    path = RunPaths.of(workspace, 1).evaluation
    report = json.loads(path.read_text())
    report["class_names"] = [ODD_NAME if n == "Bengal" else n for n in report["class_names"]]
    for entry in report["per_class"]:
        entry["class"] = ODD_NAME if entry["class"] == "Bengal" else entry["class"]
    path.write_text(json.dumps(report))
    return report


def test_the_report_of_an_evaluated_run_is_whole_escaped_and_offline(trained_copy):
    report = rename_bengal(trained_copy)
    path = write_run_report(RunStore(trained_copy), 1)
    assert path == RunPaths.of(trained_copy, 1).report and path.is_file()
    html = path.read_text(encoding="utf-8")
    page = Tags(html)

    # Offline: plotly.js once, inline; nothing the browser would fetch from elsewhere.
    assert html.count(get_plotlyjs()) == 1
    assert not page.attribute("script", "src")
    sources = page.attribute("img", "src") + page.attribute("link", "href") + page.attribute("a", "href")
    assert all(s.startswith("data:") for s in sources), sources

    ids = set(page.attribute("div", "id"))
    assert {"curve-accuracy", "curve-loss", "confusion-matrix"} <= ids

    # Class names are text: escaped in tables and captions, never raw HTML (plotly's JSON escapes "<").
    assert ESCAPED in html and ODD_NAME not in html
    assert f"<td>{ESCAPED}</td>" in html  # the per-breed table

    wrong = misclassified(report)
    thumbnails = page.attribute("img", "src")
    assert wrong and len(thumbnails) == min(12, len(wrong))
    assert all(s.startswith("data:image/jpeg;base64,") for s in thumbnails)
    image = Image.open(io.BytesIO(base64.b64decode(thumbnails[0].split(",", 1)[1])))
    assert image.format == "JPEG"
    names = report["class_names"]
    first = wrong[0]
    caption = f"{names[report['labels'][first]]} → {names[report['predicted'][first]]}"
    assert page.attribute("img", "alt")[0].startswith(caption)  # the parser unescapes attributes

    assert "6 classes, 48 images (folder)." in html  # the data's counts, from the run's data folder


def test_a_run_without_evaluation_gets_a_report_that_says_so(trained_copy, tmp_path):
    RunPaths.of(trained_copy, 1).evaluation.unlink()
    out = write_run_report(RunStore(trained_copy), 1, tmp_path / "elsewhere" / "run1.html")
    html = out.read_text(encoding="utf-8")
    assert "no test evaluation yet" in html
    ids = set(Tags(html).attribute("div", "id"))
    assert "confusion-matrix" not in ids and {"curve-accuracy", "curve-loss"} <= ids
    assert not RunPaths.of(trained_copy, 1).report.exists()  # written where asked, only there


def test_data_that_is_gone_is_said_in_the_report(trained_copy, tmp_path):
    store = RunStore(trained_copy)
    config = store.get(1).config
    gone = {**config["data"], "path": str(tmp_path / "moved-away")}
    run_id = store.create("head", {**config, "data": gone}, status="done")
    store.paths(run_id).create()
    store.paths(run_id).evaluation.write_bytes(RunPaths.of(trained_copy, 1).evaluation.read_bytes())
    html = run_report_html(store, run_id)
    assert "The data&#x27;s counts are not shown" in html
    assert "The test images cannot be read, so the mistakes are not shown" in html
    assert not Tags(html).attribute("img", "src")
    assert "confusion-matrix" in html  # the results from the evaluation are still there


def test_only_training_runs_have_a_report(trained_copy):
    store = RunStore(trained_copy)
    job = store.create("prepare", {"data": store.get(1).config["data"]}, status="done")
    with pytest.raises(BadInputError, match="trains no model"):
        run_report_html(store, job)
    with pytest.raises(NotFoundError):
        run_report_html(store, 99)
