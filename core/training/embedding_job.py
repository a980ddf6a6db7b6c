"""The embedding map as a job of the worker's queue: every image of a split placed in 2-D.

An embedding job (kind "embedding", queued by the Embedding map page through
core.runs.requests.queue_analysis with core.embeddings.maps.map_options) studies its parent, a
finished training run. It gets the run's pooled backbone features of the split
(core.training.run_features: at once from the feature cache for a head run trained on cached
features, else extracted with progress), projects them to 2-D (core.embeddings: PCA, then
t-SNE, reporting its iterations as stages) through the embedding cache, so a second map of the
same features is instant, and writes the map with each image's label and file name to the
job's folder (RunPaths.embedding). Its metrics say what the page needs: the split, how many
points, how they were placed and whether the cache already held them. A cancel stops the t-SNE
within a few iterations; the job then ends cancelled and nothing is stored.
"""

from __future__ import annotations

import time

from core.embeddings.cache import EmbeddingCache
from core.embeddings.maps import map_options, map_split, write_map
from core.embeddings.projection import TsneSettings, method_for
from core.errors import RunCancelled
from core.progress import ProgressCallback
from core.runs.records import EMBEDDING, RunRecord
from core.runs.store import RunStore
from core.training.callbacks import Printer
from core.training.run_features import load_run_features


def execute_embedding(store: RunStore, record: RunRecord, say: Printer, progress: ProgressCallback) -> dict:
    """Carry out a claimed embedding job: the map in the job's folder, done with its metrics (returned).

    Ends the job itself: done, or cancelled when a cancel came first (then nothing is written).
    """
    started = time.monotonic()
    options = record.config.get(EMBEDDING, {})
    split = map_split(record)
    map_options(split)  # an unknown split fails here, in one sentence
    settings = TsneSettings.from_options(options)

    def should_stop() -> bool:
        return store.cancel_requested(record.id)  # a registry read: microseconds

    features = load_run_features(store, store.get(record.parent), (split,), progress)
    try:
        if should_stop():
            raise RunCancelled("cancelled before the map was started")
        coords, cached = EmbeddingCache(store.workspace).get(
            features.features[split], settings, progress, should_stop
        )
    except RunCancelled:
        store.set_progress(record.id, stage=None)
        store.finish(record.id, "cancelled")
        say(f"run {record.id} cancelled: the map of the {split} split was not finished")
        return {}
    source, labels = features.data.source, features.labels(split)
    names = [source.item_name(split, index) for index in range(len(labels))]
    store.set_progress(record.id, stage=None)
    paths = store.paths(record.id)
    paths.create()
    write_map(paths.embedding, coords, labels, names, features.data.class_names, split)
    metrics = {
        "split": split,
        "points": len(labels),
        "classes": len(features.data.class_names),
        "method": method_for(len(labels)),
        "cached": cached,
        "seconds": round(time.monotonic() - started, 2),
    }
    store.finish(record.id, "done", metrics)
    say(f"run {record.id} done: a map of {len(labels)} {split} images" + (" (cached)" if cached else ""))
    return metrics
