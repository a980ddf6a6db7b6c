"""A real PetLab dashboard in a real browser: `streamlit run app.py` plus headless Chromium (Playwright).

Shared by the browser test (tests/browser/test_browser.py) and the latency benchmark
(benchmarks/ui_latency.py): starting a server on a free port with its own workspace, stopping it
and the training process it started, launching Debian's Chromium, driving Streamlit pages
(sidebar navigation, selectboxes, inputs), waiting until a page is drawn, and a run training
beside the dashboard in a `python -m core train` process, followed through the registry.

No TensorFlow here, and Playwright is imported by the functions that drive the browser only.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks import REPO

CHROMIUM = Path("/usr/bin/chromium")  # Debian's: Playwright's own browser download cannot work here
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 1600}
HEALTH_POLL_S = 0.05
CANCELLED_RUN_END_S = 180  # how long a cancelled run may take to save its best epoch and end

# True once the page `title` (an st.title in the main area, not a stale copy) is on screen, the
# sidebar's navigation is drawn and Streamlit has finished running the script.
DRAWN_JS = """title => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    if (!document.querySelector('[data-testid="stSidebarNav"]')) return false;
    return [...document.querySelectorAll('[data-testid="stMain"] h1')].some(
        h => h.textContent.trim().startsWith(title) && !h.closest('[data-stale="true"]'));
}"""
# True once Streamlit has finished running the script (a rerun after a widget changed, say).
SCRIPT_DONE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null && app.getAttribute('data-test-script-state') === 'notRunning'
        && !document.querySelector('[data-stale="true"]');
}"""


# -- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_group(pid: int, leader: subprocess.Popen | None = None) -> None:
    """Terminate a process group (SIGTERM, then SIGKILL after a grace period).

    `leader`: the group's leader when it is this process's child, reaped as it ends (an unreaped
    leader stays in the group as a zombie, and the wait would last the whole grace period).
    """
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if leader is not None:
                leader.poll()
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@dataclass
class Server:
    """A running `streamlit run app.py`: its address, workspace, log and process."""

    url: str
    workspace: Path
    log: Path
    process: subprocess.Popen
    healthy_at: float = 0.0  # time.monotonic() when /_stcore/health first answered "ok"

    def logs(self) -> str:
        worker = self.workspace / "logs" / "worker.log"
        return f"--- streamlit log ---\n{tail(self.log)}\n--- worker log ---\n{tail(worker)}"


def server_env(workspace: Path, data_roots: Sequence[Path], tfds_dir: Path) -> dict[str, str]:
    """The server's environment: its workspace, the folders it may read, and a tfds folder of its own."""
    return os.environ | {
        "PETLAB_WORKSPACE": str(workspace),
        "TFDS_DATA_DIR": str(tfds_dir),  # empty: the default source is never downloaded
        "PETLAB_DATA_ROOTS": os.pathsep.join(str(root) for root in data_roots),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def start_server(workspace: Path, log: Path, env: dict[str, str], timeout: float = 60) -> Server:
    """`streamlit run app.py` on a free local port (its own session), once /_stcore/health answers."""
    port = free_port()
    options = {
        "--server.port": str(port),
        "--server.address": "127.0.0.1",
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
        "--server.fileWatcherType": "none",
    }
    command = [sys.executable, "-m", "streamlit", "run", "app.py", *itertools.chain(*options.items())]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", workspace, log, process)
    try:
        wait_healthy(server, timeout)
    except BaseException:
        stop_server(server)
        raise
    return server


def wait_healthy(server: Server, timeout: float) -> None:
    """Poll /_stcore/health until it answers "ok"; note when in `server.healthy_at`."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.process.returncode}\n{server.logs()}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    server.healthy_at = time.monotonic()
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no /_stcore/health after {timeout} s\n{server.logs()}")
        time.sleep(HEALTH_POLL_S)


def stop_server(server: Server) -> None:
    """Stop the server and the training process it started."""
    stop_group(server.process.pid, server.process)
    server.process.wait(timeout=10)
    stop_worker(server.workspace)


def stop_worker(workspace: Path) -> None:
    """Stop the training process the dashboard started (its own session), if it still runs."""
    from core.runs.liveness import process_alive

    try:
        pid_text, _, start = (workspace / "logs" / "worker.pid").read_text().strip().partition(" ")
    except OSError:
        return
    if process_alive(int(pid_text), start or None):
        stop_group(int(pid_text))


# -- the browser --------------------------------------------------------------------------------


def launch_chromium(playwright, chromium: Path = CHROMIUM):
    """Headless Chromium with a fresh, empty profile (launch() makes one)."""
    return playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)


def local_only_context(browser, blocked: list[str]):
    """A browser context that may only talk to this machine; other requests are refused and noted."""
    context = browser.new_context(viewport=VIEWPORT)

    def route(request_route) -> None:
        if urlsplit(request_route.request.url).hostname in ("127.0.0.1", "localhost"):
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort()

    context.route("**/*", route)
    return context


# -- driving Streamlit pages ----------------------------------------------------------------------


def widget(page, key: str):
    """The container Streamlit gives a keyed widget or chart (CSS class st-key-<key>).

    Not a stale copy: while Streamlit reruns, an element that moved can linger at its old place.
    """
    return page.locator(f'.st-key-{key}:not([data-stale="true"])')


def choose(page, key: str, option: str) -> None:
    """Pick `option` (its label) in the selectbox `key`."""
    from playwright.sync_api import expect

    box = widget(page, key).get_by_role("combobox")
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(box).to_have_value(option)


def type_in(page, key: str, text: str) -> None:
    """Type into the text or number input `key` and press Enter, as a person commits a value."""
    field = widget(page, key).locator("input")
    field.fill(text)
    field.press("Enter")


def nav_link(page, title: str):
    """The sidebar navigation's link to the page `title`."""
    return page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title)


