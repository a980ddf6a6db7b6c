"""Where PetLab keeps its state, and how files in it are written.

One workspace folder holds everything: the run registry (`runs.db`), each run's
artifacts (`runs/<ID>/`), caches, and downloaded datasets. It is `./workspace`
unless the `--workspace` flag or the `PETLAB_WORKSPACE` environment variable says
otherwise. Files are written atomically: to a temporary file beside the target,
then renamed over it, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import BadInputError

WORKSPACE_ENV = "PETLAB_WORKSPACE"
DEFAULT_WORKSPACE = "workspace"


def resolve_workspace(path: str | os.PathLike[str] | None = None) -> Path:
    """Return the workspace folder (flag, then environment, then ./workspace), created."""
    chosen = path or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE
    workspace = Path(chosen).expanduser().resolve()
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = f"Cannot create the workspace folder {workspace} ({exc.strerror})"
        raise BadInputError(
            f"{problem}; choose another one with --workspace or {WORKSPACE_ENV}.",
            dashboard=f"{problem}; restart the dashboard with {WORKSPACE_ENV} set to a writable folder.",
        ) from None
    return workspace


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it over `target`.

    The temporary name ends with the target's own name, so writers that insist on a suffix
    (Keras: `.keras`, `.weights.h5`; numpy: `.npy`) accept it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", suffix=f".{target.name}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `target` atomically."""
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) to `target` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON to `target` atomically."""
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file written by `atomic_write_json`."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
