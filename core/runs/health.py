"""Whether a finished run's saved model can still be used, checked cheaply enough for every listing.

A run folder or its `model.keras` deleted or damaged by hand makes a done run
"broken" (`RunRecord.broken`, one sentence). The check looks at the files only:
the folder exists, the model is a zip holding a Keras config and weights, and
the class names are a non-empty JSON list. It never loads a model.
"""

from __future__ import annotations

import json
import zipfile
from functools import lru_cache

from core.runs.layout import RunPaths

ADVICE = "train a new run (or restore the folder from a backup)"
KERAS_ARCHIVE_MEMBERS = frozenset({"config.json", "model.weights.h5"})


@lru_cache(maxsize=1024)
def _keras_file_ok(path: str, mtime_ns: int, size: int) -> bool:
    """Whether `path` is a zip holding a Keras config and weights (cached per file version)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return names >= KERAS_ARCHIVE_MEMBERS


def _model_ok(paths: RunPaths) -> bool | None:
    """True for a plausible Keras file, False for a damaged one, None when it is missing."""
    try:
        stat = paths.model.stat()
    except OSError:
        return None
    return paths.model.is_file() and _keras_file_ok(str(paths.model), stat.st_mtime_ns, stat.st_size)


def _class_names_ok(paths: RunPaths) -> bool:
    try:
        names = json.loads(paths.class_names.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(names, list) and bool(names)


def artifact_problem(run_id: int, paths: RunPaths) -> str | None:
    """One sentence on why a finished run's saved model cannot be used, or None when it looks fine."""
    if not paths.folder.is_dir():
        return f"Run {run_id} is broken: its folder {paths.folder} was deleted; {ADVICE}."
    model_ok, model_name = _model_ok(paths), paths.model.name
    if model_ok is None:
        return f"Run {run_id} is broken: its {model_name} was deleted; {ADVICE}."
    if not model_ok:
        return f"Run {run_id} is broken: its {model_name} is damaged (not a Keras model file); {ADVICE}."
    if not _class_names_ok(paths):
        return f"Run {run_id} is broken: its {paths.class_names.name} is missing or damaged; {ADVICE}."
    return None
