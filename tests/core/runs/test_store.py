"""Tests for the run registry (core/runs/store.py, database.py, liveness.py): round trips, stale runs,
errors, concurrency."""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.errors import BadInputError, NotFoundError, PetLabError, RunCancelled
from core.runs.database import BUSY_TIMEOUT_MS, SCHEMA_VERSION, Database
from core.runs.liveness import process_alive, process_start_time
from core.runs.store import STALE_ERROR, RunRecord, RunStore

HAS_PROC = Path("/proc/self/stat").exists()


def exited_pid() -> int:
    """The PID of a process that has exited and been waited for."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_round_trip(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    assert (tmp_path / "runs.db").exists()
    config = {"epochs": 3, "lr": 1e-3, "backbone": "resnet50v2"}
    run_id = store.create("head", config)
    rec = store.get(run_id)
    assert (rec.status, rec.kind, rec.parent, rec.config) == ("queued", "head", None, config)
    assert rec.started is None and rec.duration is None and rec.pid is None

    store.start(run_id)
    rec = store.get(run_id)
    assert rec.status == "running" and rec.pid == os.getpid() and rec.started is not None
    assert store.active() == rec

    for epoch in (1, 2, 3):
        store.log_epoch(run_id, epoch, {"loss": 1.0 / epoch, "val_accuracy": 0.5 + epoch / 10}, seconds=2.5)
    store.log_epoch(run_id, 2, {"loss": 0.4, "val_accuracy": 0.75}, seconds=3.0)  # upsert
    history = store.history(run_id)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[1] == {"epoch": 2, "seconds": 3.0, "loss": 0.4, "val_accuracy": 0.75}

    before = time.time()
    store.set_progress(run_id, epoch=3, epochs=3, step=10, steps=20)
    store.set_progress(run_id, step=11)
    progress = store.get(run_id).progress
    assert progress["step"] == 11 and progress["steps"] == 20 and progress["epoch"] == 3
    assert before <= progress["updated"] <= time.time()  # stamped when written, however slow the machine

    store.finish(run_id, "done", metrics={"best_val_accuracy": 0.8})
    rec = store.get(run_id)
    assert rec.status == "done" and rec.finished is not None and rec.error is None
    assert rec.duration is not None and rec.duration >= 0
    assert store.active() is None

    child = store.create("finetune", {"lr": 1e-5}, parent=run_id)
    assert [r.id for r in store.list()] == [child, run_id]  # newest first
    assert store.get(child).parent == run_id

    # A second store (another "process") sees the same data.
    assert RunStore(tmp_path).get(run_id) == rec


def test_to_json(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create("head", {"epochs": 1})
    data = store.get(run_id).to_json()
    for key in ("id", "kind", "parent", "status", "created", "config", "metrics", "duration"):
        assert key in data
    assert data["best_val_accuracy"] is None and data["test_accuracy"] is None
    store.start(run_id)
    store.finish(run_id, "done", metrics={"best_val_accuracy": 0.9, "test_accuracy": 0.88})
    data = store.get(run_id).to_json()
    assert (data["id"], data["kind"], data["status"]) == (run_id, "head", "done")
    assert data["best_val_accuracy"] == 0.9 and data["test_accuracy"] == 0.88
    assert data["config"] == {"epochs": 1} and isinstance(data["duration"], float)


def test_numpy_like_values_are_stored(tmp_path: Path) -> None:
    class Scalar:
        def item(self) -> float:
            return 0.5

    store = RunStore(tmp_path)
    run_id = store.create("head", {"path": tmp_path})
    store.update_metrics(run_id, {"test_accuracy": Scalar()})
    rec = store.get(run_id)
    assert rec.metrics == {"test_accuracy": 0.5} and rec.config == {"path": str(tmp_path)}


def test_update_metrics_merges(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create("head", {})
    store.start(run_id)
    store.finish(run_id, "done", metrics={"best_val_accuracy": 0.8, "test_accuracy": 0.1})
    store.update_metrics(run_id, {"test_accuracy": 0.7, "test_loss": 0.9})
    assert store.get(run_id).metrics == {"best_val_accuracy": 0.8, "test_accuracy": 0.7, "test_loss": 0.9}


def test_not_found_and_bad_input(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with pytest.raises(NotFoundError) as info:
        store.get(12)
    assert str(info.value) == "Run 12 does not exist; list runs with `python -m core runs`."
    for call in (
        lambda: store.start(12),
        lambda: store.log_epoch(12, 1, {}, 1.0),
        lambda: store.set_progress(12, step=1),
        lambda: store.finish(12, "done"),
        lambda: store.update_metrics(12, {}),
        lambda: store.history(12),
        lambda: store.request_cancel(12),
        lambda: store.cancel_requested(12),
        lambda: store.delete(12),
        lambda: store.create("finetune", {}, parent=12),
    ):
        with pytest.raises(NotFoundError):
            call()
    with pytest.raises(BadInputError):
        store.create("bogus", {})
    with pytest.raises(BadInputError):
        store.create("head", {}, status="bogus")
    run_id = store.create("head", {})
    with pytest.raises(BadInputError):
        store.finish(run_id, "running")
    with pytest.raises(BadInputError):
        store.log_epoch(run_id, 0, {}, 1.0)


def test_cancel(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    running = store.create("head", {})
    store.start(running)
    assert store.cancel_requested(running) is False
    store.request_cancel(running)
    assert store.cancel_requested(running) is True
    assert store.get(running).status == "running"  # the trainer stops itself and calls finish
    store.finish(running, "cancelled")
    assert store.get(running).status == "cancelled"

    queued = store.create("head", {})
    store.request_cancel(queued)  # nobody is running it: cancelled at once
    rec = store.get(queued)
    assert rec.status == "cancelled" and rec.cancel_requested
    assert store.claim_next_queued() is None
    with pytest.raises(RunCancelled):
        store.start(queued)


def test_delete_removes_record_epochs_and_folder(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create("head", {})
    folder = store.paths(run_id).create()
    assert folder == tmp_path / "runs" / str(run_id) and folder.is_dir()
    store.paths(run_id).model.write_text("weights")
    store.start(run_id)
    store.log_epoch(run_id, 1, {"loss": 1.0}, 1.0)
    with pytest.raises(BadInputError):
        store.delete(run_id)  # still running
    store.finish(run_id, "done")
    store.delete(run_id)
    assert not folder.exists()
    with pytest.raises(NotFoundError):
        store.get(run_id)
    with sqlite3.connect(tmp_path / "runs.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == 0


def test_reap_dead_process(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    dead, alive = store.create("head", {}), store.create("head", {})
    store.start(dead, pid=exited_pid())
    store.start(alive)  # this test process
    assert store.reap_stale() == [dead]
    rec = store.get(dead)
    assert rec.status == "failed" and rec.error == STALE_ERROR and rec.finished is not None
    assert rec.error.startswith("The training process stopped unexpectedly; ")
    assert store.get(alive).status == "running"
    assert store.reap_stale() == []


def stored_status(workspace: Path, run_id: int) -> str:
    """The status column as written, bypassing RunStore."""
    with sqlite3.connect(workspace / "runs.db") as conn:
        return conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]


def test_reads_show_a_dead_run_failed_without_writing(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create("head", {})
    store.start(run_id, pid=exited_pid())
    store.set_progress(run_id, epoch=1, epochs=3)
    shown = store.get(run_id)
    assert (shown.status, shown.error) == ("failed", STALE_ERROR)
    assert shown.finished == shown.live.updated  # its last sign of life
    assert RunStore(tmp_path).list()[0] == shown
    assert store.active() is None
    assert stored_status(tmp_path, run_id) == "running"  # nothing was written

    assert store.reap_stale() == [run_id]  # the explicit writer stores exactly what was shown
    assert stored_status(tmp_path, run_id) == "failed"
    assert store.get(run_id) == shown


@pytest.mark.parametrize("writer", ["request_cancel", "delete", "claim_next_queued"])
def test_writers_store_a_dead_run_as_failed_first(tmp_path: Path, writer: str) -> None:
    store = RunStore(tmp_path)
    dead, other = store.create("head", {}), store.create("head", {})
    store.start(dead, pid=exited_pid())
    args = () if writer == "claim_next_queued" else (other,)
    getattr(store, writer)(*args)
    assert stored_status(tmp_path, dead) == "failed"
    assert store.get(dead).error == STALE_ERROR


def test_requeue_resumes_a_dead_run_in_one_call(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create("head", {})
    store.start(run_id, pid=exited_pid())
    store.log_epoch(run_id, 1, {"loss": 1.0}, 1.0)
    store.requeue(run_id)
    rec = store.get(run_id)
    assert (rec.status, rec.error, rec.finished, rec.pid) == ("queued", None, None, None)
    assert [h["epoch"] for h in store.history(run_id)] == [1]


def test_paths_create_nothing(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create("head", {})
    paths = store.paths(run_id)
    assert paths.folder == tmp_path / "runs" / str(run_id) and paths.model.name == "model.keras"
    for read in (lambda: store.get(run_id), store.list, store.active, lambda: store.history(run_id)):
        read()
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc for process start times")
def test_reap_detects_pid_reuse(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create("head", {})
    store.start(run_id)
    assert process_start_time(os.getpid()) is not None
    assert process_alive(os.getpid(), process_start_time(os.getpid()))
    with sqlite3.connect(tmp_path / "runs.db") as conn:  # the PID now belongs to another process
        conn.execute("UPDATE runs SET pid_start = '1' WHERE id = ?", (run_id,))
    assert store.get(run_id).status == "failed"


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2]


def test_zombie_counts_as_dead(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 120  # only bounds the wait for the child to exit (unreaped: a zombie)
    while HAS_PROC and time.time() < deadline and _state(proc.pid) != "Z":
        time.sleep(0.01)
    try:
        assert not process_alive(proc.pid)
    finally:
        proc.wait()


# Only bounds a wait for child processes (never asserted as a time): generous, as the CI box's two
# cores are shared with other jobs.
CHILD_WAIT_S = 300


def _writer(workspace: str, run_id: int, epochs: int, start: object) -> None:
    store = RunStore(Path(workspace))
    start.wait(CHILD_WAIT_S)  # type: ignore[attr-defined]
    for epoch in range(1, epochs + 1):
        for step in range(5):
            store.set_progress(run_id, epoch=epoch, epochs=epochs, step=step, steps=5)
        store.log_epoch(run_id, epoch, {"loss": 1.0 / epoch, "worker": run_id}, seconds=0.01)
        store.cancel_requested(run_id)
    store.finish(run_id, "done", metrics={"best_val_accuracy": 1.0})


def _reader(workspace: str, start: object, stop: object) -> None:
    store = RunStore(Path(workspace))
    start.wait(CHILD_WAIT_S)  # type: ignore[attr-defined]
    while not stop.is_set():  # type: ignore[attr-defined]
        for rec in store.list():
            store.history(rec.id)


def test_concurrent_writers(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    ctx = mp.get_context("spawn")
    # Every process opens the registry first and then all start together (a barrier), so the
    # writers overlap for all their epochs however slowly each process starts.
    epochs, workers = 20, 4
    ids = [store.create("head", {"worker": n}) for n in range(workers)]
    for run_id in ids:
        store.start(run_id)  # owned by this (live) test process
    start, stop = ctx.Barrier(workers + 2), ctx.Event()
    reader = ctx.Process(target=_reader, args=(str(tmp_path), start, stop))
    reader.start()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), run_id, epochs, start)) for run_id in ids]
    for proc in procs:
        proc.start()
    start.wait(CHILD_WAIT_S)
    for proc in procs:
        proc.join(CHILD_WAIT_S)
    stop.set()
    reader.join(CHILD_WAIT_S)
    assert [p.exitcode for p in procs] == [0] * workers and reader.exitcode == 0

    with sqlite3.connect(tmp_path / "runs.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == epochs * workers
    for run_id in ids:
        rec = store.get(run_id)
        assert rec.status == "done" and rec.progress["epoch"] == epochs and rec.progress["step"] == 4
        history = store.history(run_id)
        assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
        assert all(h["worker"] == run_id for h in history)


def _claimer(workspace: str, owner_pid: int, start: object, results: object) -> None:
    try:
        store = RunStore(Path(workspace))
        start.wait(CHILD_WAIT_S)  # type: ignore[attr-defined]
        rec = store.claim_next_queued(pid=owner_pid)
        results.put(None if rec is None else rec.id)  # type: ignore[attr-defined]
    except BaseException as exc:  # reported by the test, with what went wrong
        results.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]
        raise


def _race(workspace: Path, racers: int = 4) -> list[int | None]:
    """Let `racers` processes claim at the same moment; they claim for this (live) process.

    A barrier releases them together once every one has imported and opened the store (a fixed
    sleep would let a slow-starting racer, on a busy machine, claim alone and late).
    """
    ctx = mp.get_context("spawn")
    start, results = ctx.Barrier(racers + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(str(workspace), os.getpid(), start, results))
        for _ in range(racers)
    ]
    for proc in procs:
        proc.start()
    start.wait(CHILD_WAIT_S)
    claimed = [results.get(timeout=CHILD_WAIT_S) for _ in procs]
    for proc in procs:
        proc.join(CHILD_WAIT_S)
    assert not [c for c in claimed if isinstance(c, str)], claimed  # no racer failed
    assert [p.exitcode for p in procs] == [0] * racers
    return claimed


def test_claim_race_exactly_one_wins(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    first, second, third = (store.create("head", {"n": n}) for n in range(3))
    claimed = _race(tmp_path)
    winners = [c for c in claimed if c is not None]
    assert winners == [first]
    assert [r.id for r in store.list() if r.status == "running"] == [first]
    assert store.get(second).status == store.get(third).status == "queued"

    # While it runs, nobody else gets a run.
    assert _race(tmp_path) == [None] * 4
    assert store.claim_next_queued() is None

    # Once it is over, the next oldest queued run is claimed.
    store.finish(first, "done")
    rec = store.claim_next_queued()
    assert isinstance(rec, RunRecord) and rec.id == second and rec.status == "running"
    assert rec.pid == os.getpid()


def test_claim_reaps_a_dead_runner(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    crashed = store.create("head", {})
    store.start(crashed, pid=exited_pid())
    queued = store.create("head", {})
    rec = store.claim_next_queued()
    assert rec is not None and rec.id == queued
    assert store.get(crashed).status == "failed"
    assert store.active().id == queued  # type: ignore[union-attr]


def test_unwritable_registry_is_explained(tmp_path: Path) -> None:
    (tmp_path / "runs.db").mkdir()  # cannot be opened as a database file, even by root
    with pytest.raises(PetLabError) as info:
        RunStore(tmp_path)
    assert "cannot be written" in str(info.value) and "--workspace" in str(info.value)


def test_damaged_registry_is_explained(tmp_path: Path) -> None:
    (tmp_path / "runs.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(PetLabError) as info:
        RunStore(tmp_path)
    assert "damaged" in str(info.value)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    RunStore(tmp_path)
    with sqlite3.connect(tmp_path / "runs.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(PetLabError) as info:
        RunStore(tmp_path)
    assert "newer PetLab" in str(info.value)


def sqlite_error(code: int, text: str) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (sqlite3.SQLITE_BUSY, f"stayed locked by another process for {BUSY_TIMEOUT_MS // 1000} s"),
        (sqlite3.SQLITE_LOCKED, "stayed locked by another process"),
        (sqlite3.SQLITE_FULL, "cannot be written (disk full or read-only)"),
        (sqlite3.SQLITE_READONLY, "cannot be written (disk full or read-only)"),
        (sqlite3.SQLITE_IOERR | (3 << 8), "cannot be written"),  # an extended code: SQLITE_IOERR_WRITE
        (sqlite3.SQLITE_CORRUPT, "is damaged; move it aside"),
    ],
)
def test_sqlite_errors_are_translated_by_result_code(tmp_path: Path, code: int, expected: str) -> None:
    database = Database(tmp_path / "runs.db")
    with pytest.raises(PetLabError) as info, database.errors():
        raise sqlite_error(code, "the message text does not matter")
    assert expected in str(info.value) and str(info.value).count(". ") == 0


def test_other_sqlite_errors_are_not_hidden(tmp_path: Path) -> None:
    database = Database(tmp_path / "runs.db")
    with pytest.raises(sqlite3.OperationalError), database.errors():
        raise sqlite_error(sqlite3.SQLITE_ERROR, "database is locked")  # a bug, whatever its text says
    with pytest.raises(sqlite3.OperationalError), database.errors():
        raise sqlite3.OperationalError("disk full")  # no result code: not from SQLite itself


def test_a_new_file_gets_the_current_schema(tmp_path: Path) -> None:
    RunStore(tmp_path)
    with sqlite3.connect(tmp_path / "runs.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "epochs"} <= tables


def _log_in_child(store: RunStore, run_id: int) -> None:
    store.log_epoch(run_id, 2, {"loss": 0.5}, 1.0)  # the inherited store opens its own connection
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_store_works_on_both_sides_of_a_fork(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create("head", {})
    store.log_epoch(run_id, 1, {"loss": 1.0}, 1.0)  # the parent's connection is open before the fork
    child = mp.get_context("fork").Process(target=_log_in_child, args=(store, run_id))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    store.log_epoch(run_id, 3, {"loss": 0.25}, 1.0)  # the parent's connection still works
    assert [h["epoch"] for h in store.history(run_id)] == [1, 2, 3]


def test_one_store_shared_by_threads(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create("head", {})
    store.start(run_id)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for epoch in range(offset, offset + 25):
                store.log_epoch(run_id, epoch, {"loss": 0.1}, 0.1)
                store.set_progress(run_id, step=epoch)
                store.list()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(1 + 25 * n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [h["epoch"] for h in store.history(run_id)] == list(range(1, 101))
