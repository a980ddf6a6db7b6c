"""The embedding map as a worker job (core.training.embedding_job), end to end on a tiny finished run.

One real head run (tests/conftest.py `trained`: MobileNetV3Small, random weights, 32 px, six Oxford
breeds in class folders) on a private copy of its workspace without its caches; the jobs are
queued as the page queues them and run by the worker's own loop. Few t-SNE iterations (a job
option), so each map takes a moment. Catches: a map whose points are not the split's images in
order (labels, file names), progress that never reaches the registry, a second map of the same
features that runs t-SNE again, a cancel that is ignored or leaves a map behind.
"""

from __future__ import annotations

import shutil

import numpy as np
import openTSNE
import pytest

from core.config import SPLITS
from core.data.sources import open_source
from core.embeddings.maps import map_options, read_map
from core.embeddings.projection import TSNE_STAGE
from core.runs.records import EMBEDDING
from core.runs.requests import queue_analysis
from core.runs.store import RunStore
from core.training.worker import run_queue

FEW = {"early_exaggeration_iter": 20, "n_iter": 30}


@pytest.fixture(scope="module")
def workspace(trained, tmp_path_factory):
    """A copy of the trained workspace, without the feature cache the head run left."""
    copy = tmp_path_factory.mktemp("embedding-job") / "workspace"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("cache"))
    return copy


@pytest.fixture
def tsne_runs(monkeypatch) -> list[int]:
    runs: list[int] = []
    fit = openTSNE.TSNE.fit

    def counted(self, *args, **kwargs):
        runs.append(len(args[0]))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(openTSNE.TSNE, "fit", counted)
    return runs


def run_map(store: RunStore, split: str) -> tuple[int, list[str]]:
    """Queue the map of run 1's `split` as the page does and let the worker run it: (job, stages recorded)."""
    job = queue_analysis(store, EMBEDDING, 1, map_options(split) | FEW)
    stages: list[str] = []
    record = store.set_progress

    def recording(run_id, **values):
        record(run_id, **values)
        if run_id == job and values.get("stage"):
            stages.append(values["stage"])

    store.set_progress = recording
    try:
        run_queue(store, say=lambda line: None)
    finally:
        store.set_progress = record
    return job, stages


def test_a_map_job_places_every_image_of_the_split(workspace, tsne_runs):
    store = RunStore(workspace)
    run = store.get(1)
    job, stages = run_map(store, "train")
    record = store.get(job)
    assert (record.status, record.parent, record.error) == ("done", 1, None)
    source = open_source(run.data.source, run.data.path, workspace=workspace, data_config=run.data)
    frame = read_map(store.paths(job).embedding)
    size = source.split_size("train")
    assert len(frame) == size >= 10 and tsne_runs == [size]
    assert frame["label"].tolist() == source.labels("train").tolist()
    assert frame["item"].tolist() == [source.item_name("train", i) for i in range(size)]
    assert frame["class_name"].astype(str).tolist() == [source.class_names[i] for i in source.labels("train")]
    assert set(frame["species"]) == {"cat", "dog"} and np.isfinite(frame[["x", "y"]].to_numpy()).all()
    assert record.metrics | {"seconds": 0} == {
        "split": "train",
        "points": size,
        "classes": len(source.class_names),
        "method": "t-SNE",
        "cached": False,
        "seconds": 0,
    }
    assert "extracting train features (original)" in stages  # the cache was empty
    assert TSNE_STAGE in stages  # t-SNE's iterations reached the registry


def test_a_second_map_of_the_same_features_is_read_from_the_cache(workspace, tsne_runs):
    store = RunStore(workspace)
    first, _ = run_map(store, "train")
    before = len(tsne_runs)  # 1 when this test runs alone, 0 after the test above
    again, stages = run_map(store, "train")
    assert store.get(again).status == "done" and store.get(again).metrics["cached"] is True
    assert len(tsne_runs) == before  # openTSNE did not run for the second map
    assert TSNE_STAGE not in stages
    a, b = read_map(store.paths(first).embedding), read_map(store.paths(again).embedding)
    assert np.array_equal(a[["x", "y"]].to_numpy(), b[["x", "y"]].to_numpy())


def test_a_tiny_split_is_mapped_without_t_sne(workspace, tsne_runs):
    store = RunStore(workspace)
    source = open_source("folder", store.get(1).data.path, workspace=workspace)
    sizes = {split: source.split_size(split) for split in SPLITS}
    assert sizes["validation"] < 10 <= sizes["test"]
    job, _ = run_map(store, "validation")
    assert store.get(job).metrics["method"] == "PCA" and tsne_runs == []
    assert len(read_map(store.paths(job).embedding)) == sizes["validation"]


def test_cancel_stops_the_t_sne_and_keeps_no_map(workspace, tsne_runs):
    store = RunStore(workspace)
    cached = set((workspace / "cache" / "embeddings").glob("*.npy"))
    asked: list[int] = []

    def cancel_in_t_sne(stage, done, total):
        if stage == TSNE_STAGE and not asked:
            asked.append(store.active().id)
            store.request_cancel(asked[0])

    job = queue_analysis(
        store, EMBEDDING, 1, map_options("test") | {"early_exaggeration_iter": 40, "n_iter": 400}
    )
    run_queue(store, say=lambda line: None, progress=cancel_in_t_sne)
    record = store.get(job)
    assert asked == [job] and record.status == "cancelled" and record.error is None
    assert len(tsne_runs) == 1  # it had started
    assert not store.paths(job).embedding.exists()
    assert set((workspace / "cache" / "embeddings").glob("*.npy")) == cached
