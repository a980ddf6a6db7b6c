"""2-D maps computed once per feature set, kept in <workspace>/cache/embeddings/.

A map depends only on the features and the t-SNE settings, so it is stored under a digest of
the features' content and shape and of the settings in effect (the library's version included):
a second map of the same features, from another job of the same run or of a run that shares
its cached features, is read back at once. Labels and file names are not part of it; each job
writes those beside its own map (core.embeddings.maps).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.embeddings.projection import DEFAULT_SETTINGS, TsneSettings, project
from core.progress import ProgressCallback, no_progress
from core.workspace import atomic_path

CACHE_FORMAT = 1
CHUNK_ROWS = 4096  # rows hashed at a time: a memory-mapped feature file is never read whole


def features_digest(features: np.ndarray) -> str:
    """A digest of a feature array's dtype, shape and content."""
    digest = hashlib.sha256(f"{features.dtype.str}|{features.shape}".encode())
    for start in range(0, len(features), CHUNK_ROWS):
        digest.update(np.ascontiguousarray(features[start : start + CHUNK_ROWS]).data)
    return digest.hexdigest()


class EmbeddingCache:
    """Map coordinates per (features, settings): float32 [N, 2] .npy files."""

    def __init__(self, workspace: Path) -> None:
        self.root = Path(workspace) / "cache" / "embeddings"
        self.computed = 0  # maps this instance computed rather than read (for tests and benchmarks)

    def key(self, features: np.ndarray, settings: TsneSettings) -> str:
        """The file name (without .npy) of the map of `features` with `settings`."""
        text = json.dumps([CACHE_FORMAT, features_digest(features), settings.describe()], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def path(self, features: np.ndarray, settings: TsneSettings) -> Path:
        return self.root / f"{self.key(features, settings)}.npy"

    def get(
        self,
        features: np.ndarray,
        settings: TsneSettings = DEFAULT_SETTINGS,
        progress: ProgressCallback = no_progress,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> tuple[np.ndarray, bool]:
        """(coordinates [N, 2], whether they came from the cache); computed and stored when missing.

        RunCancelled when `should_stop` stopped the computation; nothing is stored then.
        """
        path = self.path(features, settings)
        if path.is_file():
            try:
                coords = np.load(path, allow_pickle=False)
                if coords.shape == (len(features), 2):
                    return coords, True
            except (OSError, ValueError):
                pass  # a damaged file: computed again below, and replaced
        coords = project(features, settings, progress, should_stop)
        with atomic_path(path) as tmp:
            np.save(tmp, coords, allow_pickle=False)
        self.computed += 1
        return coords, False
