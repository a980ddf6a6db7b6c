"""Training on curated data: a head run queued after marks trains on the kept rows with the new labels,
records the curation it trained on, and shares the feature cache with uncurated runs of the same data.

The flipped striped data of tests.core.curation.flipped (a real head run on it), in a private copy of
its workspace; what the head trained on is read where the batches are made (feature_dataset).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

import core.training.fit as fit_module
from core import config as cfg
from core.curation.apply import RowView
from core.curation.marks import Curation, Mark, load_snapshot, save_mark, take_snapshot
from core.data import open_source
from core.runs.requests import queue_finetune_run, queue_head_run
from core.runs.store import RunStore
from core.training.datasets import Sampling, image_dataset
from core.training.worker import run_queue
from tests.core.curation.flipped import flipped_run, private_copy


@pytest.fixture(scope="module")
def flipped(tmp_path_factory):
    return flipped_run(tmp_path_factory.getbasetemp() / "flipped-labels")


@pytest.fixture
def short(flipped) -> cfg.TrainConfig:
    """The flipped run's head settings, for 2 epochs: these tests check data, not learning."""
    return dataclasses.replace(flipped.train, epochs=2)


@pytest.fixture
def workspace(flipped, tmp_path) -> Path:
    return private_copy(flipped, tmp_path)


@pytest.fixture
def batches(monkeypatch) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """(features, labels, training?) of every dataset of features a fit builds, as it got them."""
    seen = []
    original = fit_module.feature_dataset

    def recording(views, labels, num_classes, sampling):
        seen.append((np.asarray(views[0]), np.asarray(labels), sampling.seed is not None))
        return original(views, labels, num_classes, sampling)

    monkeypatch.setattr(fit_module, "feature_dataset", recording)
    return seen


def mark_flipped(workspace: Path, flipped) -> tuple[list[Mark], dict]:
    """Relabel two flipped training images to their true class, exclude one more and a validation image."""
    source = open_source("folder", flipped.data.path, workspace=workspace, data_config=flipped.data)
    classes = source.class_names
    names = {
        split: [source.item_name(split, i) for i in range(source.split_size(split))] for split in cfg.SPLITS
    }
    labels = {split: source.labels(split) for split in cfg.SPLITS}
    wrong = [i for i, name in enumerate(names["train"]) if name in flipped.flipped]
    true_of = {"Abyssinian": "Bengal", "beagle": "Abyssinian", "Bengal": "beagle"}  # moved one class on

    def mark(split: str, index: int, action: str, label: str | None = None) -> Mark:
        return Mark(split, index, names[split][index], classes[labels[split][index]], action, label)

    marks = [
        mark("train", wrong[0], "relabel", true_of[classes[labels["train"][wrong[0]]]]),
        mark("train", wrong[1], "relabel", true_of[classes[labels["train"][wrong[1]]]]),
        mark("train", wrong[2], "exclude"),
        mark("validation", 0, "exclude"),
        mark("train", wrong[3], "keep"),
    ]
    base = Curation(source.fingerprint(), classes)
    for one in marks:
        save_mark(workspace, flipped.data, base, one)
    return marks, {"labels": labels, "classes": classes}


def expected(split: str, marks: list[Mark], given: dict) -> tuple[np.ndarray, np.ndarray]:
    """(kept rows, their labels) of `split` worked out from the marks by hand."""
    labels = given["labels"][split].copy()
    dropped = {m.index for m in marks if m.split == split and m.action == "exclude"}
    for m in marks:
        if m.split == split and m.action == "relabel":
            labels[m.index] = given["classes"].index(m.label)
    rows = np.array([i for i in range(len(labels)) if i not in dropped])
    return rows, labels[rows]


def cached_features(workspace: Path) -> dict[str, tuple]:
    return {p.name: np.load(p, mmap_mode="r").shape for p in (workspace / "cache" / "features").glob("*.npy")}


def test_a_curated_run_trains_on_the_kept_rows_with_their_new_labels(
    workspace, flipped, short, batches
) -> None:
    """Catches marks not applied, applied to the wrong rows, or features not matching their labels."""
    marks, given = mark_flipped(workspace, flipped)
    cache_before = cached_features(workspace)
    store = RunStore(workspace)
    run_id = queue_head_run(store, flipped.data, short)
    run_queue(store, say=lambda line: None)
    record = store.get(run_id)
    assert record.status == "done", record.error
    digest = record.data.curation
    assert digest == take_snapshot(workspace, flipped.data)
    assert load_snapshot(workspace, digest).counts() == {"relabelled": 2, "excluded": 2, "kept": 0}
    assert (record.metrics["curated_relabelled"], record.metrics["curated_excluded"]) == (2, 2)
    train_rows, train_labels = expected("train", marks, given)
    _, val_labels = expected("validation", marks, given)
    trained = [b for b in batches if b[2]]
    watched = [b for b in batches if not b[2]]
    np.testing.assert_array_equal(trained[0][1], train_labels)
    np.testing.assert_array_equal(watched[0][1], val_labels)
    # The features are the kept rows of the whole split's cached features: the cache is never curated.
    assert cached_features(workspace) == cache_before
    folder = workspace / "cache" / "features"
    count = len(given["labels"]["train"])
    whole_train = [np.load(p) for p in folder.glob("*.npy") if len(np.load(p, mmap_mode="r")) == count]
    assert whole_train  # the train split's features (as it is, and mirrored), one row per image
    assert any(np.array_equal(trained[0][0], whole[train_rows]) for whole in whole_train)


