"""The Embedding map's hover photo in a real browser: `streamlit run app.py` and headless Chromium.

The dashboard serves a copy of the trained workspace (tests/conftest.py `trained`) holding a
finished map of run 1's training images, written as the worker writes one (tests/views/
test_embedding.py `map_job`). The test opens the Embedding map page, puts the mouse on a point
(the one farthest from the others, found from the chart's own axes) and waits for what a person
sees: a tooltip beside the cursor whose photo arrived from the server's thumbnail route
(ui.map_photos) and decoded, with the point's class and file name; moving off the points hides it.
Catches: a tooltip that never attaches to the chart, a route app.py does not serve, a photo of
another point, a tooltip that stays, errors in the browser. Shares the server, Chromium and its
fixtures with tests/browser/test_browser.py. Run it with `pytest -m browser`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.dashboard import server_env, start_server, stop_server, wait_drawn
from core.runs.store import RunStore
from tests.browser import test_browser as shared
from tests.browser.test_browser import (
    FIRST_RENDER,
    OUTPUT,
    SERVER_START,
    Browser,
    go_to,
    no_browser_errors,
    no_exception,
    screenshot,
)
from tests.views.test_embedding import map_job

pytestmark = pytest.mark.browser
# The browser test's fixtures; its `browser` starts from this module's `dashboard`.
browser, chromium = shared.browser, shared.chromium

TOOLTIP = ".petlab-map-photo"

# The point of the chart farthest from every other (so the mouse on it hovers it and no other):
# its place in the viewport, its row (customdata) and its label (hovertext).
LONELY_POINT_JS = """plot => {
    const layout = plot._fullLayout, box = plot.getBoundingClientRect();
    const points = plot._fullData.flatMap(trace => Array.from(trace.x, (x, i) => ({
        x: box.left + layout.xaxis._offset + layout.xaxis.d2p(x),
        y: box.top + layout.yaxis._offset + layout.yaxis.d2p(trace.y[i]),
        row: Number(trace.customdata[i]),
        text: String(trace.hovertext[i]),
    })));
    let best = null, room = -1;
    for (const p of points) {
        const near = Math.min(...points.filter(q => q !== p).map(q => Math.hypot(p.x - q.x, p.y - q.y)));
        if (near > room) { best = p; room = near; }
    }
    return {...best, room};
}"""
PHOTO_SHOWN_JS = """selector => {
    const tip = document.querySelector(selector);
    const img = tip && tip.querySelector('img');
    return tip !== null && tip.style.display !== 'none' && img !== null && img.complete
        && img.naturalWidth > 0 && img.style.display !== 'none';
}"""


def gap_to_cursor(box: dict, point: dict) -> float:
    """Pixels from the cursor at `point` to the nearest edge of `box` (0: the box covers the cursor)."""
    dx = max(box["x"] - point["x"], 0, point["x"] - box["x"] - box["width"])
    dy = max(box["y"] - point["y"], 0, point["y"] - box["y"] - box["height"])
    return math.hypot(dx, dy)


@pytest.fixture
def map_workspace(trained_copy: Path) -> tuple[Path, int]:
    """(workspace, embedding job) of a finished map of run 1's train split."""
    store = RunStore(trained_copy)
    job = map_job(store, "train")
    store.close()
    return trained_copy, job


@pytest.fixture
def dashboard(map_workspace, tmp_path_factory, tmp_path):
    """`streamlit run app.py` on the map's workspace; the run's photos lie inside its data roots."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    workspace, _ = map_workspace
    env = server_env(workspace, [tmp_path_factory.getbasetemp()], tmp_path / "tfds")
    server = start_server(workspace, OUTPUT / "map_hover_streamlit.log", env, timeout=SERVER_START)
    try:
        yield server
    finally:
        stop_server(server)


def test_hovering_a_point_shows_its_photo_and_label(browser: Browser, dashboard, map_workspace) -> None:
    from playwright.sync_api import expect

    page = browser.page
    _, job = map_workspace
    try:
        page.goto(dashboard.url + "/")  # a deep link makes Streamlit probe for a base path, with 404s
        wait_drawn(page, "Dataset", FIRST_RENDER)
        go_to(page, "Embedding map", "embedding")
        plot = page.locator(f'.st-key-embedding_chart_{job}:not([data-stale="true"]) .js-plotly-plot')
        expect(plot).to_be_visible()
        plot.scroll_into_view_if_needed()
        page.wait_for_function(
            "p => p._fullLayout && p._fullData && p._fullData.length", arg=plot.element_handle()
        )
        tooltip = page.locator(TOOLTIP)
        expect(tooltip).to_be_hidden()  # nothing hovered yet

        point = plot.evaluate(LONELY_POINT_JS)
        assert point["room"] > 8, point  # the mouse on it can hover no other point
        page.mouse.move(point["x"] - 40, point["y"] - 40)
        page.mouse.move(point["x"], point["y"], steps=4)
        page.wait_for_function(PHOTO_SHOWN_JS, arg=TOOLTIP)
        expect(tooltip).to_have_text(point["text"])  # "<class> · <file>"
        source = tooltip.locator("img").get_attribute("src")
        assert source.startswith(f"/petlab/map-photo/{job}/{point['row']}?"), (source, point)
        assert 0 < gap_to_cursor(tooltip.bounding_box(), point) < 40  # beside the cursor, not under it
        no_exception(page)
        screenshot(page, "map_hover")

        plot_box = plot.bounding_box()
        page.mouse.move(plot_box["x"] + plot_box["width"] + 30, plot_box["y"] - 30, steps=4)
        expect(tooltip).to_be_hidden()
    except Exception as exc:
        if not page.is_closed():
            screenshot(page, "map_hover_failure")
        raise AssertionError("\n".join([str(exc), *browser.problems[-20:], dashboard.logs()])) from exc
    no_browser_errors(browser)
    assert not browser.blocked, browser.blocked
