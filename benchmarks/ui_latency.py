"""How long a person waits on the dashboard: a real server, headless Chromium, real clicks (issue 15).

What it measures, each against the issue's target:

1. The first page drawn after the server answers /_stcore/health: a fresh `streamlit run app.py`
   (fresh workspace) per repeat, the browser opens it, and the clock stops once the Dataset page's
   heading and the sidebar are on screen and Streamlit has finished the script.
2. Page switches through the sidebar navigation, round the seven pages (Dataset, Augmentation,
   Training, Evaluation, Predict, Embedding map, Label issues): click to the new page drawn and its
   script finished, p50 and p95,
   (a) with nothing training, (b) while a ResNet50V2 head run trains without the feature cache (slow
   epochs on every core), (c) while a MobileNetV3Small run at 96 px trains (an epoch a second or so).
   Both runs are started with `python -m core train --weights none` (ImageNet weights cannot be
   downloaded here); the registry must show the run's batches advancing during the switches. The
   server's CPU use (and the training process's) during each condition is in the notes, and, in (c),
   the server's CPU time per second with the Training page left open (its live panel polls every second).
3. Upload → top-5 on screen on the Predict page, for a finished tiny run (trained first): the first
   photo of a model (TensorFlow already loaded by the Augmentation page); with the model loaded, one
   more photo in the same tab, one photo in a new tab of the same browser (a new Streamlit session,
   the server's cached model) and in a new, empty browser profile; 8 photos at once; and the first
   photo on a fresh server, sent as soon as its Predict page is drawn and settled. "top-5 shown"
   stops when every photo's "Most likely …" line and ranked top-5 bars are on screen; "page done"
   when the script has finished too (Grad-CAM included).

Data: the Oxford sample photos (`--data`, the "oxford-files" source) when the folder holds Oxford-named
files, a folder of class folders when it holds those, else a generated class-folder set of small JPEGs.

The table goes to stdout, progress to stderr. The machine is shared by whatever else runs on it: the load
average is in the header. Usage (from the repository root):

    .venv/bin/python benchmarks/ui_latency.py [--quick] [--data FOLDER] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` and `core` import

import psutil

from benchmarks import REPO
from benchmarks.dashboard import (
    Trainer,
    choose,
    launch_chromium,
    local_only_context,
    nav_link,
    server_env,
    start_server,
    stop_server,
    train_command,
    training,
    type_in,
    wait_drawn,
    wait_script_done,
)
from benchmarks.latency_table import (
    TARGET_FIRST_PHOTO_S,
    TARGET_FIRST_S,
    TARGET_LOADED_PHOTO_S,
    Row,
    percentile,
    render,
    switch_row,
    timing_row,
)
from benchmarks.measure import log, machine_line, started_now
from core.runs.worker_process import device_file

DEFAULT_DATA = REPO.parent / "shared" / "pets-sample" / "images"
OXFORD_NAME = re.compile(r"^[A-Za-z_]+_\d+\.jpe?g$")
STEP_S = 180  # the longest any single wait may take before the benchmark gives up (a busy machine)
SLOW_RUN = ["--backbone", "resnet50v2", "--image-size", "224", "--no-feature-cache"]
FAST_RUN = ["--backbone", "mobilenetv3small", "--image-size", "96", "--no-feature-cache"]
TINY_RUN = ["--backbone", "mobilenetv3small", "--image-size", "32", "--epochs", "2"]
LIVE_PANEL_S = 10.0  # how long the Training page is left open in (c)
PROBE_S = 60  # the longest wait for the sidebar's background device probe to end
# A new tab's first upload waits before it is sent: less than any person takes to pick a photo, more
# than the 0.3-0.4 s the browser still spends finishing the page's first load once it is drawn.
SETTLE_S = 0.5
FIRST_PAGE_REPEATS = 5  # fresh servers for item 1: its median moves by 0.1-0.2 s between repeats of 3


# -- data and pages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    source: str  # a core.config.SOURCES name
    path: Path
    photos: list[Path]  # to upload on the Predict page


def pick_data(folder: Path, scratch: Path) -> Data:
    """The sample folder as an Oxford-files or class-folder source, else a generated class-folder set."""
    if folder.is_dir():
        oxford = sorted(p for p in folder.iterdir() if OXFORD_NAME.match(p.name))
        if oxford:
            return Data("oxford-files", folder, oxford[:: max(1, len(oxford) // 16)])
        nested = sorted(folder.glob("*/*.jp*g"))
        if nested:
            return Data("folder", folder, nested[:: max(1, len(nested) // 16)])
    log(f"{folder} holds no Oxford-named photos nor class folders: generating a class-folder set")
    return generated_class_folders(scratch / "generated-pets")


def generated_class_folders(root: Path, classes: int = 6, per_class: int = 20) -> Data:
    """Small noisy JPEGs in class folders, one colour per class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        colour = rng.integers(0, 255, 3)
        for i in range(per_class):
            pixels = np.clip(colour + rng.integers(-40, 40, (96, 128, 3)), 0, 255).astype(np.uint8)
            (root / f"class{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / f"class{c}" / f"img{i:02d}.jpg", quality=90)
    return Data("folder", root, sorted(root.glob("*/img0*.jpg")))


def dashboard_pages() -> list[tuple[str, str]]:
    """(title, URL path) of app.py's PAGES, read from its source (importing it would start Streamlit)."""
    tree = ast.parse((REPO / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "PAGES" for t in node.targets):
            return [(title, Path(path).stem) for path, title, *_ in ast.literal_eval(node.value)]
    raise RuntimeError("app.py has no PAGES tuple")


# -- the server, the browser and training processes -----------------------------------------------


@dataclass
class Bench:
    """What every measurement needs: the data, a scratch folder, the browser and the measured rows."""

    data: Data
    scratch: Path
    browser: object  # playwright Browser
    quick: bool
    rows: list[Row] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    servers: int = 0

    def start(self, workspace: Path):
        self.servers += 1
        env = server_env(workspace, [self.data.path, self.scratch], self.scratch / "tfds")
        return start_server(workspace, self.scratch / f"streamlit-{self.servers}.log", env, timeout=STEP_S)

    def training(self, workspace: Path, options: list[str], log_name: str):
        """A run of `options` training for 1000 epochs (ended on the way out), once its batches advance."""
        more = ["--epochs", "1000", "--patience", "0", *options]
        command = train_command(workspace, self.data.source, self.data.path, *more)
        return training(command, workspace, self.scratch / log_name, timeout=4 * STEP_S)

    def new_page(self, context=None):
        """A new tab of `context` (its cache warm), or of a new, empty browser context."""
        page = (context or local_only_context(self.browser, self.blocked)).new_page()
        page.set_default_timeout(STEP_S * 1000)
        return page


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@contextlib.contextmanager
def cpu_use(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """CPU use of each process over the block, in % of one core (filled in when the block ends)."""
    start = {name: cpu_seconds(pid) for name, pid in pids.items()}
    began = time.monotonic()
    use: dict[str, float] = {}
    yield use
    wall = time.monotonic() - began
    use.update({name: 100 * (cpu_seconds(pid) - start[name]) / wall for name, pid in pids.items()})


# -- the measurements -------------------------------------------------------------------------------


def first_draws(bench: Bench, repeats: int) -> None:
    """Item 1: on `repeats` fresh servers, health answered → the Dataset page drawn."""
    seconds = []
    for n in range(repeats):
        server = bench.start(bench.scratch / f"cold-{n}")
        try:
            page = bench.new_page()
            page.goto(server.url + "/")
            wait_drawn(page, "Dataset", STEP_S)
            seconds.append(time.monotonic() - server.healthy_at)
            log(f"fresh server {n + 1}: first page drawn {seconds[-1]:.2f} s after /_stcore/health")
            # The sidebar starts a device probe (a TensorFlow process): let it end before the next start.
            wait_until(lambda w=server.workspace: device_file(w).exists(), PROBE_S)
            page.context.close()
        finally:
            stop_server(server)
    bench.rows.append(
        timing_row(
            "1. first page drawn after /_stcore/health (fresh server)",
            seconds,
            TARGET_FIRST_S,
            "Dataset page, default source, judged on the median",
        )
    )


def first_visits(bench: Bench, page) -> None:
    """One round of the pages, each visited for the first time in this server (not in item 2's figures)."""
    times = switch_pages(page, len(dashboard_pages()))
    notes = ", ".join(f"{title} {seconds:.2f} s" for title, seconds in times)
    log(f"first visits: {notes}")
    bench.rows.append(
        timing_row("2. first visit of each page (click → drawn)", [s for _, s in times], notes=notes)
    )


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)


def point_sidebar_at_data(page, data: Data) -> None:
    from core.catalog.choices import SOURCE_LABELS

    choose(page, "data_source", SOURCE_LABELS[data.source])
    type_in(page, "data_path", str(data.path))
    page.locator('[data-testid="stMetric"]', has_text="Classes").wait_for()
    wait_script_done(page, STEP_S)


def switch_pages(page, count: int) -> list[tuple[str, float]]:
    """Click round the sidebar's pages `count` times: (page title, click → drawn and done) each."""
    pages = dashboard_pages()
    here = page.url.rstrip("/").rsplit("/", 1)[-1]
    start = next((i for i, (_, path) in enumerate(pages) if path == here), 0)
    times = []
    for n in range(1, count + 1):
        title, _ = pages[(start + n) % len(pages)]
        began = time.perf_counter()
        nav_link(page, title).click()
        wait_drawn(page, title, STEP_S)
        times.append((title, time.perf_counter() - began))
    return times


def switch_condition(
    bench: Bench, page, server, condition: str, count: int, run: Trainer | None = None
) -> None:
    """Item 2 in one condition: `count` switches, with the server's (and any trainer's) CPU use."""
    pids = {"server": server.process.pid} | ({"trainer": run.pid} if run else {})
    with cpu_use(pids) as use:
        times = switch_pages(page, count)
    seconds = [s for _, s in times]
    slowest = max(times, key=lambda t: t[1])
    notes = [f"server CPU {use['server']:.0f}%", f"slowest {slowest[0]} {slowest[1]:.2f} s"]
    if run:
        notes[1:1] = [f"trainer CPU {use['trainer']:.0f}%", run.still_training(STEP_S)]
    log(f"2{condition}: p50 {percentile(seconds, 50):.2f} s, p95 {percentile(seconds, 95):.2f} s; {notes}")
    bench.rows.append(switch_row(condition, seconds, "; ".join(notes)))


def live_panel_cost(bench: Bench, page, server, run: Trainer) -> None:
    """With the Training page open while a run trains: the server's CPU seconds per second."""
    nav_link(page, "Training").click()
    wait_drawn(page, "Training", STEP_S)
    with cpu_use({"server": server.process.pid}) as use:
        time.sleep(LIVE_PANEL_S)
    run.still_training(STEP_S)
    per_poll = use["server"] / 100
    bench.rows.append(
        Row(
            "2c′. Training page open while the run trains: server CPU s per second",
            1,
            per_poll,
            per_poll,
            notes=f"over {LIVE_PANEL_S:g} s; the live panel polls every second",
        )
    )


RESULTS_JS = """n => {
    const fresh = e => !e.closest('[data-stale="true"]');
    const lines = [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
        .filter(e => fresh(e) && e.textContent.trim().startsWith('Most likely'));
    const ranked = [...document.querySelectorAll('[class*="st-key-top5_"]')]
        .filter(e => fresh(e) && e.querySelector('[data-testid="stProgress"]'));
    return lines.length >= n && ranked.length >= n;
}"""


def upload(page, photos: list[Path], shown_before: int = 0) -> tuple[float, float]:
    """Upload `photos` on the Predict page: (seconds to every top-5 shown, seconds to the page done).

    `shown_before`: photos the page already shows (the uploader adds to them; all are answered again).
    """
    began = time.perf_counter()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(photos)
    page.wait_for_function(RESULTS_JS, arg=shown_before + len(photos), timeout=STEP_S * 1000)
    shown = time.perf_counter() - began
    wait_script_done(page, STEP_S)
    return shown, time.perf_counter() - began


def open_predict(bench: Bench, server, context=None):
    """A new browser session on the Predict page, drawn and settled (SETTLE_S): a new tab of `context`
    (its cache), or of a new, empty browser context."""
    page = bench.new_page(context)
    page.goto(server.url + "/predict")
    wait_drawn(page, "Predict", STEP_S)
    time.sleep(SETTLE_S)
    return page


def uploads(bench: Bench, server, page) -> None:
    """Item 3 on the running server: the model's first photo, more photos with it loaded, a batch.

    "Model loaded" three ways: one more photo in the same tab; a new tab of the same browser (a new
    Streamlit session, the browser's cache warm); a new, empty browser profile (its cache empty too).
    """
    photos = bench.data.photos
    nav_link(page, "Predict").click()
    wait_drawn(page, "Predict", STEP_S)
    first = upload(page, photos[:1])
    log(f"first photo of the model: top-5 in {first[0]:.2f} s, page done {first[1]:.2f} s")
    repeats = 2 if bench.quick else 3
    same_tab = [upload(page, [photos[1]], shown_before=1)]
    new_tabs, new_browsers = [], []
    for photo in photos[2 : 2 + repeats]:
        tab = open_predict(bench, server, page.context)  # a new session: no uploads, the model stays cached
        new_tabs.append(upload(tab, [photo]))
        tab.close()
    for photo in photos[2 + repeats : 2 + 2 * repeats]:
        fresh = open_predict(bench, server)
        new_browsers.append(upload(fresh, [photo]))
        fresh.context.close()
    batch_size = 4 if bench.quick else 8
    tab = open_predict(bench, server, page.context)
    batch = upload(tab, photos[8 : 8 + batch_size])
    tab.close()
    log(f"model loaded: same tab {same_tab}, new tabs {new_tabs}, new browsers {new_browsers}; batch {batch}")
    rows = [
        (
            "3. first photo of the model",
            [first],
            TARGET_FIRST_PHOTO_S,
            "TensorFlow loaded (Augmentation page)",
        ),
        (
            "3. model loaded, one more photo, same tab",
            same_tab,
            TARGET_LOADED_PHOTO_S,
            "both photos answered",
        ),
        ("3. model loaded, one photo, new tab", new_tabs, TARGET_LOADED_PHOTO_S, "a new session each"),
        (
            "3. model loaded, one photo, new empty browser",
            new_browsers,
            TARGET_LOADED_PHOTO_S,
            "a new session each",
        ),
        (f"3. model loaded, {batch_size} photos at once, new tab", [batch], None, ""),
    ]
    for measure, figures, target_s, notes in rows:
        upload_rows(bench, measure, figures, target_s, notes)


def upload_rows(bench: Bench, measure: str, figures: list[tuple[float, float]], target_s, notes: str) -> None:
    """Two rows per upload measure: until every top-5 is shown (judged), until the page is done."""
    bench.rows.append(
        timing_row(f"{measure}: upload → top-5 shown", [s for s, _ in figures], target_s, notes)
    )
    bench.rows.append(timing_row("   … page done (Grad-CAM too)", [d for _, d in figures]))


def fresh_server_upload(bench: Bench, workspace: Path) -> None:
    """Item 3 on a fresh server: the first photo before anything loaded TensorFlow."""
    server = bench.start(workspace)
    try:
        page = open_predict(bench, server)
        shown, done = upload(page, bench.data.photos[:1])
        page.context.close()
    finally:
        stop_server(server)
    log(f"fresh server, first photo: top-5 in {shown:.2f} s, page done {done:.2f} s")
    notes = "TensorFlow not loaded before the upload"
    upload_rows(bench, "3. first photo on a fresh server", [(shown, done)], TARGET_FIRST_PHOTO_S, notes)


# -- the command line -------------------------------------------------------------------------------


def run_all(bench: Bench, workspace: Path) -> None:
    switches = 5 if bench.quick else 20
    first_draws(bench, 1 if bench.quick else FIRST_PAGE_REPEATS)
    log("training a tiny run for the Evaluation and Predict pages")
    with open(bench.scratch / "tiny-run.log", "ab") as out:
        command = train_command(workspace, bench.data.source, bench.data.path, *TINY_RUN)
        subprocess.run(command, check=True, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    server = bench.start(workspace)
    try:
        page = bench.new_page()
        page.goto(server.url + "/")
        wait_drawn(page, "Dataset", STEP_S)
        point_sidebar_at_data(page, bench.data)
        wait_until(lambda: device_file(workspace).exists(), PROBE_S)  # the sidebar's device probe ends
        first_visits(bench, page)
        switch_condition(bench, page, server, "a. page switch, no run training", switches)
        with bench.training(workspace, SLOW_RUN, "slow-run.log") as run:
            switch_condition(
                bench, page, server, "b. page switch, ResNet50V2 224 px training (slow epochs)", switches, run
            )
        with bench.training(workspace, FAST_RUN, "fast-run.log") as run:
            switch_condition(
                bench,
                page,
                server,
                "c. page switch, MobileNetV3Small 96 px training (~1 s epochs)",
                switches,
                run,
            )
            live_panel_cost(bench, page, server, run)
        uploads(bench, server, page)
        page.context.close()
    finally:
        stop_server(server)
    fresh_server_upload(bench, workspace)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: 5 switches, 1 fresh server")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="Oxford-named photos or class folders"
    )
    parser.add_argument("--workspace", type=Path, help="workspace of the main server (default: a temp one)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    started, clock = started_now(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="petlab-ui-") as temp, sync_playwright() as playwright:
        scratch = Path(temp)
        data = pick_data(args.data.resolve(), scratch)
        log(f"data: {data.source} {data.path}")
        browser = launch_chromium(playwright)
        bench = Bench(data, scratch, browser, args.quick)
        try:
            run_all(bench, (args.workspace or scratch / "workspace").resolve())
        finally:
            browser.close()
    import streamlit

    header = [
        f"PetLab dashboard latency{' (--quick)' if args.quick else ''}: real server, headless Chromium",
        f"data: {data.source} {data.path}",
        machine_line(started, {"Streamlit": streamlit.__version__}),
        f"load average at the end: {os.getloadavg()[0]:.1f}; the whole benchmark took "
        f"{(time.monotonic() - clock) / 60:.1f} min",
    ]
    if bench.blocked:
        header.append(f"requests to other hosts, refused: {bench.blocked[:5]}")
    print(render(bench.rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