def wait_drawn(page, title: str, timeout: float) -> None:
    """Wait until page `title` is drawn (its heading and the sidebar) and the script has finished."""
    page.wait_for_function(DRAWN_JS, arg=title, timeout=timeout * 1000)


def wait_script_done(page, timeout: float) -> None:
    """Wait until Streamlit has finished running the script and no stale element is left."""
    page.wait_for_function(SCRIPT_DONE_JS, timeout=timeout * 1000)


def go_to(page, title: str, path: str, timeout: float) -> None:
    """Open a page through the sidebar navigation (same session: the sidebar settings hold) and wait
    until it is drawn."""
    nav_link(page, title).click()
    page.wait_for_url(re.compile(rf"/{path}$"), timeout=timeout * 1000)
    wait_drawn(page, title, timeout)


# -- a run training beside the dashboard ----------------------------------------------------------


def train_command(workspace: Path, source: str, path: Path, *options: str) -> list[str]:
    """`python -m core train` into `workspace`, from random weights (ImageNet's cannot be downloaded here)."""
    core = [sys.executable, "-m", "core", "train", "--workspace", str(workspace)]
    return [*core, "--source", source, "--path", str(path), "--weights", "none", *options]


def batch_position(workspace: Path, run_id: int) -> tuple[str, int, int]:
    """(status, epoch, batch) of a run as the registry has it; batch -1 while it prepares its data."""
    from core.runs.store import RunStore

    record = RunStore(workspace).get(run_id)
    live = record.live
    return record.status, live.epoch or 0, (live.step or 0) if live.training else -1


@dataclass
class Trainer:
    """A head run training in its own `python -m core train` process."""

    workspace: Path
    run_id: int
    pid: int
    first: tuple[str, int, int] = ("queued", 0, -1)  # where it was when it was seen training

    def still_training(self, timeout: float) -> str:
        """Where the run got to since `first` (waiting up to `timeout` for its next batch); RuntimeError
        if it stopped training."""
        deadline = time.monotonic() + timeout
        while True:
            status, epoch, step = batch_position(self.workspace, self.run_id)
            if status == "running" and (epoch, step) > self.first[1:]:
                return f"run {self.run_id} at epoch/batch {self.first[1]}/{self.first[2]} → {epoch}/{step}"
            if status != "running" or time.monotonic() > deadline:
                raise RuntimeError(
                    f"run {self.run_id} is {status} at epoch {epoch}, batch {step}: not training"
                )
            time.sleep(0.2)


@contextlib.contextmanager
def training(command: list[str], workspace: Path, log: Path, timeout: float) -> Iterator[Trainer]:
    """Run `command` (see train_command) in its own session; entered once the registry shows the run's
    batches advancing (within `timeout`), cancelled and stopped on the way out."""
    from core.runs.store import RunStore

    store = RunStore(workspace)
    run_id = max((r.id for r in store.list()), default=0) + 1
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        trainer = Trainer(workspace, run_id, process.pid)
        trainer.first = wait_training(trainer, process, timeout)
        yield trainer
    finally:
        with contextlib.suppress(Exception):
            store.request_cancel(run_id)
        # A cancelled run still saves its best epoch, converts it for LiteRT and evaluates it (tens of
        # seconds for ResNet50V2): measuring on while that runs would time the machine, not the dashboard.
        try:
            process.wait(timeout=CANCELLED_RUN_END_S)
        except subprocess.TimeoutExpired:
            stop_group(process.pid, process)


def wait_training(trainer: Trainer, process: subprocess.Popen, timeout: float) -> tuple[str, int, int]:
    """Wait until the run's batch position has moved twice (past its data preparation and first batch)."""
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the training process ended with {process.returncode} before training")
        with contextlib.suppress(Exception):  # the run may not be in the registry yet
            position = batch_position(trainer.workspace, trainer.run_id)
            if position[0] == "running" and position[2] >= 0 and position not in seen:
                seen.append(position)
                if len(seen) >= 3:
                    return position
        time.sleep(0.2)
    raise RuntimeError(f"run {trainer.run_id} did not start training within {timeout:g} s")
