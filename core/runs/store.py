"""The run registry: every training run, its progress and its results, in one SQLite file.

The registry lives at `<workspace>/runs.db`; each run's artifacts live in
`<workspace>/runs/<ID>/`. A training process (the command line, or a process the
dashboard spawned) is the only writer of its run; dashboards in other processes
only read and poll about once a second. So that this is safe:

- the database is in WAL mode (readers never block the writer), with a 10 s busy
  timeout and `synchronous=NORMAL`;
- every `RunStore` opens its own connection (a fresh one after `fork`), guarded by
  a lock so one store can be shared by threads;
- every write is one short transaction; read-modify-write steps use
  `BEGIN IMMEDIATE`, so two processes never interleave them;
- "one run at a time" is enforced by `claim_next_queued`, which checks for a
  running run and claims the oldest queued one in a single immediate transaction.

A run left "running" by a process that died (killed, crashed, machine rebooted) is
marked failed by `reap_stale`, which `get`, `list`, `active` and
`claim_next_queued` call first, so nobody ever sees a dead run as running. A
process counts as gone when its PID no longer exists, is a zombie, or now belongs
to another process (its start time, field 22 of `/proc/<pid>/stat`, changed).
Runs started on another host (a workspace on a shared disk) are never reaped here.
A failed run can be put back in the queue with `requeue`; the trainer then resumes
it from its last backed-up epoch (core.training.worker) and keeps the epochs already logged.

A finished run whose folder or `model.keras` was deleted or damaged by hand is
reported as broken (`RunRecord.broken`, one sentence) by `get` and `list`. The
check is cheap (the file exists, is a zip with a Keras config and weights) and
never loads a model.

Epochs are numbered from 1. Config, metrics and progress are JSON text columns.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import BadInputError, NotFoundError, PetLabError, RunCancelled
from core.runs.layout import RunPaths
from core.runs.records import FINAL_STATUSES, RUN_KINDS, STATUSES, RunRecord

DB_NAME = "runs.db"
RUNS_DIR = "runs"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000
STALE_ERROR = (
    "The training process stopped unexpectedly; resume the run to continue from its last finished epoch, "
    "or start a new run."
)
MODEL_FILE = "model.keras"
CLASS_NAMES_FILE = "class_names.json"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    parent INTEGER,
    status TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    pid INTEGER,
    pid_start TEXT,
    host TEXT,
    error TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    progress TEXT NOT NULL DEFAULT '{}',
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    seconds REAL NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, epoch)
);
"""

_COLUMNS = (
    "id, kind, parent, status, config, created, started, finished, pid, error, "
    "metrics, progress, cancel_requested"
)


def _json_default(obj: Any) -> Any:
    """Turn numpy/tensor scalars and arrays, paths and the like into plain JSON."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def _dumps(obj: dict) -> str:
    return json.dumps(obj, default=_json_default, allow_nan=True)


def _loads(text: str | None) -> dict:
    return json.loads(text) if text else {}


@lru_cache(maxsize=1024)
def _keras_file_ok(path: str, mtime_ns: int, size: int) -> bool:
    """Whether `path` is a zip holding a Keras config and weights (cached per file version)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return {"config.json", "model.weights.h5"} <= names


