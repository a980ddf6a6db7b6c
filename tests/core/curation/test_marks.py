"""Curation marks: the file per data source, its tie to the data's fingerprint, snapshots, applying them."""

from __future__ import annotations

import numpy as np
import pytest

from core import config as cfg
from core.curation.apply import RowView, check_applies, curate_split, curated_counts, marks_match
from core.curation.marks import (
    Curation,
    Mark,
    clear_marks,
    load_snapshot,
    marks_path,
    read_marks,
    remove_mark,
    save_mark,
    take_snapshot,
)
from core.errors import BadInputError, NotFoundError, PetLabError

CLASSES = ["cat", "dog", "rabbit"]
DATA = cfg.DataConfig(source="folder", path="/data/pets")
BASE = Curation("fingerprint-1", CLASSES)


def relabel(index: int, given: str, to: str, split: str = "train") -> Mark:
    return Mark(split, index, f"{given}{index}.jpg", given, "relabel", to)


def exclude(index: int, given: str, split: str = "train") -> Mark:
    return Mark(split, index, f"{given}{index}.jpg", given, "exclude")


def keep(index: int, given: str, split: str = "train") -> Mark:
    return Mark(split, index, f"{given}{index}.jpg", given, "keep")


def test_marks_round_trip_through_the_workspace(tmp_path) -> None:
    save_mark(tmp_path, DATA, BASE, relabel(3, "cat", "dog"))
    save_mark(tmp_path, DATA, BASE, exclude(1, "dog", "validation"))
    saved = save_mark(tmp_path, DATA, BASE, keep(0, "cat"))
    assert read_marks(tmp_path, DATA) == saved
    assert [m.place for m in saved.marks] == [("train", 0), ("train", 3), ("validation", 1)]
    assert saved.counts() == {"relabelled": 1, "excluded": 1, "kept": 1}
    assert marks_path(tmp_path, DATA).parent == tmp_path / "curation"


def test_a_new_mark_of_an_image_replaces_its_old_one(tmp_path) -> None:
    save_mark(tmp_path, DATA, BASE, relabel(3, "cat", "dog"))
    saved = save_mark(tmp_path, DATA, BASE, exclude(3, "cat"))
    assert saved.marks == (exclude(3, "cat"),)
    assert remove_mark(tmp_path, DATA, BASE, "train", 3).marks == ()
    save_mark(tmp_path, DATA, BASE, keep(1, "cat"))
    clear_marks(tmp_path, DATA)
    assert read_marks(tmp_path, DATA) is None


def test_marks_of_other_data_are_replaced_not_mixed_in(tmp_path) -> None:
    """The same source after its files changed (another fingerprint) starts with no marks."""
    save_mark(tmp_path, DATA, BASE, exclude(1, "cat"))
    newer = Curation("fingerprint-2", CLASSES)
    saved = save_mark(tmp_path, DATA, newer, keep(2, "dog"))
    assert (saved.fingerprint, saved.marks) == ("fingerprint-2", (keep(2, "dog"),))


def test_each_source_has_its_own_marks(tmp_path) -> None:
    """Catches marks found by anything coarser than the source, its path and its split settings."""
    save_mark(tmp_path, DATA, BASE, exclude(1, "cat"))
    others = [
        cfg.DataConfig(source="folder", path="/data/other"),
        cfg.DataConfig(source="oxford-files", path="/data/pets"),
        cfg.DataConfig(source="folder", path="/data/pets", seed=7),
        cfg.DataConfig(source="folder", path="/data/pets", validation_fraction=0.2),
    ]
    for other in others:
        assert read_marks(tmp_path, other) is None
        assert take_snapshot(tmp_path, other) is None
    assert read_marks(tmp_path, cfg.DataConfig(source="folder", path="/data/pets/")) is not None


def test_the_test_split_and_unknown_classes_cannot_be_marked(tmp_path) -> None:
    with pytest.raises(BadInputError, match="test split measures"):
        save_mark(tmp_path, DATA, BASE, exclude(0, "cat", "test"))
    with pytest.raises(BadInputError, match="no class 'horse'"):
        save_mark(tmp_path, DATA, BASE, relabel(0, "cat", "horse"))
    assert read_marks(tmp_path, DATA) is None


