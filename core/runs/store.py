"""The run registry: every training run, its progress and its results, in one SQLite file.

The registry lives at `<workspace>/runs.db` (core.runs.database: connections,
transactions, schema, errors); each run's files live in `<workspace>/runs/<ID>/`
(core.runs.layout). A training process (the command line, or a worker the
dashboard spawned) is the only writer of its run; dashboards in other processes
only read, about once a second. "One run at a time" is enforced by
`claim_next_queued`, which checks for a running run and claims the oldest queued
one in a single immediate transaction.

Reads never write. A run left "running" by a process that died (killed, crashed,
machine rebooted; see core.runs.liveness) is *shown* by `get`, `list` and `active`
as failed with STALE_ERROR, finished at its last sign of life. The writers that
depend on it (`claim_next_queued`, `requeue`, `request_cancel`, `delete`) store
that first, and `reap_stale` stores it on request. A failed run can be put back
in the queue with `requeue`; the trainer then resumes it from its last backed-up
epoch (core.training) and keeps the epochs already logged.

A finished run whose folder or `model.keras` was deleted or damaged by hand is
shown as broken (`RunRecord.broken`, one sentence; core.runs.health) by `get` and
`list`, without loading a model.

Epochs are numbered from 1. Config, metrics and progress are JSON text columns.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import astuple, dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import BadInputError, NotFoundError, RunCancelled
from core.runs.database import REVISION_TOPICS, Database
from core.runs.health import artifact_problem
from core.runs.layout import RunPaths, registry_file, runs_folder
from core.runs.liveness import Owner, this_host
from core.runs.records import FINAL_STATUSES, RUN_KINDS, STATUSES, RunRecord
from core.runs.rows import RECORD_COLUMNS, dumps, loads, merged, record_of

STALE_ERROR = (
    "The training process stopped unexpectedly; resume the run to continue from its last finished epoch, "
    "or start a new run."
)


def shown_as_stale(record: RunRecord) -> RunRecord:
    """A running run whose process is gone, as shown and then stored: failed at its last sign of life."""
    last_seen = record.live.updated or record.started or time.time()
    return replace(record, status="failed", error=STALE_ERROR, finished=last_seen)


class RunStore:
    """The run registry of one workspace; safe to use from several processes and threads at once."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = Path(workspace)
        self.db_path = registry_file(self.workspace)
        self.runs_path = runs_folder(self.workspace)
        self._db = Database(self.db_path)

    def paths(self, run_id: int) -> RunPaths:
        """Where run `run_id`'s files live (nothing is created)."""
        return RunPaths.of(self.workspace, run_id)

    def close(self) -> None:
        """Close this process's connection (it is reopened on next use)."""
        self._db.close()

    # -- lifecycle (the training process) ---------------------------------------------------

    def create(self, kind: str, config: dict, parent: int | None = None, status: str = "queued") -> int:
        """Add a run and return its id; a run created as "running" belongs to this process."""
        if kind not in RUN_KINDS:
            raise BadInputError(f"Unknown run kind {kind!r}; use one of {', '.join(RUN_KINDS)}.")
        if status not in STATUSES:
            raise BadInputError(f"Unknown run status {status!r}; use one of {', '.join(STATUSES)}.")
        now = time.time()
        started = now if status != "queued" else None
        finished = now if status in FINAL_STATUSES else None
        owner = Owner.of() if status == "running" else Owner(None, None, this_host())
        values = (kind, parent, status, dumps(config), now, started, finished, *astuple(owner))
        with self._write() as conn:
            if parent is not None:
                self._row(conn, parent, "id")
            cur = conn.execute(
                "INSERT INTO runs (kind, parent, status, config, created, started, finished, pid, "
                "pid_start, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return int(cur.lastrowid)

    def start(self, run_id: int, pid: int | None = None) -> None:
        """Mark a queued run running in process `pid` (default: this process)."""
        owner = Owner.of(pid)
        with self._write() as conn:
            (status,) = self._row(conn, run_id, "status")
            if status == "cancelled":
                raise RunCancelled(f"Run {run_id} was cancelled before it started; start a new run.")
            if status in FINAL_STATUSES:
                raise BadInputError(f"Run {run_id} has already {status}; start a new run instead.")
            _set_running(conn, run_id, owner)

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
                (run_id, int(epoch), float(seconds), dumps(metrics)),
            )

    def set_progress(self, run_id: int, **progress: Any) -> None:
        """Merge live progress (see records.Progress) into the run; stamps `updated`."""
        progress["updated"] = time.time()
        with self._write() as conn:
            (current,) = self._row(conn, run_id, "progress")
            conn.execute("UPDATE runs SET progress = ? WHERE id = ?", (merged(current, progress), run_id))

    def update_metrics(self, run_id: int, metrics: dict) -> None:
        """Merge `metrics` into the run's final metrics (later values win)."""
        with self._write() as conn:
            (current,) = self._row(conn, run_id, "metrics")
            conn.execute("UPDATE runs SET metrics = ? WHERE id = ?", (merged(current, metrics), run_id))

    def finish(self, run_id: int, status: str, metrics: dict | None = None, error: str | None = None) -> None:
        """End a run as done, failed or cancelled, merging `metrics` into its final metrics."""
        if status not in FINAL_STATUSES:
            raise BadInputError(f"A run can finish as {', '.join(FINAL_STATUSES)}, not {status!r}.")
        with self._write() as conn:
            (current,) = self._row(conn, run_id, "metrics")
            conn.execute(
                "UPDATE runs SET status = ?, finished = ?, metrics = ?, error = ? WHERE id = ?",
                (status, time.time(), merged(current, metrics or {}), error, run_id),
            )

    # -- queue and housekeeping (workers, the dashboard, the command line) ------------------

    def claim_next_queued(self, pid: int | None = None) -> RunRecord | None:
        """If nothing is running, atomically mark the oldest queued run running and return it."""
        owner = Owner.of(pid)
        with self._write() as conn:
            if self._reap(conn).running:
                return None
            row = conn.execute(
                "SELECT id FROM runs WHERE status = 'queued' ORDER BY created, id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            _set_running(conn, row[0], owner)
            return record_of(self._row(conn, row[0], RECORD_COLUMNS))[0]

    def requeue(self, run_id: int) -> None:
        """Put a failed run back in the queue, to be resumed; its logged epochs and metrics are kept."""
        with self._write() as conn:
            self._reap(conn)
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
            self._reap(conn)
            (status,) = self._row(conn, run_id, "status")
            if status == "queued":
                conn.execute(
                    "UPDATE runs SET status = 'cancelled', cancel_requested = 1, finished = ? WHERE id = ?",
                    (time.time(), run_id),
                )
            elif status == "running":
                conn.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    def delete(self, run_id: int) -> None:
        """Remove a run that is not running: its record, its epochs and its folder."""
        with self._write() as conn:
            self._reap(conn)
            (status,) = self._row(conn, run_id, "status")
            if status == "running":
                raise BadInputError(
                    f"Run {run_id} is still running; cancel it and wait for it to stop first."
                )
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        folder = self.paths(run_id).folder
        if folder.exists():
            with self._db.errors():
                shutil.rmtree(folder)

    def reap_stale(self) -> list[int]:
        """Store as failed every running run whose process is gone; return their ids."""
        if not self._any_stale():
            return []  # the common case: no write, no lock
        with self._write() as conn:
            return self._reap(conn).reaped

    # -- reading (dashboards, the command line): never writes -------------------------------

    def get(self, run_id: int) -> RunRecord:
        """One run; NotFoundError if there is no such run."""
        with self._read() as conn:
            row = self._row(conn, run_id, RECORD_COLUMNS)
        return self._shown(row)

    def list(self) -> list[RunRecord]:
        """All runs, newest first."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM runs ORDER BY created DESC, id DESC"
            ).fetchall()
        return [self._shown(row) for row in rows]

    def active(self) -> RunRecord | None:
        """The run that is running now, if any."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM runs WHERE status = 'running' ORDER BY started, id"
            ).fetchall()
        running = (record for record in map(self._shown, rows) if record.status == "running")
        return next(running, None)

    def history(self, run_id: int) -> list[dict]:
        """Per-epoch metrics in epoch order: [{"epoch": 1, "seconds": ..., **metrics}, ...]."""
        with self._read() as conn:
            self._row(conn, run_id, "id")
            rows = conn.execute(
                "SELECT epoch, seconds, metrics FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
        return [_epoch_entry(*row) for row in rows]

    def revision(self) -> Revision:
        """What changed since an earlier call, at the cost of one tiny read: compare two revisions.

        The counters are bumped by the registry itself (triggers) in every writer's transaction;
        `stale` says whether a running run's process is gone, which no write records.
        """
        with self._read() as conn:
            counts = dict(conn.execute("SELECT topic, n FROM revision").fetchall())
        return Revision(**{topic: counts[topic] for topic in REVISION_TOPICS}, stale=self._any_stale())

    def cancel_requested(self, run_id: int) -> bool:
        """Whether someone asked this run to stop (cheap; call it between batches)."""
        with self._read() as conn:
            return bool(self._row(conn, run_id, "cancel_requested")[0])

    # -- helpers -----------------------------------------------------------------------------

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.read()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """One short write transaction (tests use it to edit rows directly)."""
        return self._db.write()

    @staticmethod
    def _row(conn: sqlite3.Connection, run_id: int, columns: str) -> tuple:
        row = conn.execute(f"SELECT {columns} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"Run {run_id} does not exist; list runs with `python -m core runs`.")
        return row

    def _shown(self, row: tuple) -> RunRecord:
        """The record as a person should see it: stale runs failed, damaged finished runs broken."""
        record, owner = record_of(row)
        if record.status == "running" and owner.gone():
            return shown_as_stale(record)
        if record.status == "done" and record.trains:
            problem = artifact_problem(record.id, self.paths(record.id))
            return replace(record, broken=problem) if problem else record
        return record

    def _any_stale(self) -> bool:
        """Whether a running run's process is gone (a read: no lock is taken)."""
        with self._read() as conn:
            rows = conn.execute("SELECT pid, pid_start, host FROM runs WHERE status = 'running'").fetchall()
        return any(Owner(*row).gone() for row in rows)

    def _reap(self, conn: sqlite3.Connection) -> _Reaped:
        """Store as failed the running runs whose process is gone (inside a write transaction)."""
        rows = conn.execute(
            f"SELECT {RECORD_COLUMNS} FROM runs WHERE status = 'running' ORDER BY id"
        ).fetchall()
        reaped, running = [], 0
        for record, owner in map(record_of, rows):
            if not owner.gone():
                running += 1
                continue
            stale = shown_as_stale(record)
            conn.execute(
                "UPDATE runs SET status = ?, error = ?, finished = ? WHERE id = ?",
                (stale.status, stale.error, stale.finished, record.id),
            )
            reaped.append(record.id)
        return _Reaped(reaped, running)


@dataclass(frozen=True)
class Revision:
    """Change counters of the registry: runs (added, removed, status or results), live progress, epochs."""

    runs: int
    progress: int
    epochs: int
    stale: bool


@dataclass(frozen=True)
class _Reaped:
    """What a reap did: the ids it stored as failed, and how many runs are still running."""

    reaped: list[int]
    running: int


def _set_running(conn: sqlite3.Connection, run_id: int, owner: Owner) -> None:
    conn.execute(
        "UPDATE runs SET status = 'running', started = ?, finished = NULL, pid = ?, pid_start = ?, "
        "host = ?, error = NULL WHERE id = ?",
        (time.time(), *astuple(owner), run_id),
    )


def _epoch_entry(epoch: int, seconds: float, metrics: str) -> dict:
    entry: dict[str, Any] = {"epoch": epoch, "seconds": seconds}
    entry.update((k, v) for k, v in loads(metrics).items() if k not in entry)
    return entry


__all__ = [
    "FINAL_STATUSES",
    "RUN_KINDS",
    "STALE_ERROR",
    "STATUSES",
    "Revision",
    "RunRecord",
    "RunStore",
    "shown_as_stale",
]
