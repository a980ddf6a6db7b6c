"""A finished run's pooled backbone features per split: what the analysis jobs work on.

The embedding map (core.training.embedding_job) and the label-issue ranking
(core.training.label_issues) study a trained run through the pooled output of its backbone.
`load_run_features` loads the run's model and data and gets those features through the
feature cache (core.training.feature_cache): a head run trained on cached features finds them
there at once; any other run (a fine-tuned backbone, an augmentation the cache does not hold)
gets them computed once, with progress, and cached for the next job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import BadInputError
from core.progress import ProgressCallback, no_progress
from core.runs.records import RunRecord
from core.runs.store import RunStore
from core.training.datasets import load_split_arrays
from core.training.feature_cache import FeatureCache, FrozenPart
from core.training.fit import RunData


@dataclass(frozen=True)
class RunFeatures:
    """A run's data (source, decoded arrays) and the pooled features of the splits asked for."""

    data: RunData
    features: dict[str, np.ndarray]  # split -> float32 [N, D], rows in the source's index order

    def labels(self, split: str) -> np.ndarray:
        """The given int64 labels of `split`, in the same order as its features."""
        return np.asarray(self.data.arrays[split][1], np.int64)


def load_run_features(
    store: RunStore,
    run: RunRecord,
    splits: tuple[str, ...],
    progress: ProgressCallback = no_progress,
) -> RunFeatures:
    """The pooled backbone features of `run` (a finished training run) for `splits`, through the cache."""
    from core.inference.predict import load_run_model

    model, class_names = load_run_model(store.paths(run.id))
    source, arrays = load_split_arrays(run.data, Path(store.workspace), run.train.image_size, progress)
    data = RunData(source, arrays)
    if list(class_names) != list(data.class_names):
        raise BadInputError(
            f"The data of run {run.id} has changed since it was trained; train a new head run."
        )
    part, cache = FrozenPart.of(model), FeatureCache(store.workspace)
    features = {
        split: np.asarray(cache.get(part, arrays[split][0], data.fingerprint, split, progress=progress))
        for split in splits
    }
    return RunFeatures(data, features)