def test_a_damaged_marks_file_is_reported_in_one_sentence(tmp_path) -> None:
    marks_path(tmp_path, DATA).parent.mkdir(parents=True)
    marks_path(tmp_path, DATA).write_text("{not json")
    with pytest.raises(PetLabError, match="cannot be read; clear them"):
        read_marks(tmp_path, DATA)
    assert save_mark(tmp_path, DATA, BASE, keep(0, "cat")).marks == (keep(0, "cat"),)


def test_a_snapshot_freezes_the_marks_that_change_training(tmp_path) -> None:
    assert take_snapshot(tmp_path, DATA) is None
    save_mark(tmp_path, DATA, BASE, keep(0, "cat"))
    save_mark(tmp_path, DATA, BASE, relabel(5, "cat", "cat"))  # to the class it has: changes nothing
    assert take_snapshot(tmp_path, DATA) is None
    save_mark(tmp_path, DATA, BASE, relabel(3, "cat", "dog"))
    digest = take_snapshot(tmp_path, DATA)
    frozen = load_snapshot(tmp_path, digest)
    assert frozen.marks == (relabel(3, "cat", "dog"),) and frozen.fingerprint == "fingerprint-1"
    save_mark(tmp_path, DATA, BASE, exclude(4, "dog"))  # marks edited later ...
    assert load_snapshot(tmp_path, digest) == frozen  # ... leave the snapshot alone
    assert take_snapshot(tmp_path, DATA) != digest
    remove_mark(tmp_path, DATA, BASE, "train", 4)
    assert take_snapshot(tmp_path, DATA) == digest  # the same marks, the same name
    with pytest.raises(NotFoundError, match="queue the run again"):
        load_snapshot(tmp_path, "0" * 16)


def test_curating_a_split_drops_excluded_rows_and_relabels() -> None:
    curation = Curation("f", CLASSES, (relabel(1, "cat", "rabbit"), exclude(2, "dog"), keep(0, "cat")))
    labels = np.array([0, 0, 1, 1, 2])
    curated = curate_split(curation, "train", labels, CLASSES)
    np.testing.assert_array_equal(curated.rows, [0, 1, 3, 4])
    np.testing.assert_array_equal(curated.labels, [0, 2, 1, 2])
    untouched = curate_split(curation, "validation", labels, CLASSES)
    np.testing.assert_array_equal(untouched.labels, labels)
    test = curate_split(curation, "test", labels, CLASSES)  # never curated, whatever a mark says
    np.testing.assert_array_equal(test.rows, np.arange(5))


def test_marks_made_on_other_data_are_refused() -> None:
    curation = Curation("f", CLASSES, (exclude(2, "dog"),))
    check_applies(curation, "f", CLASSES)
    with pytest.raises(BadInputError, match="another version of this data"):
        check_applies(curation, "other fingerprint", CLASSES)
    with pytest.raises(BadInputError, match="another version of this data"):
        check_applies(curation, "f", ["cat", "dog"])
    with pytest.raises(BadInputError, match="is not image 2 of the train split labelled dog"):
        curate_split(curation, "train", np.array([0, 0, 0]), CLASSES)


def test_a_row_view_reads_the_kept_rows_only() -> None:
    base = np.arange(20).reshape(10, 2)
    view = RowView(base, np.array([1, 4, 7]))
    assert view.shape == (3, 2) and len(view) == 3
    np.testing.assert_array_equal(view[np.array([0, 2])], [[2, 3], [14, 15]])
    np.testing.assert_array_equal(view[1:], [[8, 9], [14, 15]])
    np.testing.assert_array_equal(np.asarray(view), base[[1, 4, 7]])


def test_curated_counts_and_whether_marks_still_name_their_files() -> None:
    curation = Curation("f", CLASSES, (relabel(0, "cat", "dog"), exclude(1, "dog", "validation")))
    labels = {"train": np.array([0, 0, 1]), "validation": np.array([1, 1]), "test": np.array([2])}
    table = curated_counts(curation, labels, CLASSES)
    # dog: one relabelled in, one excluded: no change in its count, so not listed.
    assert table.to_dict("records") == [{"class": "cat", "given": 2, "curated": 1, "change": -1}]
    names = {("train", 0): "cat0.jpg", ("validation", 1): "dog1.jpg"}
    sizes = {"train": 3, "validation": 2}
    assert marks_match(curation, lambda split, index: names.get((split, index), "x"), sizes)
    assert not marks_match(curation, lambda split, index: "renamed.jpg", sizes)
    assert not marks_match(curation, lambda split, index: names[(split, index)], {"train": 3})
