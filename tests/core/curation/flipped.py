"""Generated images a head can learn, with labels flipped on purpose, and a finished head run on them.

Shared by the label-issue tests (job, command line, training): `flipped_run(folder)` builds it once
per process in `folder` (pass a session-wide folder); each test module works on `private_copy` of its
workspace (feature cache included), so no module sees another's jobs or marks. Every FLIP_EVERY-th
image is moved into the next class's folder, so its given label is wrong while its pixels still show
its own class.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
from dataclasses import dataclass
from pathlib import Path

from core import config as cfg
from core.runs.requests import queue_head_run
from core.runs.store import RunStore
from core.training.worker import run_queue
from tests.tiny_models import STRIPED_CLASSES, striped_experiment

FLIP_EVERY = 10


@dataclass(frozen=True)
class FlippedRun:
    """The workspace, its finished head run, the data and head configs, and the flipped files' names."""

    workspace: Path
    run_id: int
    data: cfg.DataConfig
    train: cfg.TrainConfig
    flipped: frozenset[str]


def flip_labels(root: Path, every: int = FLIP_EVERY) -> frozenset[str]:
    """Move every `every`-th image (by file number) into the next class's folder; their names."""
    chosen = [
        (path, STRIPED_CLASSES[(label + 1) % len(STRIPED_CLASSES)])
        for label, name in enumerate(STRIPED_CLASSES)
        for path in sorted((root / name).glob("*.png"))
        if int(path.stem) % every == every - 1
    ]
    for path, wrong in chosen:  # chosen first: a moved image is not moved again
        path.rename(root / wrong / path.name)
    return frozenset(path.name for path, _ in chosen)


@functools.cache
def flipped_run(folder: Path) -> FlippedRun:
    """Build the flipped data (90 images a class), train a head on it; once per process and folder."""
    data, train = striped_experiment(folder, per_class=90)
    flipped = flip_labels(Path(data.path))
    # A head that learns in a few epochs: the folds' heads train with the run's settings.
    train = dataclasses.replace(train, lr=1e-2, epochs=12, patience=3)
    workspace = folder / "workspace"
    store = RunStore(workspace)
    run_id = queue_head_run(store, data, train)
    run_queue(store, say=lambda line: None)
    assert store.get(run_id).status == "done", store.get(run_id).error
    store.close()
    return FlippedRun(workspace, run_id, data, train, flipped)


def private_copy(flipped: FlippedRun, folder: Path) -> Path:
    """A copy of the flipped run's workspace in `folder` (a new folder), feature cache included."""
    copy = folder / "workspace"
    shutil.copytree(flipped.workspace, copy)
    return copy
