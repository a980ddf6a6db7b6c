"""core.tables.dataset: label counts, random samples and thumbnails for the Dataset page."""

from __future__ import annotations

import numpy as np

from core.tables.dataset import (
    counts_by_class,
    headline_counts,
    label_counts,
    sample_indices,
    species_of,
    thumbnail,
)

DESCRIPTION = {
    "classes": ["pug", "Abyssinian", "beagle", "cat"],
    "label_counts": {"train": [5, 9, 1, 2], "validation": [1, 1, 1, 1], "test": [2, 0, 4, 1]},
    "sizes": {"train": 17, "validation": 4, "test": 7},
}


def test_headline_counts():
    assert headline_counts(DESCRIPTION) == {
        "Classes": 4,
        "Train images": 17,
        "Validation images": 4,
        "Test images": 7,
    }


def test_sample_indices_by_breed_and_species():
    labels = np.array([0, 0, 1, 2, 2, 2])
    classes = ["Abyssinian", "beagle", "pug"]
    assert sample_indices(labels, classes, 10, 0) == [0, 1, 2, 3, 4, 5]
    assert sample_indices(labels, classes, 10, 0, species_name="cat") == [0, 1]
    assert sample_indices(labels, classes, 10, 0, breed="pug") == [3, 4, 5]
    assert len(sample_indices(labels, classes, 2, 1)) == 2


def test_label_counts_name_each_species():
    table = label_counts(
        {"classes": ["cat", "beagle"], "label_counts": {s: [1, 2] for s in ("train", "validation", "test")}}
    )
    assert table[table["split"] == "train"]["species"].tolist() == ["other", "dog"]
    assert species_of("Abyssinian") == "cat" and species_of("rabbit") == "other"


def test_counts_by_class_per_split_and_order():
    by_count = counts_by_class(DESCRIPTION, "train")
    assert by_count["class"].tolist() == ["Abyssinian", "pug", "cat", "beagle"]
    assert by_count["count"].tolist() == [9, 5, 2, 1]
    every_split = counts_by_class(DESCRIPTION, "all", "name")
    assert every_split["class"].tolist() == ["Abyssinian", "beagle", "cat", "pug"]
    assert every_split["count"].tolist() == [10, 6, 4, 8]
    by_species = counts_by_class(DESCRIPTION, None, "species")
    assert by_species["species"].tolist() == ["cat", "dog", "dog", "other"]
    assert by_species["class"].tolist() == ["Abyssinian", "pug", "beagle", "cat"]


def test_thumbnail_keeps_the_aspect_or_crops_square():
    image = np.zeros((100, 300, 3), dtype=np.uint8)
    assert thumbnail(image, 60).shape == (20, 60, 3)
    assert thumbnail(image, 60, square=True).shape == (60, 60, 3)
