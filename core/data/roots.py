"""What a visitor of the dashboard may read, and what the dashboard may tell them.

The command line trusts its user and opens any path. The dashboard may be shared,
so a folder typed into it must lie inside the *data roots*: the workspace, the
folder PetLab was started from, and any folders listed in `PETLAB_DATA_ROOTS`
(separated by os.pathsep). Paths are resolved first (`..` and symlinks), so
neither can lead out of a root. Messages shown in the browser go through
`redact_paths`, so they never reveal where things live on the server's disk.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from core.errors import BadInputError

DATA_ROOTS_ENV = "PETLAB_DATA_ROOTS"

# An absolute path in a message: `/x...` or `C:\x...`, not inside a word, a URL or a relative path.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/\\-])(?:[A-Za-z]:[\\/]|[\\/])[^\s;,'\"()<>\[\]`]+")


def data_roots(workspace: str | os.PathLike[str]) -> list[Path]:
    """The folders a dashboard visitor may read: the workspace, the start folder, $PETLAB_DATA_ROOTS."""
    extra = [entry for entry in os.environ.get(DATA_ROOTS_ENV, "").split(os.pathsep) if entry.strip()]
    roots = [Path(workspace), Path.cwd(), *(Path(entry.strip()) for entry in extra)]
    return list(dict.fromkeys(root.expanduser().resolve() for root in roots))


def resolve_within_roots(user_path: str | os.PathLike[str], roots: Iterable[Path]) -> Path:
    """`user_path` resolved (symlinks and `..` followed); BadInputError unless it lies inside a root.

    A relative path is taken from the folder PetLab was started from. The path need not exist
    yet: the part that exists is resolved, so a symlink in it cannot point out of the roots.
    """
    text = str(user_path).strip()
    if not text:
        raise BadInputError("No folder was given; type the path of a folder inside the data folders.")
    resolved = Path(text).expanduser().resolve(strict=False)
    if any(resolved.is_relative_to(root.resolve()) for root in roots):
        return resolved
    raise BadInputError(
        "That folder is outside the data folders this dashboard may read (its workspace and start folder); "
        f"choose one inside them, or ask whoever runs the dashboard to add it to {DATA_ROOTS_ENV}."
    )


def redact_paths(message: str, roots: Iterable[Path] = ()) -> str:
    """`message` with every absolute path cut down to what a visitor may see.

    A path inside one of `roots` keeps its part from the root's own name on (`pets/cat`
    for `<root>/pets/cat`, handling spaces in the root); any other absolute path becomes its
    base name, or `<path>` when it has none.
    """
    for root in sorted({str(Path(r)) for r in roots}, key=len, reverse=True):
        if Path(root).name:  # not the file system's root
            pattern = re.escape(root) + r"(?![\w.-])"
            message = re.sub(pattern, lambda _, name=Path(root).name: name, message)
    return _ABSOLUTE_PATH.sub(_base_name, message)


def _base_name(match: re.Match[str]) -> str:
    text = match.group(0)
    trailing = ""
    while text and text[-1] in ".!?:":  # sentence punctuation after the path stays
        trailing = text[-1] + trailing
        text = text[:-1]
    name = re.split(r"[\\/]", text.rstrip("\\/"))[-1]
    return (name or "<path>") + trailing
