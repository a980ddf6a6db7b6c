"""Background training processes started by the dashboard.

The dashboard never trains in its own process: it queues a run in the registry
and starts a detached `python -m core worker --workspace W`, which claims queued
runs one at a time and exits once the queue has stayed empty for WORKER_LINGER_S
(so the next run starts at once in a warm process). The worker outlives the
Streamlit server (its own session, output to `<workspace>/logs/worker.log`).
While the dashboard's last worker is alive, `start_worker` leaves the new run to
it; two workers at once are harmless anyway: claiming a run is atomic in the
registry, so runs still execute one at a time.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

from core.errors import PetLabError
from core.runs.liveness import process_alive, process_start_time
from core.runs.store import RunRecord, RunStore
from core.workspace import atomic_write_text

LOG_DIR = "logs"
LOG_NAME = "worker.log"
PID_NAME = "worker.pid"
DEVICE_NAME = "device.txt"
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding core/
# A dashboard worker waits this long for the next run once the queue is empty, so a run started
# soon after (another learning rate, say) begins at once: TensorFlow loaded, backbone built.
WORKER_LINGER_S = 300.0
# The worker trains at a lower scheduling priority than the dashboard server (nice 0), so that a
# run using every core still leaves the server the CPU it needs to answer clicks at once; with
# nothing else to do, the run gets every core all the same.
WORKER_NICE = 10
# A queued run nobody claimed for this long, with nothing running, has no worker.
STALL_SECONDS = 5.0

# Popen objects of the workers this process started, polled so finished ones are reaped (no zombies).
_children: list[subprocess.Popen] = []


def worker_log(workspace: Path) -> Path:
    """The file the dashboard's workers write their output to."""
    return Path(workspace) / LOG_DIR / LOG_NAME


def start_worker(workspace: Path) -> int:
    """Make sure a worker serves `workspace`: the one still alive (it claims the new run within a
    second) or a new detached one. Returns its process id."""
    _reap_children()
    alive = running_worker(workspace)
    if alive is not None:
        return alive
    command = ["worker", "--workspace", str(Path(workspace).resolve()), "--linger", str(WORKER_LINGER_S)]
    try:
        process = _spawn_core(command, worker_log(workspace), nice=WORKER_NICE)
    except OSError as exc:
        raise PetLabError(
            f"Could not start the training process ({exc.strerror or exc}); check that {workspace} is "
            "writable, or run `python -m core worker` in a terminal."
        ) from None
    _children.append(process)
    start = process_start_time(process.pid)
    (Path(workspace) / LOG_DIR / PID_NAME).write_text(f"{process.pid} {start or ''}\n")
    return process.pid


def _spawn_core(arguments: list[str], log_path: Path, nice: int = 0) -> subprocess.Popen:
    """Start `python -m core <arguments>` detached from this process, its output appended to `log_path`."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The child imports `core` from this checkout, wherever the server was started from.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {arguments[0]} started {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
        log.flush()
        return subprocess.Popen(
            [sys.executable, "-m", "core", *arguments],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the server and its Ctrl-C
            close_fds=True,
            preexec_fn=(lambda: os.nice(nice)) if nice and os.name == "posix" else None,
        )


def restart_this_process() -> NoReturn:
    """Replace this worker with a fresh copy of itself: the same process id and arguments, new memory.

    Whatever TensorFlow kept from earlier runs is gone (see core.training.worker's note on memory);
    the dashboard still finds the worker by its pid file, since exec keeps the process and its start time.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "core", *sys.argv[1:]])


def device_file(workspace: Path) -> Path:
    """Where a training process notes the device it trains on (one line), for the dashboard to show."""
    return Path(workspace) / LOG_DIR / DEVICE_NAME


def recorded_device(workspace: Path) -> str | None:
    """The device the last training process of `workspace` found, or None before any has run."""
    try:
        return device_file(workspace).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def record_device(workspace: Path, description: str) -> None:
    """Note the device this training process uses (called by processes that have TensorFlow loaded)."""
    device_file(workspace).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(device_file(workspace), description + "\n")


def probe_device(workspace: Path) -> None:
    """Ask TensorFlow, in a low-priority background process, which device a run would use.

    The dashboard server never imports TensorFlow to draw its sidebar; it shows what this probe
    (or the last worker) noted in `device_file`. A failure to start only leaves the note missing.
    """
    with contextlib.suppress(OSError):
        _children.append(
            _spawn_core(
                ["device", "--workspace", str(Path(workspace).resolve())], worker_log(workspace), nice=10
            )
        )


def worker_alive(workspace: Path) -> bool:
    """Whether the last worker the dashboard started for `workspace` is still running."""
    return running_worker(workspace) is not None


def running_worker(workspace: Path) -> int | None:
    """The process id of the last worker the dashboard started for `workspace`, if it still runs."""
    _reap_children()
    try:
        pid_text, _, start = (Path(workspace) / LOG_DIR / PID_NAME).read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if process_alive(pid, start or None) else None


def queue_stalled(store: RunStore, records: list[RunRecord] | None = None, now: float | None = None) -> bool:
    """True when runs wait in the queue, nothing is running, and no dashboard worker is alive.

    `records` is `store.list()` when the caller has just read it.
    """
    records = store.list() if records is None else records
    if any(r.status == "running" for r in records):
        return False
    now = time.time() if now is None else now
    waiting = [r for r in records if r.status == "queued" and now - r.created > STALL_SECONDS]
    return bool(waiting) and not worker_alive(store.workspace)


def log_tail(workspace: Path, lines: int = 40) -> str:
    """The last lines of the worker log ("" when there is none)."""
    try:
        text = worker_log(workspace).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _reap_children() -> None:
    _children[:] = [p for p in _children if p.poll() is None]