def artifact_problem(run_id: int, run_dir: Path) -> str | None:
    """One sentence on why a finished run's saved model cannot be used, or None when it looks fine.

    Cheap enough for every listing: it checks that the folder, `model.keras` (a zip with a
    Keras config and weights) and `class_names.json` are there, and never loads the model.
    """
    advice = "train a new run (or restore the folder from a backup)"
    if not run_dir.is_dir():
        return f"Run {run_id} is broken: its folder {run_dir} was deleted; {advice}."
    model = run_dir / MODEL_FILE
    try:
        stat = model.stat()
    except OSError:
        return f"Run {run_id} is broken: its {MODEL_FILE} was deleted; {advice}."
    if not model.is_file() or not _keras_file_ok(str(model), stat.st_mtime_ns, stat.st_size):
        return f"Run {run_id} is broken: its {MODEL_FILE} is damaged (not a Keras model file); {advice}."
    try:
        names = json.loads((run_dir / CLASS_NAMES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        names = None
    if not isinstance(names, list) or not names:
        return f"Run {run_id} is broken: its {CLASS_NAMES_FILE} is missing or damaged; {advice}."
    return None


def process_start_time(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot (`/proc`), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None  # fields[0] is field 3, so field 22 is [19]


def process_alive(pid: int, start_time: str | None = None) -> bool:
    """Whether `pid` still runs (and, if `start_time` is given, is the same process)."""
    if pid <= 0:
        return False
    if os.name != "posix":  # os.kill(pid, 0) would send CTRL_C on Windows
        try:
            import psutil  # optional: only where /proc and signals are missing
        except ImportError:
            return True  # cannot tell: never fail a run we cannot check
        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()  # vanished just now, or no /proc at all
    except OSError:
        return True
    if stat[stat.rfind(")") + 2 :][:1] in ("Z", "X"):  # exited, not yet waited for
        return False
    return start_time is None or process_start_time(pid) in (None, start_time)


class RunStore:
    """The run registry of one workspace; safe to use from several processes at once."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = Path(workspace)
        self.db_path = self.workspace / DB_NAME
        self.runs_path = self.workspace / RUNS_DIR
        self._lock = threading.RLock()
        self._conn_obj: sqlite3.Connection | None = None
        self._conn_pid = -1
        self._inherited: list[sqlite3.Connection] = []
        self._host = socket.gethostname()
        with self._errors():
            self.workspace.mkdir(parents=True, exist_ok=True)
            self._init_schema()

    # -- connection and errors ------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn SQLite and disk failures into one clear sentence."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "locked" in text or "busy" in text:
                raise PetLabError(
                    f"The run registry at {self.db_path} stayed locked by another process for "
                    f"{BUSY_TIMEOUT_MS // 1000} s; try again in a moment."
                ) from None
            if any(s in text for s in ("readonly", "read-only", "full", "unable to open", "i/o error")):
                raise self._unwritable() from None
            raise
        except sqlite3.DatabaseError as exc:
            text = str(exc).lower()
            if "not a database" in text or "malformed" in text:
                raise PetLabError(
                    f"The run registry at {self.db_path} is damaged; move it aside to start a "
                    "fresh one, or choose another workspace with --workspace."
                ) from None
            raise
        except OSError:
            raise self._unwritable() from None

    def _unwritable(self) -> PetLabError:
        return PetLabError(
            f"The run registry at {self.db_path} cannot be written (disk full or read-only); "
            "free space or choose another workspace with --workspace."
        )

    def _conn(self) -> sqlite3.Connection:
        """This process's connection, opened on first use (and again after a fork)."""
        if self._conn_obj is None or self._conn_pid != os.getpid():
            if self._conn_obj is not None:
                # Inherited through fork: never use or close it here; the parent still owns it.
                self._inherited.append(self._conn_obj)
            conn = sqlite3.connect(
                self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn_obj, self._conn_pid = conn, os.getpid()
        return self._conn_obj

    def close(self) -> None:
        """Close this process's connection (it is reopened on next use)."""
        with self._lock:
            if self._conn_obj is not None and self._conn_pid == os.getpid():
                self._conn_obj.close()
            self._conn_obj = None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            yield self._conn()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short `BEGIN IMMEDIATE` transaction: committed on success, else rolled back."""
        with self._lock, self._errors():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _init_schema(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise PetLabError(
                    f"The run registry at {self.db_path} was written by a newer PetLab; "
                    "upgrade PetLab or choose another workspace with --workspace."
                )
            if version < SCHEMA_VERSION:
                # Not executescript: it would COMMIT our transaction first.
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _record(row: tuple) -> RunRecord:
        (id_, kind, parent, status, config, created, started, finished, pid, error) = row[:10]
        metrics, progress, cancel = row[10:]
        return RunRecord(
            id=id_,
            kind=kind,
            parent=parent,
            status=status,
            config=_loads(config),
            created=created,
            started=started,
            finished=finished,
            pid=pid,
            error=error,
            metrics=_loads(metrics),
            progress=_loads(progress),
            cancel_requested=bool(cancel),
        )

    @staticmethod
    def _missing(run_id: int) -> NotFoundError:
        return NotFoundError(f"Run {run_id} does not exist; list runs with `python -m core runs`.")

    def _row(self, conn: sqlite3.Connection, run_id: int, columns: str = _COLUMNS) -> tuple:
        row = conn.execute(f"SELECT {columns} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise self._missing(run_id)
        return row

    def _checked(self, record: RunRecord) -> RunRecord:
        """The record with `broken` filled in for a done run whose artifacts are gone or damaged."""
        if record.status != "done":
            return record
        problem = artifact_problem(record.id, self.runs_path / str(record.id))
        return replace(record, broken=problem) if problem else record

    def _owner(self, pid: int | None) -> tuple[int, str | None]:
        pid = os.getpid() if pid is None else int(pid)
        return pid, process_start_time(pid)

    def _reap(self, conn: sqlite3.Connection) -> tuple[list[int], int]:
        """Fail running runs of this host whose process is gone; return (reaped ids, still running)."""
        rows = conn.execute(
            "SELECT id, pid, pid_start, host FROM runs WHERE status = 'running' ORDER BY id"
        ).fetchall()
        reaped, alive = [], 0
        for run_id, pid, pid_start, host in rows:
            if pid is None or host != self._host or process_alive(pid, pid_start):
                alive += 1
                continue
            # Conditional on what we saw, so a run restarted meanwhile is left alone.
            cur = conn.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished = ? "
                "WHERE id = ? AND status = 'running' AND pid IS ? AND pid_start IS ?",
                (STALE_ERROR, time.time(), run_id, pid, pid_start),
            )
            if cur.rowcount:
                reaped.append(run_id)
        return reaped, alive

    # -- writing (the training process) --------------------------------------------------

    def create(self, kind: str, config: dict, parent: int | None = None, status: str = "queued") -> int:
        """Add a run and return its id; a run created as "running" belongs to this process."""
        if kind not in RUN_KINDS:
            raise BadInputError(f"Unknown run kind {kind!r}; use one of {', '.join(RUN_KINDS)}.")
        if status not in STATUSES:
            raise BadInputError(f"Unknown run status {status!r}; use one of {', '.join(STATUSES)}.")
        now = time.time()
        started = now if status != "queued" else None
        finished = now if status in FINAL_STATUSES else None
        pid, pid_start = self._owner(None) if status == "running" else (None, None)
        with self._write() as conn:
            if parent is not None:
                self._row(conn, parent, "id")
            cur = conn.execute(
                "INSERT INTO runs (kind, parent, status, config, created, started, finished, pid, "
                "pid_start, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, parent, status, _dumps(config), now, started, finished, pid, pid_start, self._host),
            )
            return int(cur.lastrowid)

    def paths(self, run_id: int) -> RunPaths:
        """Where run `run_id`'s files live (nothing is created)."""
        return RunPaths.of(self.workspace, run_id)

    def run_dir(self, run_id: int) -> Path:
        """The artifact folder `<workspace>/runs/<id>`, created if missing."""
        path = self.runs_path / str(int(run_id))
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PetLabError(
                f"The run folder {path} cannot be created ({exc.strerror or exc}); free disk space or "
                "make the workspace writable, or choose another one with --workspace."
            ) from None
        return path

    def start(self, run_id: int, pid: int | None = None) -> None:
        """Mark a queued run running in process `pid` (default: this process)."""
        pid, pid_start = self._owner(pid)
        with self._write() as conn:
            (status,) = self._row(conn, run_id, "status")
            if status == "cancelled":
                raise RunCancelled(f"Run {run_id} was cancelled before it started; start a new run.")
            if status in FINAL_STATUSES:
                raise BadInputError(f"Run {run_id} has already {status}; start a new run instead.")
            conn.execute(
                "UPDATE runs SET status = 'running', started = ?, finished = NULL, pid = ?, "
                "pid_start = ?, host = ?, error = NULL WHERE id = ?",
                (time.time(), pid, pid_start, self._host, run_id),
            )

    def log_epoch(self, run_id: int, epoch: int, metrics: dict, seconds: float) -> None:
        """Record the metrics of epoch `epoch` (1-based); logging an epoch again replaces it."""
        if epoch < 1:
            raise BadInputError(f"Epoch numbers start at 1, got {epoch}; pass the 1-based epoch.")
        with self._write() as conn:
            self._row(conn, run_id, "id")
            conn.execute(
                "INSERT INTO epochs (run_id, epoch, seconds, metrics) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id, epoch) DO UPDATE SET seconds = excluded.seconds, "
                "metrics = excluded.metrics",
                (run_id, int(epoch), float(seconds), _dumps(metrics)),
            )

    def set_progress(self, run_id: int, **progress: Any) -> None:
        """Merge live progress (epoch, epochs, step, steps) into the run; stamps `updated`."""
        progress["updated"] = time.time()
        with self._write() as conn:
            (current,) = self._row(conn, run_id, "progress")
            conn.execute(
                "UPDATE runs SET progress = ? WHERE id = ?", (_dumps({**_loads(current), **progress}), run_id)
            )

    def update_metrics(self, run_id: int, metrics: dict) -> None:
        """Merge `metrics` into the run's final metrics (later values win)."""
        with self._write() as conn:
            (current,) = self._row(conn, run_id, "metrics")
            conn.execute(
                "UPDATE runs SET metrics = ? WHERE id = ?", (_dumps({**_loads(current), **metrics}), run_id)
            )

    def finish(self, run_id: int, status: str, metrics: dict | None = None, error: str | None = None) -> None:
        """End a run as done, failed or cancelled, merging `metrics` into its final metrics."""
        if status not in FINAL_STATUSES:
            raise BadInputError(f"A run can finish as {', '.join(FINAL_STATUSES)}, not {status!r}.")
        with self._write() as conn:
            (current,) = self._row(conn, run_id, "metrics")
            merged = {**_loads(current), **(metrics or {})}
            conn.execute(
                "UPDATE runs SET status = ?, finished = ?, metrics = ?, error = ? WHERE id = ?",
                (status, time.time(), _dumps(merged), error, run_id),
            )

    def requeue(self, run_id: int) -> None:
        """Put a failed run back in the queue, to be resumed; its logged epochs and metrics are kept."""
        self.reap_stale()
        with self._write() as conn:
            (status,) = self._row(conn, run_id, "status")
            if status != "failed":
                raise BadInputError(f"Run {run_id} is {status}; only a failed run can be resumed.")
            conn.execute(
                "UPDATE runs SET status = 'queued', error = NULL, finished = NULL, pid = NULL, "
                "pid_start = NULL, progress = '{}', cancel_requested = 0 WHERE id = ?",
                (run_id,),
            )

    def request_cancel(self, run_id: int) -> None:
        """Ask a run to stop: a queued run is cancelled at once, a running one is flagged."""
        with self._write() as conn:
            (status,) = self._row(conn, run_id, "status")
            if status == "queued":
                conn.execute(
                    "UPDATE runs SET status = 'cancelled', cancel_requested = 1, finished = ? WHERE id = ?",
                    (time.time(), run_id),
                )
            elif status == "running":
                conn.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    def cancel_requested(self, run_id: int) -> bool:
        """Whether someone asked this run to stop (cheap; call it between batches)."""
        with self._read() as conn:
            return bool(self._row(conn, run_id, "cancel_requested")[0])

    def claim_next_queued(self, pid: int | None = None) -> RunRecord | None:
        """If nothing is running, atomically mark the oldest queued run running and return it."""
        pid, pid_start = self._owner(pid)
        with self._write() as conn:
            _, running = self._reap(conn)
            if running:
                return None
            row = conn.execute(
                "SELECT id FROM runs WHERE status = 'queued' ORDER BY created, id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE runs SET status = 'running', started = ?, pid = ?, pid_start = ?, host = ? "
                "WHERE id = ?",
                (time.time(), pid, pid_start, self._host, row[0]),
            )
            return self._record(self._row(conn, row[0]))

    def delete(self, run_id: int) -> None:
        """Remove a run that is not running: its record, its epochs and its folder."""
        self.reap_stale()
        with self._write() as conn:
            (status,) = self._row(conn, run_id, "status")
            if status == "running":
                raise BadInputError(
                    f"Run {run_id} is still running; cancel it and wait for it to stop first."
                )
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        folder = self.runs_path / str(int(run_id))
        if folder.exists():
            with self._errors():
                shutil.rmtree(folder)

    # -- reading (dashboards, the command line) ------------------------------------------

    def reap_stale(self) -> list[int]:
        """Mark failed every running run whose process is gone; return their ids."""
        with self._read() as conn:
            rows = conn.execute("SELECT pid, pid_start, host FROM runs WHERE status = 'running'").fetchall()
            if all(
                pid is None or host != self._host or process_alive(pid, start) for pid, start, host in rows
            ):
                return []  # the common case: no write, no lock
            # Each conditional UPDATE commits on its own (autocommit), so no long lock is held.
            return self._reap(conn)[0]

    def get(self, run_id: int) -> RunRecord:
        """One run; NotFoundError if there is no such run."""
        self.reap_stale()
        with self._read() as conn:
            record = self._record(self._row(conn, run_id))
        return self._checked(record)

    def list(self) -> list[RunRecord]:
        """All runs, newest first."""
        self.reap_stale()
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM runs ORDER BY created DESC, id DESC").fetchall()
        return [self._checked(self._record(row)) for row in rows]

    def history(self, run_id: int) -> list[dict]:
        """Per-epoch metrics in epoch order: [{"epoch": 1, "seconds": ..., **metrics}, ...]."""
        with self._read() as conn:
            self._row(conn, run_id, "id")
            rows = conn.execute(
                "SELECT epoch, seconds, metrics FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
        out = []
        for epoch, seconds, metrics in rows:
            entry: dict[str, Any] = {"epoch": epoch, "seconds": seconds}
            entry.update((k, v) for k, v in _loads(metrics).items() if k not in entry)
            out.append(entry)
        return out

    def active(self) -> RunRecord | None:
        """The run that is running now, if any."""
        self.reap_stale()
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE status = 'running' ORDER BY started, id LIMIT 1"
            ).fetchone()
        return self._record(row) if row else None


__all__ = [
    "FINAL_STATUSES",
    "RUN_KINDS",
    "STALE_ERROR",
    "STATUSES",
    "RunRecord",
    "RunStore",
    "artifact_problem",
    "process_alive",
    "process_start_time",
]
