"""The dashboard in a real browser: `streamlit run app.py` driven by Playwright in headless Chromium.

One session goes through every page as a person would: it points the sidebar at a
generated folder of class folders (Dataset), previews augmentations, sets a tiny
recipe in the sidebar and starts head training (Training), waits until the live
chart shows every epoch, then uploads a photo and reads the predicted classes
(Predict). It asserts what a person sees, never how long it took: each page answered after
its switch (its title drawn, its script finished), the live chart gained the epochs while the
page stayed open, the top-5 appeared after the upload. A screenshot of each page is saved under
test-output/browser/. Any console error or uncaught exception in the page fails the test, as a
Python exception does. Starting the server and Chromium is shared with the latency benchmark
(benchmarks/dashboard.py).

The browser is Debian's Chromium (`/usr/bin/chromium`): Playwright's own browser
download cannot work here. In CI (CI=true) a missing Chromium fails the test;
elsewhere it is skipped. Run it alone with `pytest -m browser`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from benchmarks.dashboard import (
    CHROMIUM,
    Server,
    choose,
    launch_chromium,
    local_only_context,
    server_env,
    start_server,
    stop_server,
    type_in,
    wait_drawn,
    widget,
)
from benchmarks.dashboard import go_to as open_page
from tests.conftest import REPO, save_image

OUTPUT = REPO / "test-output" / "browser"
CLASSES = {"cat", "dog", "rabbit"}  # the `class_folders` fixture (conftest.py)
EPOCHS = 2
# Timeouts in seconds (never asserted on). The first page load imports TensorFlow (~5 s on a quiet
# machine, far more on a busy one).
SERVER_START = 60
FIRST_RENDER = 120
STEP = 60
TRAINING = 240

pytestmark = pytest.mark.browser


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Server]:
    """`streamlit run app.py` on a free local port, with its own workspace; stopped with its worker."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "failure.png").unlink(missing_ok=True)
    workspace = tmp_path / "workspace"
    # The dashboard reads folders only inside its data roots: the generated data is in tmp_path.
    env = server_env(workspace, [tmp_path], tmp_path / "tfds")
    server = start_server(workspace, OUTPUT / "streamlit.log", env, timeout=SERVER_START)
    try:
        yield server
    finally:
        stop_server(server)


@dataclass
class Browser:
    page: object  # playwright.sync_api.Page
    problems: list[str] = field(default_factory=list)  # browser-side errors, shown when a step fails
    blocked: list[str] = field(default_factory=list)  # requests to other hosts, refused


@pytest.fixture
def browser(chromium: Path, dashboard: Server) -> Iterator[Browser]:
    """A fresh headless Chromium page that may only talk to the dashboard's host."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, chromium)
        blocked: list[str] = []
        context = local_only_context(browser, blocked)
        tab = Browser(context.new_page(), blocked=blocked)

        def console(message):
            if message.type == "error":
                where = message.location.get("url", "")
                tab.problems.append(f"console error: {message.text} (at {where})")

        tab.page.set_default_timeout(STEP * 1000)
        expect.set_options(timeout=STEP * 1000)
        tab.page.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))
        tab.page.on("console", console)
        try:
            yield tab
        finally:
            expect.set_options(timeout=5_000)  # Playwright's default
            context.close()
            browser.close()


# -- driving Streamlit widgets ------------------------------------------------------------------


def go_to(page, title: str, path: str) -> None:
    """Open a page through the sidebar and wait until it answered: its title drawn, its script done."""
    open_page(page, title, path, STEP)
    no_exception(page)


PLOTS_JS = """plots => plots.map(plot =>
    (plot._fullData || []).map(t => ({name: t.name, x: Array.from(t.x), y: Array.from(t.y)})))"""


def chart_traces(page, key: str, ready, timeout: float = STEP, failed=None) -> list[dict]:
    """The traces (name, x, y) of the plotly chart `key` as the browser drew it, once `ready(traces)`.

    Polls: a live chart changes every second, and while Streamlit reruns a copy of a chart can
    linger beside the new one. `failed()` may name a reason to stop waiting.
    """
    deadline = time.monotonic() + timeout
    while True:
        plots = page.locator(f".st-key-{key} .js-plotly-plot").evaluate_all(PLOTS_JS)
        for traces in plots:
            if ready(traces):
                return traces
        reason = failed() if failed else None
        assert not reason, reason
        assert time.monotonic() < deadline, f"chart {key} after {timeout} s: {plots}"
        page.wait_for_timeout(250)


def broken(page):
    """What Streamlit shows instead of an element: a Python exception, or a front-end module that failed."""
    return page.locator('[data-testid="stException"]').or_(
        page.get_by_text("Failed to fetch dynamically imported module")
    )


def ranked_bar(text: str) -> tuple[str, float]:
    """(class, percent) of one bar of a photo's top-5, from its label "class · 12.3%"."""
    name, percent = text.strip().rsplit(" · ", 1)
    return name, float(percent.rstrip("%"))


