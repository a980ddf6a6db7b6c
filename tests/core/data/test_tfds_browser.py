"""The pages' view of the prepared reference dataset: the files tfds extracted, read without TensorFlow.

Catches: the pages opening the prepared dataset with tf.data (TensorFlow in the server) although its
extracted files are there; the files giving other classes, split members, order or labels than
TfdsSource; files that no longer match the prepared dataset (deleted downloads, a missing image, an
unfinished extraction, nothing prepared) being browsed instead of falling back to TfdsSource.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.config import SPLITS, DataConfig
from core.data.oxford_files import OxfordFilesSource
from core.data.sources import open_for_browsing, open_source
from core.data.tfds_browser import extracted_oxford_folders, tfds_browser
from core.errors import NotFoundError
from tests.conftest import REPO
from tests.core.data.tfds_layout import (
    EXTRACTED_ANNOTATIONS,
    EXTRACTED_IMAGES,
    extracted_folder,
    prepare_with_extracted_files,
)


def all_names(source, split: str) -> list[str]:
    return [source.item_name(split, i) for i in range(source.split_size(split))]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path]:
    """(workspace, tfds data folder) with oxford_iiit_pet prepared and its extracted files kept."""
    root = tmp_path_factory.mktemp("browser")
    prepare_with_extracted_files(root / "tfds", root / "ws")
    return root / "ws", root / "tfds"


@pytest.fixture
def copy_of(prepared, tmp_path):
    """A copy of the prepared data folder to damage, without the parts named in `leave_out`."""

    def copy(*leave_out: str) -> Path:
        target = tmp_path / "tfds"
        shutil.copytree(prepared[1], target, ignore=shutil.ignore_patterns(*leave_out))
        return target

    return copy


def test_the_pages_browse_the_extracted_files_exactly_like_tfds(prepared):
    workspace, data_dir = prepared
    browsed = open_for_browsing("tfds", str(data_dir), workspace=workspace, download=False)
    assert isinstance(browsed, OxfordFilesSource)
    assert browsed.root == extracted_folder(data_dir) / EXTRACTED_IMAGES
    trained = open_source("tfds", str(data_dir), workspace=workspace, download=False)
    assert trained.kind == "tfds"  # training keeps tf.data, and its cache keys
    assert browsed.class_names == trained.class_names
    assert {s: browsed.split_size(s) for s in SPLITS} == {"train": 19, "validation": 2, "test": 9}
    for split in SPLITS:
        assert all_names(browsed, split) == all_names(trained, split)
        assert np.array_equal(browsed.labels(split), trained.labels(split))
    assert browsed.describe()["label_counts"] == trained.describe()["label_counts"]
    index = all_names(browsed, "train").index("Bengal_1.jpg")
    assert np.array_equal(browsed.load("train", index)[0], trained.load("train", index)[0])


BROWSE_SCRIPT = """
import json, sys
from pathlib import Path
from core.data.sources import open_for_browsing, open_source
heavy = lambda: [name for name in ("tensorflow", "keras") if name in sys.modules]
workspace, data_dir = Path(sys.argv[1]), sys.argv[2]
source = open_for_browsing("tfds", data_dir, workspace=workspace, download=False)
described = source.describe()
source.load("train", 0)
found = {"kind": source.kind, "sizes": described["sizes"], "browsing": heavy()}
open_source("tfds", data_dir, workspace=workspace, download=False).labels("test")
found["training"] = heavy()
print(json.dumps(found))
"""


def test_browsing_the_prepared_dataset_imports_no_tensorflow(prepared):
    workspace, data_dir = prepared
    out = subprocess.run(
        [sys.executable, "-c", BROWSE_SCRIPT, str(workspace), str(data_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["kind"] == "oxford-files"
    assert found["sizes"] == {"train": 19, "validation": 2, "test": 9}
    assert found["browsing"] == []
    assert "tensorflow" in found["training"]  # the same check sees TensorFlow where tf.data reads


@pytest.mark.parametrize("leave_out", ["downloads", "extracted", "images", "annotations"])
def test_without_the_extracted_files_the_pages_read_tfds(prepared, copy_of, leave_out):
    workspace, _ = prepared
    data_dir = copy_of(leave_out)
    assert tfds_browser(workspace, DataConfig(), str(data_dir)) is None
    assert open_for_browsing("tfds", str(data_dir), workspace=workspace, download=False).kind == "tfds"


def test_a_missing_image_is_not_browsed_since_it_would_move_the_split(prepared, copy_of):
    workspace, _ = prepared
    data_dir = copy_of()
    (extracted_folder(data_dir) / EXTRACTED_IMAGES / "images" / "beagle_2.jpg").unlink()
    assert tfds_browser(workspace, DataConfig(), str(data_dir)) is None


def test_an_unfinished_extraction_is_not_browsed(prepared, copy_of):
    workspace, _ = prepared
    data_dir = copy_of()
    extracted = extracted_folder(data_dir)
    (extracted / EXTRACTED_IMAGES).rename(extracted / f"incomplete.0123abcd_{EXTRACTED_IMAGES}")
    assert extracted_oxford_folders(extracted) == []
    assert tfds_browser(workspace, DataConfig(), str(data_dir)) is None


def test_other_extractions_beside_the_oxford_ones_are_ignored(prepared, copy_of):
    workspace, _ = prepared
    data_dir = copy_of()
    extracted = extracted_folder(data_dir)
    (extracted / "ZIP.example.org_other_images.zip" / "images").mkdir(parents=True)
    (extracted / "TAR.example.org_lists.tar" / "annotations").mkdir(parents=True)
    pairs = extracted_oxford_folders(extracted)
    assert (
        extracted / EXTRACTED_IMAGES / "images",
        extracted / EXTRACTED_ANNOTATIONS / "annotations",
    ) in pairs
    assert all(annotations.parent.name == EXTRACTED_ANNOTATIONS for _, annotations in pairs)
    assert isinstance(tfds_browser(workspace, DataConfig(), str(data_dir)), OxfordFilesSource)


def test_extracted_files_of_an_unprepared_dataset_are_not_browsed(prepared, copy_of):
    workspace, _ = prepared
    data_dir = copy_of("oxford_iiit_pet")
    assert extracted_oxford_folders(extracted_folder(data_dir))  # the files are there, the dataset is not
    assert tfds_browser(workspace, DataConfig(), str(data_dir)) is None
    with pytest.raises(NotFoundError, match="not prepared"):
        open_for_browsing("tfds", str(data_dir), workspace=workspace, download=False)
