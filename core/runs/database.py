"""The registry's SQLite file: one connection per process, short transactions, its schema, clear errors.

Several processes use the file at once (a training process writes, dashboards
read about once a second), so:

- the database is in WAL mode (readers never block the writer), with a 10 s busy
  timeout and `synchronous=NORMAL`;
- each process opens its own connection, again after a `fork` (a connection
  inherited from the parent is never used or closed), guarded by a lock so one
  `Database` can be shared by threads;
- `write()` is one short `BEGIN IMMEDIATE` transaction, so two processes never
  interleave a read-modify-write;
- the schema version is SQLite's `user_version`; `MIGRATIONS[n]` brings a file
  from version n to n + 1, and a file from a newer PetLab is refused.

SQLite and disk failures become one PetLabError sentence, chosen by the SQLite
result code (`sqlite3.Error.sqlite_errorcode`), never by the message text.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from core.errors import PetLabError
from core.workspace import WORKSPACE_ENV

BUSY_TIMEOUT_MS = 10_000
OTHER_WORKSPACE = f"restart the dashboard with {WORKSPACE_ENV} set to another folder"

_SCHEMA_V1 = """
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

# Version 2: a change counter per topic, bumped by triggers in the writer's own transaction, so a
# dashboard polling every second can ask "did anything change?" with one tiny read (RunStore.revision).
_RUN_COLUMNS = (
    "kind, parent, status, config, started, finished, pid, pid_start, host, error, metrics, cancel_requested"
)


def _bump(topic: str) -> str:
    return f"BEGIN UPDATE revision SET n = n + 1 WHERE topic = '{topic}'; END"


_SCHEMA_V2 = f"""
CREATE TABLE revision (topic TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0);
INSERT INTO revision (topic) VALUES ('runs'), ('progress'), ('epochs');
CREATE TRIGGER runs_inserted AFTER INSERT ON runs {_bump("runs")};
CREATE TRIGGER runs_deleted AFTER DELETE ON runs {_bump("runs")};
CREATE TRIGGER runs_updated AFTER UPDATE OF {_RUN_COLUMNS} ON runs {_bump("runs")};
CREATE TRIGGER progress_updated AFTER UPDATE OF progress ON runs {_bump("progress")};
CREATE TRIGGER epochs_inserted AFTER INSERT ON epochs {_bump("epochs")};
CREATE TRIGGER epochs_updated AFTER UPDATE ON epochs {_bump("epochs")};
CREATE TRIGGER epochs_deleted AFTER DELETE ON epochs {_bump("epochs")};
"""
REVISION_TOPICS = ("runs", "progress", "epochs")

# MIGRATIONS[n] takes a file from schema version n to n + 1 (0: a new, empty file).
MIGRATIONS = (_SCHEMA_V1, _SCHEMA_V2)
SCHEMA_VERSION = len(MIGRATIONS)

# Primary SQLite result codes (an extended code's low byte is its primary code).
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_UNWRITABLE_CODES = frozenset(
    {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR}
)
_DAMAGED_CODES = frozenset({sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT})


def statements(script: str) -> list[str]:
    """The complete SQL statements of `script`, in order (a trigger's body keeps its own semicolons)."""
    found, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip())
            pending = ""
    return found


class Database:
    """The registry file at `path`; safe to share between threads, and to use across `fork`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = -1
        self._inherited: list[sqlite3.Connection] = []  # kept open: the parent process owns them
        with self.errors():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._migrate()

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn SQLite and disk failures inside the block into one clear sentence."""
        try:
            yield
        except sqlite3.Error as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from None
        except OSError:
            raise self._unwritable() from None

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """This process's connection, for reads (autocommit: each statement sees the latest commit)."""
        with self._lock, self.errors():
            yield self._connection()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One short `BEGIN IMMEDIATE` transaction: committed on success, else rolled back."""
        with self._lock, self.errors():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close this process's connection (it is reopened on next use)."""
        with self._lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        """This process's connection, opened on first use (and again after a fork)."""
        if self._conn is None or self._conn_pid != os.getpid():
            if self._conn is not None:
                self._inherited.append(self._conn)  # inherited through fork: never use or close it
            self._conn, self._conn_pid = self._open(), os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _migrate(self) -> None:
        with self.write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise PetLabError(
                    f"The run registry at {self.path} was written by a newer PetLab; "
                    "upgrade PetLab or choose another workspace with --workspace.",
                    dashboard=f"The run registry at {self.path} was written by a newer PetLab; "
                    f"upgrade PetLab or {OTHER_WORKSPACE}.",
                )
            if version == SCHEMA_VERSION:
                return
            for script in MIGRATIONS[version:]:
                # Statement by statement, not executescript: that would COMMIT our transaction first.
                for statement in statements(script):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _translate(self, exc: sqlite3.Error) -> PetLabError | None:
        """The sentence for a SQLite failure, or None for one that is not the user's to fix (a bug)."""
        code = getattr(exc, "sqlite_errorcode", None)
        primary = None if code is None else code & 0xFF
        if primary in _BUSY_CODES:
            return PetLabError(
                f"The run registry at {self.path} stayed locked by another process for "
                f"{BUSY_TIMEOUT_MS // 1000} s; try again in a moment."
            )
        if primary in _UNWRITABLE_CODES:
            return self._unwritable()
        if primary in _DAMAGED_CODES:
            damaged = f"The run registry at {self.path} is damaged; move it aside to start a fresh one"
            return PetLabError(
                f"{damaged}, or choose another workspace with --workspace.",
                dashboard=f"{damaged}, or {OTHER_WORKSPACE}.",
            )
        return None

    def _unwritable(self) -> PetLabError:
        unwritable = f"The run registry at {self.path} cannot be written (disk full or read-only); free space"
        return PetLabError(
            f"{unwritable} or choose another workspace with --workspace.",
            dashboard=f"{unwritable} or {OTHER_WORKSPACE}.",
        )
