"""An embedding job's map as the page reads it (core.embeddings.maps): file, table, selection, job.

Catches: a map file that does not read back as written, species given to classes that are not
Oxford breeds, a chart selection turned into the wrong rows (or rows of another map), and the
page finding the map of another split or run.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.embeddings.maps import (
    COLUMNS,
    class_counts,
    has_species,
    latest_map_job,
    map_options,
    map_progress,
    read_map,
    selected_rows,
    write_map,
)
from core.errors import BadInputError
from core.runs.records import EMBEDDING
from core.runs.store import RunStore

BREEDS = ["Abyssinian", "beagle", "Bengal"]


def written(path, class_names=BREEDS, labels=(0, 1, 2, 1, 0), split="validation"):
    coords = np.arange(2 * len(labels), dtype=np.float32).reshape(-1, 2)
    names = [f"img_{n}.jpg" for n in range(len(labels))]
    return write_map(path, coords, np.array(labels), names, class_names, split)


def test_a_map_reads_back_as_one_row_per_image(tmp_path):
    frame = read_map(written(tmp_path / "embedding.npz"))
    assert list(frame.columns) == COLUMNS and len(frame) == 5
    assert frame["x"].tolist() == [0, 2, 4, 6, 8] and frame["y"].tolist() == [1, 3, 5, 7, 9]
    assert frame["class_name"].astype(str).tolist() == [
        "Abyssinian",
        "beagle",
        "Bengal",
        "beagle",
        "Abyssinian",
    ]
    assert frame["species"].astype(str).tolist() == ["cat", "dog", "cat", "dog", "cat"]
    assert frame["index"].tolist() == [0, 1, 2, 3, 4] and set(frame["split"]) == {"validation"}
    assert frame["item"].tolist()[2] == "img_2.jpg"
    assert has_species(frame)
    assert class_counts(frame) == {"Abyssinian": 2, "beagle": 2, "Bengal": 1}


def test_own_classes_have_no_species(tmp_path):
    frame = read_map(written(tmp_path / "embedding.npz", class_names=["cat", "dog", "rabbit"]))
    assert set(frame["species"]) == {"other"} and not has_species(frame)


def test_a_missing_or_damaged_map_reads_as_none(tmp_path):
    assert read_map(tmp_path / "missing.npz") is None
    (tmp_path / "bad.npz").write_bytes(b"PK not really a zip")
    assert read_map(tmp_path / "bad.npz") is None
    np.savez(tmp_path / "partial.npz", coords=np.zeros((2, 2)))
    assert read_map(tmp_path / "partial.npz") is None
    assert read_map(written(tmp_path / "wrong.npz", labels=(0, 5))) is None  # a label without a class


def test_a_selection_becomes_the_rows_of_its_points():
    selection = {
        "points": [
            {"point_index": 0, "customdata": 4},  # the row, not the index within its trace
            {"point_index": 1, "customdata": [2]},
            {"point_index": 2, "customdata": 4},  # once
            {"point_index": 3, "customdata": 99},  # not a row of this map
            {"point_index": 4},
        ]
    }
    assert selected_rows(selection, rows=10) == [4, 2]
    assert selected_rows({"points": []}, 10) == [] and selected_rows(None, 10) == []


def test_the_page_finds_the_newest_map_of_its_run_and_split(tmp_path):
    store = RunStore(tmp_path)
    run = store.create("head", {}, status="done")
    other = store.create("head", {}, status="done")
    train_old = store.create(EMBEDDING, {EMBEDDING: map_options("train")}, parent=run)
    test_map = store.create(EMBEDDING, {EMBEDDING: map_options("test")}, parent=run)
    train_new = store.create(EMBEDDING, {EMBEDDING: map_options("train")}, parent=run)
    store.create(EMBEDDING, {EMBEDDING: map_options("train")}, parent=other)
    assert latest_map_job(store, run, "train").id == train_new != train_old
    assert latest_map_job(store, run, "test").id == test_map
    assert latest_map_job(store, run, "validation") is None
    with pytest.raises(BadInputError):
        map_options("everything")


def test_the_progress_bar_of_a_map_job(tmp_path):
    store = RunStore(tmp_path)
    job = store.create(EMBEDDING, {EMBEDDING: map_options("train")})
    assert map_progress(store.get(job)) == (0.0, "Waiting for the worker to start the map…")
    store.start(job)
    assert map_progress(store.get(job)) == (0.0, "Starting the map…")
    store.set_progress(job, stage="arranging the map (t-SNE iterations)", done=150, total=750)
    assert map_progress(store.get(job)) == (0.2, "Arranging the map (t-SNE iterations): 150 of 750")
    store.request_cancel(job)
    assert map_progress(store.get(job))[1].startswith("Stopping: arranging")
