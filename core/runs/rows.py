"""How a run is stored in the registry's `runs` table: its columns, its JSON text columns, its record.

Config, metrics and progress are JSON text; numpy and tensor scalars, paths and
the like are written as plain JSON values.
"""

from __future__ import annotations

import json
from typing import Any

from core.runs.liveness import Owner
from core.runs.records import RunRecord

# The columns of a RunRecord, then its owner's (pid is in both).
RECORD_COLUMNS = (
    "id, kind, parent, status, config, created, started, finished, pid, error, "
    "metrics, progress, cancel_requested, pid_start, host"
)


def _json_default(obj: Any) -> Any:
    """Turn numpy/tensor scalars and arrays, paths and the like into plain JSON."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def dumps(obj: dict) -> str:
    """A JSON text column."""
    return json.dumps(obj, default=_json_default, allow_nan=True)


def loads(text: str | None) -> dict:
    """A JSON text column as a dict ({} when empty)."""
    return json.loads(text) if text else {}


def merged(current: str | None, update: dict) -> str:
    """The JSON column `current` with `update`'s keys written over it."""
    return dumps({**loads(current), **update})


def record_of(row: tuple) -> tuple[RunRecord, Owner]:
    """The record and owner of a row selected as RECORD_COLUMNS."""
    id_, kind, parent, status, config, created, started, finished, pid, error = row[:10]
    metrics, progress, cancel, pid_start, host = row[10:]
    record = RunRecord(
        id=id_,
        kind=kind,
        parent=parent,
        status=status,
        config=loads(config),
        created=created,
        started=started,
        finished=finished,
        pid=pid,
        error=error,
        metrics=loads(metrics),
        progress=loads(progress),
        cancel_requested=bool(cancel),
    )
    return record, Owner(pid, pid_start, host)