def see(page, locator, timeout: float = STEP) -> None:
    """Wait until `locator` shows, failing at once (with the message) if the page broke instead."""
    from playwright.sync_api import expect

    expect(locator.or_(broken(page)).first).to_be_visible(timeout=timeout * 1000)
    no_exception(page)


def no_exception(page) -> None:
    errors = broken(page)
    assert errors.count() == 0, errors.all_inner_texts()


def no_browser_errors(browser: Browser) -> None:
    """Fail on any console error or uncaught page exception so far (a broken front end may still
    draw what the steps look for)."""
    assert not browser.problems, "the browser reported errors:\n" + "\n".join(browser.problems)


IMAGES_LOADED_JS = """() => {
    const images = [...document.querySelectorAll('[data-testid="stImage"] img')];
    return images.length > 0 && images.every(image => image.complete && image.naturalWidth > 0);
}"""


def images_loaded(page) -> None:
    """Wait until every image on the page has arrived and decoded (not just its caption)."""
    page.wait_for_function(IMAGES_LOADED_JS)


def screenshot(page, name: str) -> Path:
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# -- the test -----------------------------------------------------------------------------------


def chart_points(page, key: str) -> list[list]:
    """The x values of each trace of the chart `key` as drawn now (no chart yet: no traces)."""
    return [
        t["x"] for plot in page.locator(f".st-key-{key} .js-plotly-plot").evaluate_all(PLOTS_JS) for t in plot
    ]