def test_an_uncurated_run_of_the_same_data_trains_on_every_image(workspace, flipped, short, batches) -> None:
    _, given = mark_flipped(workspace, flipped)
    store = RunStore(workspace)
    run_id = queue_head_run(store, flipped.data, short, curation=False)
    run_queue(store, say=lambda line: None)
    record = store.get(run_id)
    assert record.status == "done" and record.data.curation is None
    assert "curated_excluded" not in record.metrics
    np.testing.assert_array_equal(next(b for b in batches if b[2])[1], given["labels"]["train"])


def test_fine_tuning_keeps_the_curation_of_its_parent(workspace, flipped) -> None:
    mark_flipped(workspace, flipped)
    store = RunStore(workspace)
    run_id = queue_head_run(store, flipped.data, flipped.train)
    store.finish(run_id, "done")  # not trained: queueing the fine-tuning run needs only its files
    shutil.copytree(store.paths(flipped.run_id).folder, store.paths(run_id).folder, dirs_exist_ok=True)
    finetune_id = queue_finetune_run(store, run_id, cfg.FinetuneConfig())
    assert store.get(finetune_id).data.curation == store.get(run_id).data.curation is not None


def test_marks_made_on_other_data_fail_the_run_before_it_trains(workspace, flipped, short) -> None:
    source = open_source("folder", flipped.data.path, workspace=workspace, data_config=flipped.data)
    stale = Curation("the fingerprint of an older version", source.class_names)
    mark = Mark(
        "train", 0, source.item_name("train", 0), source.class_names[source.labels("train")[0]], "exclude"
    )
    save_mark(workspace, flipped.data, stale, mark)
    store = RunStore(workspace)
    run_id = queue_head_run(store, flipped.data, short)
    run_queue(store, say=lambda line: None)
    record = store.get(run_id)
    assert record.status == "failed" and "another version of this data" in record.error
    assert store.history(run_id) == []


def test_the_image_path_draws_the_kept_rows() -> None:
    """A curated split on the image path (augmentations the cache cannot hold) reads its RowView's rows."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    rows = np.array([0, 3, 4, 8])
    dataset, steps = image_dataset(RowView(images, rows), np.arange(4) % 3, 3, Sampling(batch_size=4), "none")
    x, y = next(iter(dataset))
    assert steps == 1
    np.testing.assert_array_equal(np.asarray(x), images[rows].astype(np.float32))
    np.testing.assert_array_equal(np.asarray(y).argmax(axis=1), np.arange(4) % 3)


def test_experiments_train_on_the_curated_rows_of_the_cached_features(workspace, flipped) -> None:
    """The learning-rate finder and sweeps (core.training.head_features) see the curated data too."""
    from core.training.head_features import load_head_features

    marks, given = mark_flipped(workspace, flipped)
    curated = dataclasses.replace(flipped.data, curation=take_snapshot(workspace, flipped.data))
    plain = load_head_features(flipped.data, flipped.train, workspace)
    features = load_head_features(curated, flipped.train, workspace)
    train_rows, train_labels = expected("train", marks, given)
    val_rows, val_labels = expected("validation", marks, given)
    np.testing.assert_array_equal(features.data.arrays["train"][1], train_labels)
    np.testing.assert_array_equal(features.data.arrays["validation"][1], val_labels)
    for curated_view, whole in zip(features.views, plain.views, strict=True):
        np.testing.assert_array_equal(curated_view, whole[train_rows])
    np.testing.assert_array_equal(features.validation, plain.validation[val_rows])
    assert features.cache.computed == 0  # every feature came from the cache


def test_a_sweep_on_curated_data_records_its_counts_on_its_members_and_winner(workspace, flipped) -> None:
    from core.runs.requests import queue_sweep
    from core.tables.runs import curation_label

    mark_flipped(workspace, flipped)
    store = RunStore(workspace)
    train = dataclasses.replace(flipped.train, epochs=1)
    sweep_id = queue_sweep(store, flipped.data, train, [{"lr": 1e-2}, {"lr": 1e-3}])
    run_queue(store, say=lambda line: None)
    assert store.get(sweep_id).status == "done"
    runs = [r for r in store.list() if r.parent == sweep_id]
    assert sorted(r.kind for r in runs) == ["head", "member", "member"]  # the winner promoted to a head run
    digest = store.get(sweep_id).data.curation
    assert digest is not None
    assert {curation_label(r) for r in runs} == {f"curated {digest[:8]}: 2 relabelled, 2 excluded"}
