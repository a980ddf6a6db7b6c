"""The worker's data job: download and prepare a data source in a child process that Cancel can stop.

A "prepare" job (queued by core.runs.requests.queue_prepare) opens its data source with the
download allowed, as a training run would, but in a child process of the worker: tfds's
download and preparation offers no way to stop it from inside, and Cancel must stop it at
once, whatever it is doing (waiting on the network, extracting, writing records). The child
sends its progress stages and its outcome through a pipe; the worker writes them to the
registry, watches the job's cancel flag, and on Cancel stops the child and deletes the unfinished
files (tfds's own `incomplete.*` work: nothing half-prepared looks prepared, finished
downloads are kept for the next attempt). The child also stops when the worker dies, so a
preparation never goes on behind a job the dashboard already shows as failed.

The job was asked for by the dashboard, so a failure is stored in the dashboard's words.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path

from core import config as cfg
from core.errors import PetLabError, in_dashboard_words
from core.progress import ProgressCallback, no_progress
from core.runs.records import RunRecord
from core.runs.store import RunStore

Printer = Callable[[str], None]
CANCEL_POLL_S = 0.5  # how often the worker reads the job's cancel flag while the child works
INTERRUPTED = "Preparing the data was interrupted (Ctrl-C); start it again."


def execute_prepare(
    store: RunStore, record: RunRecord, say: Printer = print, report: ProgressCallback = no_progress
) -> None:
    """Prepare a claimed prepare job's data source, recording done / failed / cancelled.

    `report` receives the child's progress stages (the worker passes one that writes them to the
    registry). A failure is raised as a PetLabError once it is recorded, as for a training run.
    """
    data = record.data
    # A fresh interpreter: a worker that trained before has TensorFlow loaded and must not fork.
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    args = (str(store.workspace), cfg.to_dict(data), send)
    child = context.Process(target=prepare_in_child, args=args, name=f"prepare-{record.id}", daemon=True)
    say(f"run {record.id}: preparing the {data.source} data")
    try:
        child.start()
        send.close()  # the child holds the only sending end now: its exit ends the pipe
        outcome = _follow(store, record.id, child, receive, report)
    except KeyboardInterrupt:
        _stop(child)
        discard_unfinished(store.workspace, data)
        store.finish(record.id, "failed", error=INTERRUPTED)
        raise
    except Exception as exc:  # the child could not start, or the registry failed: record it, then surface
        store.finish(
            record.id, "failed", error=f"Preparing the data failed: {type(exc).__name__}: {exc}"[:500]
        )
        raise
    finally:
        _stop(child)
        send.close()
        receive.close()
    if outcome[0] == "cancelled":
        discard_unfinished(store.workspace, data)
    if outcome[0] in ("done", "cancelled"):
        store.finish(record.id, outcome[0])
        say(f"run {record.id} {outcome[0]}")
        return
    _, message, dashboard = outcome
    store.finish(record.id, "failed", error=dashboard)
    raise PetLabError(message, dashboard=dashboard)


def _follow(
    store: RunStore,
    run_id: int,
    child: multiprocessing.Process,
    receive: Connection,
    report: ProgressCallback,
) -> tuple:
    """Pass the child's progress on until it ends or the job is cancelled; return the outcome."""
    checked = 0.0
    while True:
        if time.monotonic() - checked >= CANCEL_POLL_S:
            if store.cancel_requested(run_id):
                return ("cancelled",)
            checked = time.monotonic()
        if not receive.poll(CANCEL_POLL_S):
            continue
        try:
            message = receive.recv()
        except EOFError:  # the child ended without an outcome: killed, or it crashed
            child.join()
            text = (
                f"Preparing the data stopped unexpectedly (exit code {child.exitcode}); "
                "try again, and see the worker's log if it happens again."
            )
            return ("failed", text, text)
        if message[0] != "progress":
            return message
        report(*message[1:])


def _stop(child: multiprocessing.Process) -> None:
    """End the child if it still runs (SIGTERM: tfds keeps no state that needs a clean exit)."""
    if child.pid is not None and child.is_alive():
        child.terminate()
    if child.pid is not None:
        child.join()


def discard_unfinished(workspace: Path, data: cfg.DataConfig) -> None:
    """Delete what a stopped preparation of `data` left half-written (tfds's unfinished files)."""
    if data.source == "tfds":
        from core.data.tfds_source import remove_incomplete

        remove_incomplete(Path(workspace), data.path)


# -- in the child process ----------------------------------------------------------------------------


def prepare_in_child(workspace: str, data: dict, results: Connection) -> None:
    """Open the data source with the download allowed, sending ("progress", stage, done, total) while it
    works, then ("done",) or ("failed", message, dashboard message)."""
    _stop_with_parent()
    from core.data import open_source

    config = cfg.from_dict(cfg.DataConfig, data)

    def progress(stage: str, done: int, total: int | None) -> None:
        results.send(("progress", stage, done, total))

    try:
        open_source(
            config.source,
            config.path,
            workspace=Path(workspace),
            data_config=config,
            progress=progress,
            download=True,
        )
    except PetLabError as exc:
        results.send(("failed", str(exc), in_dashboard_words(exc)))
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        text = (
            f"Preparing the data stopped on a file error: {exc.strerror or exc}{where}; "
            "check the data folder and the workspace, then try again."
        )
        results.send(("failed", text, text))
    except Exception as exc:  # a bug or a resource problem: say what it was, keep the traceback in the log
        traceback.print_exc()
        text = f"Preparing the data failed: {type(exc).__name__}: {exc}"[:500]
        results.send(("failed", text, text))
    else:
        results.send(("done",))


def _stop_with_parent() -> None:
    """Exit this child as soon as the worker that started it is gone (killed, crashed)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="stop-with-worker", daemon=True).start()