def test_every_page_in_a_real_browser(
    browser: Browser, dashboard: Server, class_folders: Path, tmp_path: Path
):
    from playwright.sync_api import expect

    page = browser.page
    timings: dict[str, float] = {}  # printed for the person reading the log; never asserted on
    clock = time.monotonic()
    shown: list[list[int]] = []  # the epochs the live chart showed, as they came

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = time.monotonic() - clock
        clock = time.monotonic()

    try:
        # Dataset, the default page: point the sidebar at the generated folder of class folders.
        page.goto(dashboard.url + "/")
        wait_drawn(page, "Dataset", FIRST_RENDER)
        see(page, widget(page, "data_source").get_by_role("combobox"))
        lap("first render")
        choose(page, "data_source", "Folder of class folders")
        expect(widget(page, "data_path").get_by_text("Dataset folder")).to_be_visible()
        type_in(page, "data_path", str(class_folders))
        classes = page.locator('[data-testid="stMetric"]', has_text="Classes")
        see(page, classes)
        expect(classes.locator('[data-testid="stMetricValue"]')).to_have_text("3")
        expect(widget(page, "label_counts_chart").locator(".js-plotly-plot")).to_be_visible()
        chart_traces(page, "label_counts_chart", lambda bars: {x for t in bars for x in t["x"]} == CLASSES)
        expect(widget(page, "reshuffle_samples").get_by_role("button")).to_be_visible()
        expect(widget(page, "full_image").get_by_role("combobox")).to_be_visible()
        images_loaded(page)
        no_exception(page)
        no_browser_errors(browser)
        screenshot(page, "dataset")
        lap("dataset")

        # Augmentation: the original training image and its eight random versions.
        go_to(page, "Augmentation", "augmentation")
        see(page, page.get_by_text("Training will use:"))
        expect(widget(page, "aug_flip").get_by_role("checkbox")).to_be_checked()
        expect(widget(page, "aug_another_image").get_by_role("button")).to_be_visible()
        versions = page.locator('[data-testid="stImage"]')
        expect(versions).to_have_count(9)
        expect(page.get_by_text("version 8", exact=True)).to_be_visible()
        expect(page.get_by_text(re.compile(r"^original: (cat|dog|rabbit) · "))).to_be_visible()
        images_loaded(page)
        no_exception(page)
        no_browser_errors(browser)
        screenshot(page, "augmentation")
        lap("augmentation")

        # Training: a tiny offline recipe in the sidebar, then head training, followed live.
        go_to(page, "Training", "training")
        see(page, page.get_by_text("No runs yet"))
        summary = page.locator(
            '[data-testid="stMarkdownContainer"]', has_text=re.compile(r"^data \w+ · backbone")
        )
        expect(summary).to_contain_text("data folder")
        choose(page, "backbone", "MobileNetV3Small")
        expect(summary).to_contain_text("backbone mobilenetv3small")
        choose(page, "weights", "None (random start)")
        expect(summary).to_contain_text("weights none")
        type_in(page, "image_size", "32")
        expect(summary).to_contain_text("size 32 px")
        type_in(page, "epochs", str(EPOCHS))
        expect(summary).to_contain_text(f"epochs {EPOCHS}")
        lap("training settings")
        widget(page, "start_head").get_by_role("button").click()
        expect(page.get_by_text(re.compile(r"Run 1 is queued|status running")).first).to_be_visible()
        expect(widget(page, "cancel_run").get_by_role("button")).to_be_visible()
        # The training process has only just been started (it is still importing TensorFlow): no
        # epoch is on the chart yet, so every point the chart shows below came while the page stayed.
        assert not any(chart_points(page, "live_accuracy_chart")), chart_points(page, "live_accuracy_chart")
        lap("run queued")
        # The live chart grows epoch by epoch while the worker trains; wait until it shows them all.
        epochs = list(range(1, EPOCHS + 1))

        def all_epochs(traces: list[dict]) -> bool:
            xs = sorted({x for t in traces for x in t["x"]})
            if xs and (not shown or shown[-1] != xs):
                shown.append(xs)
            names = {t["name"] for t in traces}
            return names == {"train", "validation"} and all(t["x"] == epochs for t in traces)

        def run_failed() -> str | None:
            ended = page.get_by_text(re.compile(r"Run 1 (failed|was cancelled)"))
            return ended.first.inner_text() if ended.count() else None

        chart_traces(page, "live_accuracy_chart", all_epochs, TRAINING, run_failed)
        # The chart gained points without a reload, epoch after epoch, never losing one.
        assert shown[-1] == epochs, shown
        assert all(xs == epochs[: len(xs)] for xs in shown), shown
        lap("all epochs on the live chart")
        expect(page.get_by_text(re.compile(r"Run 1 is done: best validation accuracy \d"))).to_be_visible(
            timeout=TRAINING * 1000
        )
        lap("run done")
        chart_traces(page, "live_accuracy_chart", all_epochs)
        chart_traces(page, "live_loss_chart", all_epochs)
        expect(page.get_by_role("heading", name="All runs").first).to_be_visible()
        expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()  # the runs table
        no_exception(page)
        no_browser_errors(browser)
        screenshot(page, "training")

        # Predict: upload a photo and read the classes the finished run ranks.
        go_to(page, "Predict", "predict")
        see(page, widget(page, "predict_run"))
        expect(widget(page, "predict_run").get_by_role("combobox")).to_have_value(
            re.compile(r"^run 1 · mobilenetv3small · val ")
        )
        expect(widget(page, "top5_0")).to_have_count(0)  # nothing ranked before the upload
        photo = save_image(tmp_path / "upload" / "my_pet.jpg", (200, 40, 40), size=(64, 48))
        widget(page, "predict_upload").locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
            photo
        )
        bars = widget(page, "top5_0").locator('[data-testid="stProgress"]')
        see(page, bars.first)
        best = page.get_by_text(re.compile(r"^Most likely (cat|dog|rabbit) \(\d+\.\d%\)$"))
        expect(best).to_be_visible()
        expect(page.get_by_text("my_pet.jpg", exact=True).first).to_be_visible()
        expect(bars).to_have_count(len(CLASSES))  # the top-5 of a three-class model: every class
        ranked = [ranked_bar(text) for text in bars.all_inner_texts()]
        names, percents = [name for name, _ in ranked], [percent for _, percent in ranked]
        assert set(names) == CLASSES and percents == sorted(percents, reverse=True), ranked
        assert abs(sum(percents) - 100) < 1, ranked  # probabilities in %, over all three classes
        assert best.inner_text() == f"Most likely {names[0]} ({percents[0]:.1f}%)", ranked
        images_loaded(page)
        no_exception(page)
        no_browser_errors(browser)
        screenshot(page, "predict")
        lap("predict")
    except Exception as exc:
        if not page.is_closed():
            screenshot(page, "failure")
        context = [f"page: {page.url}", *browser.problems[-20:], f"blocked: {browser.blocked}"]
        raise AssertionError("\n".join([str(exc), *context, dashboard.logs()])) from exc
    finally:
        print("timings (s):", {name: round(seconds, 1) for name, seconds in timings.items()})
        print("epochs on the live chart, as they came:", shown)

    assert not browser.blocked, f"the dashboard tried to reach other hosts: {browser.blocked}"
    no_browser_errors(browser)  # also what came after the last page's check
