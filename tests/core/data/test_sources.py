"""Data sources, splits and the image cache, on tiny generated data (no network, no shared files)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

import core.data.base
import core.data.net
import core.data.tfds_source
from core.config import SPLITS, DataConfig
from core.data import OXFORD_BREEDS, ImageCache, open_source, species, stratified_split
from core.data.net import check_reachable
from core.data.splits import reference_train_count, tfds_order
from core.data.tfds_source import reference_split_specs
from core.errors import BadImageError, BadInputError, NotFoundError, OfflineError, PetLabError
from tests.conftest import (
    PER_BREED,
    REPO,
    SAMPLE_BREEDS,
    save_image,
    write_oxford_annotations,
    write_oxford_images,
)

COLORS = {name: np.array(color) for name, color in SAMPLE_BREEDS.items()}


def dominant_class(image: np.ndarray, class_names: list[str]) -> str:
    """The sample class whose colour is closest to the image's mean colour."""
    mean = image.reshape(-1, 3).mean(axis=0)
    return min((name for name in class_names if name in COLORS), key=lambda n: np.abs(COLORS[n] - mean).sum())


def all_names(source, split: str) -> list[str]:
    return [source.item_name(split, i) for i in range(source.split_size(split))]


def assert_partition(source, expected_total: int) -> None:
    """Splits are disjoint, cover every example once, and labels line up with sizes."""
    names = {split: all_names(source, split) for split in SPLITS}
    flat = [name for split in SPLITS for name in names[split]]
    assert len(flat) == len(set(flat)) == expected_total
    for split in SPLITS:
        assert source.labels(split).dtype == np.int64
        assert len(source.labels(split)) == source.split_size(split)


# --- breeds -----------------------------------------------------------------------------------------


def test_oxford_breeds_are_the_tfds_label_names(tmp_path):
    import tensorflow_datasets as tfds

    builder = tfds.builder("oxford_iiit_pet", data_dir=str(tmp_path))
    assert builder.info.features["label"].names == OXFORD_BREEDS
    assert len(OXFORD_BREEDS) == 37


def test_species_of_breeds():
    assert species("Abyssinian") == "cat"
    assert species("Maine_Coon") == "cat"
    assert species("maine coon") == "cat"
    assert species("beagle") == "dog"
    assert species("rabbit") == ""
    assert sum(species(b) == "cat" for b in OXFORD_BREEDS) == 12
    assert sum(species(b) == "dog" for b in OXFORD_BREEDS) == 25


# --- splits -----------------------------------------------------------------------------------------


def test_stratified_split_partitions_per_class_and_is_deterministic():
    """Catches split sizes that drift from the rule (sizes written by hand, not recomputed)."""
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    parts = stratified_split(labels, validation_fraction=0.1, test_fraction=0.2, seed=42)
    together = np.concatenate([parts[s] for s in SPLITS])
    assert sorted(together.tolist()) == list(range(100))
    # Worked out by hand: test = round(20% of n), validation = round(10% of the rest).
    # 30 images: test 6, validation round(2.4) = 2; 20 images: test 4, validation round(1.6) = 2.
    expected = {  # (train, validation, test) per class
        0: (36, 4, 10),
        1: (22, 2, 6),
        2: (14, 2, 4),
    }
    for label, sizes in expected.items():
        assert tuple(int((labels[parts[s]] == label).sum()) for s in SPLITS) == sizes
    again = stratified_split(labels, 0.1, 0.2, seed=42)
    other = stratified_split(labels, 0.1, 0.2, seed=7)
    assert all(np.array_equal(parts[s], again[s]) for s in SPLITS)
    assert not np.array_equal(parts["test"], other["test"])


def test_stratified_split_of_a_class_ignores_other_classes():
    first = stratified_split(np.repeat([0, 1], 20), 0.1, 0.2, seed=1)
    more = stratified_split(np.repeat([0, 1, 2], 20), 0.1, 0.2, seed=1)
    for split in SPLITS:
        assert np.array_equal(first[split], more[split][more[split] < 40])


def test_reference_split_matches_tfds_slicing():
    from tensorflow_datasets.core.hashing import Hasher

    assert reference_split_specs(0.1) == {"train": "train[:90%]", "validation": "train[90%:]", "test": "test"}
    assert reference_split_specs(0.15)["validation"] == "train[85%:]"
    assert reference_train_count(3680, 0.1) == 3312
    keys = [f"{breed}_{n}.jpg" for breed in OXFORD_BREEDS[:3] for n in range(20)]
    hasher = Hasher("train")
    assert tfds_order(keys, "train") == sorted(range(len(keys)), key=lambda i: hasher.hash_key(keys[i]))


# --- open_source errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "path", "error", "words"),
    [
        ("imagenet", None, BadInputError, "tfds, oxford-files, folder"),
        ("folder", None, BadInputError, "--path"),
        ("folder", "does/not/exist", NotFoundError, "does not exist"),
        ("oxford-files", "does/not/exist", NotFoundError, "does not exist"),
    ],
)
def test_open_source_explains_bad_requests(tmp_path, kind, path, error, words):
    with pytest.raises(error, match=words):
        open_source(kind, None if path is None else str(tmp_path / path), workspace=tmp_path)


def test_folder_needs_two_classes_with_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no class"):
        open_source("folder", str(tmp_path / "empty"), workspace=tmp_path)
    save_image(tmp_path / "one" / "cat" / "a.jpg", (1, 2, 3))
    with pytest.raises(BadInputError, match=r"only one class \(cat\)"):
        open_source("folder", str(tmp_path / "one"), workspace=tmp_path)


def test_bad_fractions_are_refused(class_folders, tmp_path):
    with pytest.raises(BadInputError, match="validation fraction"):
        open_source(
            "folder", str(class_folders), workspace=tmp_path, data_config=DataConfig(validation_fraction=1.5)
        )


def test_oxford_files_without_oxford_names(class_folders, tmp_path):
    with pytest.raises(BadInputError, match="--source folder"):
        open_source("oxford-files", str(class_folders / "cat"), workspace=tmp_path)


# --- folder source -----------------------------------------------------------------------------------


def test_folder_source_classes_splits_and_images(class_folders, tmp_path):
    source = open_source("folder", str(class_folders), workspace=tmp_path)
    assert source.kind == "folder"
    assert source.class_names == ["cat", "dog", "rabbit"]  # hidden and empty folders are skipped
    assert_partition(source, expected_total=12 + 10 + 8)
    described = source.describe()
    assert described["sizes"] == {s: source.split_size(s) for s in SPLITS}
    # By hand, per class (12, 10, 8 images): test round(2.4) = 2, round(2.0) = 2, round(1.6) = 2;
    # validation 10% of the rest: round(1.0) = 1, round(0.8) = 1, round(0.6) = 1; train the others.
    assert described["label_counts"] == {"train": [9, 7, 5], "validation": [1, 1, 1], "test": [2, 2, 2]}
    assert described["sizes"] == {"train": 21, "validation": 3, "test": 6}
    image, label = source.load("train", 0)
    assert image.dtype == np.uint8 and image.shape == (18, 24, 3)
    assert source.item_name("train", 0).startswith(source.class_names[label])
    with pytest.raises(BadInputError, match="no example 99"):
        source.load("train", 99)
    with pytest.raises(BadInputError, match="no split called 'dev'"):
        source.labels("dev")


def test_folder_fingerprint_follows_content_and_split(class_folders, tmp_path):
    first = open_source("folder", str(class_folders), workspace=tmp_path).fingerprint()
    assert open_source("folder", str(class_folders), workspace=tmp_path).fingerprint() == first
    other_seed = DataConfig(seed=1)
    assert (
        open_source("folder", str(class_folders), workspace=tmp_path, data_config=other_seed).fingerprint()
        != first
    )
    save_image(class_folders / "cat" / "new.jpg", (9, 9, 9))
    assert open_source("folder", str(class_folders), workspace=tmp_path).fingerprint() != first


# --- oxford files ------------------------------------------------------------------------------------


def test_oxford_names_give_labels_and_a_stratified_split(oxford_images, tmp_path):
    source = open_source("oxford-files", str(oxford_images), workspace=tmp_path)
    assert source.kind == "oxford-files"
    assert source.class_names == ["Abyssinian", "beagle", "Bengal"]  # OXFORD_BREEDS order, present only
    assert_partition(source, expected_total=3 * PER_BREED)  # junk, ._ files and unknown breeds skipped
    assert source.describe()["label_counts"]["test"] == [2, 2, 2]
    for split in SPLITS:
        for index, (image, label) in enumerate(source.iter_split(split)):
            name = source.item_name(split, index)
            assert name.rsplit("_", 1)[0] == source.class_names[label]
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            assert dominant_class(image, source.class_names) == source.class_names[label]


@pytest.mark.parametrize("name", ["Abyssinian_5.jpg", "beagle_7.jpg", "Bengal_3.jpg"])
def test_oxford_files_that_are_not_plain_jpegs_load(oxford_images, tmp_path, name):
    source = open_source("oxford-files", str(oxford_images), workspace=tmp_path)
    split, index = next((s, i) for s in SPLITS for i, n in enumerate(all_names(source, s)) if n == name)
    image, label = source.load(split, index)
    assert image.shape[2] == 3 and image.dtype == np.uint8
    assert dominant_class(image, source.class_names) == source.class_names[label]


def test_oxford_annotations_give_the_official_split(oxford_dataset, tmp_path):
    by_root = open_source("oxford-files", str(oxford_dataset), workspace=tmp_path)
    by_images = open_source("oxford-files", str(oxford_dataset / "images"), workspace=tmp_path)
    assert by_root.fingerprint() == by_images.fingerprint()  # the sibling annotations/ is found
    assert by_root.class_names == OXFORD_BREEDS
    # 21 trainval images: train[:90%] is 18.9, rounded to 19 as tfds does; the test list has 9.
    assert {s: by_root.split_size(s) for s in SPLITS} == {"train": 19, "validation": 2, "test": 9}
    listed = {
        line.split()[0] + ".jpg"
        for line in (oxford_dataset / "annotations/trainval.txt").read_text().split("\n")
        if line
    }
    assert set(all_names(by_root, "train")) | set(all_names(by_root, "validation")) == listed
    assert_partition(by_root, expected_total=3 * PER_BREED)
    _, label = by_root.load("test", 0)
    assert OXFORD_BREEDS[label] == by_root.item_name("test", 0).rsplit("_", 1)[0]


def make_archives(source_root: Path, folder: Path) -> Path:
    folder.mkdir()
    for part in ("images", "annotations"):
        with tarfile.open(folder / f"{part}.tar.gz", "w:gz") as tar:
            tar.add(source_root / part, arcname=part)
    return folder


def test_oxford_archives_are_extracted_once(oxford_dataset, tmp_path):
    archives = make_archives(oxford_dataset, tmp_path / "downloads")
    workspace = tmp_path / "ws"
    stages = []
    source = open_source(
        "oxford-files", str(archives), workspace=workspace, progress=lambda s, d, t: stages.append((s, d, t))
    )
    assert (workspace / "datasets/oxford/images/Abyssinian_1.jpg").is_file()
    assert {s for s, _, _ in stages} == {"extracting images.tar.gz", "extracting annotations.tar.gz"}
    assert all(d == t for s, d, t in stages[-1:])
    assert {s: source.split_size(s) for s in SPLITS} == {"train": 19, "validation": 2, "test": 9}
    with mock.patch("core.data.oxford_files._safe_extract", side_effect=AssertionError("extracted again")):
        again = open_source("oxford-files", str(archives / "images.tar.gz"), workspace=workspace)
    assert again.fingerprint() == source.fingerprint()


def unsafe_archive(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("images/Abyssinian_1.jpg")
        good.size = 3
        tar.addfile(good, io.BytesIO(b"abc"))
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data) if data else None)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_unsafe_archive_members_are_refused(tmp_path, kind):
    if kind == "symlink":
        member = tarfile.TarInfo("images/link.jpg")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        member = tarfile.TarInfo("../evil.jpg" if kind == "dotdot" else "/tmp/evil.jpg")
    archive = unsafe_archive(tmp_path / "dl" / "images.tar.gz", member, b"" if kind == "symlink" else b"evil")
    with pytest.raises(BadInputError, match="unsafe entry"):
        open_source("oxford-files", str(archive.parent), workspace=tmp_path / "ws")
    assert not (tmp_path / "ws/datasets/evil.jpg").exists()
    assert not (tmp_path / "ws/datasets/oxford/images").exists()


# --- tfds --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfds_workspace(tmp_path_factory):
    """A workspace whose tfds oxford_iiit_pet was 'downloaded' from generated Oxford files.

    Only the network part of tfds is replaced (download_and_extract returns the local
    folder); the builder, the record writing and reading are the real ones.
    """
    import tensorflow_datasets as tfds

    originals = tmp_path_factory.mktemp("oxford")
    write_oxford_images(originals / "images")
    write_oxford_annotations(originals)
    workspace = tmp_path_factory.mktemp("ws")
    stages = []
    no_env = mock.patch.dict(
        os.environ, {key: v for key, v in os.environ.items() if key != "TFDS_DATA_DIR"}, clear=True
    )
    fake_download = mock.patch.object(
        tfds.download.DownloadManager,
        "download_and_extract",
        lambda self, urls: {key: str(originals) for key in urls},
    )
    with no_env, fake_download, mock.patch("core.data.tfds_source.check_reachable", return_value=True):
        open_source("tfds", workspace=workspace, progress=lambda s, d, t: stages.append((s, d, t)))
    assert stages[0][1:] == (0, None) and stages[-1][1:] == (1, 1)
    return workspace, originals


def test_tfds_source_has_the_reference_splits(tfds_workspace, monkeypatch, tmp_path):
    workspace, _ = tfds_workspace
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    with mock.patch("core.data.tfds_source.check_reachable", side_effect=AssertionError("probed")):
        source = open_source("tfds", workspace=workspace, download=False)
    assert source.kind == "tfds"
    assert source.class_names == OXFORD_BREEDS
    assert {s: source.split_size(s) for s in SPLITS} == {"train": 19, "validation": 2, "test": 9}
    assert_partition(source, expected_total=3 * PER_BREED)
    image, label = source.load("validation", 1)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert label == source.labels("validation")[1]
    assert OXFORD_BREEDS[label] == source.item_name("validation", 1).rsplit("_", 1)[0]
    assert source.describe()["sizes"] == {"train": 19, "validation": 2, "test": 9}
    monkeypatch.setenv("TFDS_DATA_DIR", str(workspace / "tensorflow_datasets"))
    elsewhere = open_source("tfds", workspace=tmp_path / "other", download=False)
    assert elsewhere.fingerprint() == source.fingerprint()


def test_oxford_files_split_exactly_like_tfds(tfds_workspace, monkeypatch):
    workspace, originals = tfds_workspace
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    tfds_source = open_source("tfds", workspace=workspace, download=False)
    files_source = open_source("oxford-files", str(originals), workspace=workspace)
    for split in SPLITS:
        assert all_names(files_source, split) == all_names(tfds_source, split)
        assert np.array_equal(files_source.labels(split), tfds_source.labels(split))
    # Same decoder, same bytes: identical pixels (tfds re-encodes only its known corrupt files).
    index = all_names(files_source, "test").index("beagle_9.jpg")
    assert np.array_equal(files_source.load("test", index)[0], tfds_source.load("test", index)[0])


def test_tfds_offline_fails_fast_with_alternatives(tmp_path, monkeypatch):
    """Catches an offline machine waiting on tfds's download retries instead of answering at once:
    after the one quick probe says no network, nothing may try to download (no clock involved)."""
    import tensorflow_datasets as tfds

    probed: list[str] = []
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    monkeypatch.setattr(
        "core.data.tfds_source.check_reachable", lambda url, timeout=5.0: probed.append(url) or False
    )
    with (
        mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare") as download,
        pytest.raises(OfflineError, match="--source oxford-files") as caught,
    ):
        open_source("tfds", workspace=tmp_path)
    assert probed == [core.data.tfds_source.download_url()] and download.call_count == 0
    assert "\n" not in str(caught.value)
    with pytest.raises(NotFoundError, match="not prepared"):
        open_source("tfds", workspace=tmp_path, download=False)


def test_an_unprepared_tfds_folder_is_answered_without_importing_tfds(tmp_path):
    """The dashboard's first page with the default source, not downloaded yet: a look at the folder
    answers "not prepared" instead of importing tensorflow-datasets (about a second there)."""
    partial = tmp_path / "partial" / "oxford_iiit_pet" / "4.0.0"
    partial.mkdir(parents=True)  # a version folder without its dataset_info.json is not prepared
    script = f"""
import json, sys
from pathlib import Path
from core.data.sources import open_for_browsing
from core.data.tfds_source import tfds_prepared
from core.errors import NotFoundError
answers = []
for path in [None, {str(tmp_path / "partial")!r}]:
    try:
        open_for_browsing("tfds", path, workspace=Path({str(tmp_path)!r}), download=False)
    except NotFoundError as exc:
        answers.append(exc.dashboard)
answers.append(tfds_prepared(Path({str(tmp_path)!r})))
print(json.dumps({{"answers": answers, "tfds": "tensorflow_datasets" in sys.modules}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "TFDS_DATA_DIR"}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["tfds"] is False
    assert len(found["answers"]) == 3 and found["answers"][2] is False
    assert all(
        "not prepared" in answer and "download and prepare it here" in answer
        for answer in found["answers"][:2]
    )


# --- tfds through tfds.testing.mock_data ---------------------------------------------------------------

MOCK_EXAMPLES = 6  # differs from every real split size of the fixture (19, 2, 9) and from the declared 21 / 9


@pytest.fixture
def tfds_metadata(tfds_workspace, tmp_path):
    """A tfds data_dir holding only the metadata the fixture's real preparation wrote (no records)."""
    workspace, _ = tfds_workspace
    prepared = next((workspace / "tensorflow_datasets/oxford_iiit_pet").glob("*/dataset_info.json")).parent
    target = tmp_path / "metadata" / "oxford_iiit_pet" / prepared.name
    target.mkdir(parents=True)
    for path in [*prepared.glob("*.json"), *prepared.glob("*.txt")]:
        (target / path.name).write_bytes(path.read_bytes())
    assert not list(target.glob("*tfrecord*"))
    return tmp_path / "metadata"


def mocked_tfds(data_dir: Path):
    """tfds.testing.mock_data using the real metadata in `data_dir` (split names and declared sizes)."""
    import tensorflow_datasets as tfds

    return tfds.testing.mock_data(
        num_examples=MOCK_EXAMPLES, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=str(data_dir)
    )


def spy_download_and_prepare(side_effect=None):
    """Wraps the download_and_prepare in force (the mock's no-op inside mock_data), counting calls."""
    import tensorflow_datasets as tfds

    mocked = tfds.core.DatasetBuilder.download_and_prepare

    def run(builder, *args, **kwargs):
        mocked(builder, *args, **kwargs)
        if side_effect:
            side_effect(builder)

    return mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare", autospec=True, side_effect=run)


def counting_tfds_decoder(monkeypatch) -> list[bytes]:
    calls: list[bytes] = []
    original = core.data.tfds_source.decode_image

    def decode(data, name=None):
        calls.append(data)
        return original(data, name)

    monkeypatch.setattr(core.data.tfds_source, "decode_image", decode)
    return calls


def test_tfds_source_through_mock_data(tfds_metadata, tmp_path, monkeypatch):
    from PIL import Image

    workspace = tmp_path / "ws"
    decoded = counting_tfds_decoder(monkeypatch)
    probe = mock.patch("core.data.tfds_source.check_reachable", side_effect=AssertionError("probed"))
    with mocked_tfds(tfds_metadata), probe, spy_download_and_prepare() as prepare:
        source = open_source("tfds", workspace=workspace)
        assert prepare.call_count == 0  # the metadata makes it look prepared: no probe, no download
        declared = source._builder.info.splits
        assert {name: declared[name].num_examples for name in ("train", "test")} == {"train": 21, "test": 9}
        assert source.class_names == OXFORD_BREEDS

        sizes = {split: MOCK_EXAMPLES for split in SPLITS}
        described = source.describe()
        assert described["sizes"] == sizes  # what reading yields, not the declared 19 / 2 / 9
        assert [sum(counts) for counts in described["label_counts"].values()] == [MOCK_EXAMPLES] * 3
        for split in SPLITS:
            labels = source.labels(split)
            assert labels.dtype == np.int64 and len(labels) == source.split_size(split)
            assert ((labels >= 0) & (labels < 37)).all()
            examples = list(source.iter_split(split))
            assert [label for _, label in examples] == labels.tolist()
            assert all(
                image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 for image, _ in examples
            )
            assert len(all_names(source, split)) == MOCK_EXAMPLES
        image, label = source.load("test", MOCK_EXAMPLES - 1)  # `examples` holds the test split
        assert np.array_equal(image, examples[-1][0]) and label == examples[-1][1]
        with pytest.raises(BadInputError, match=f"no example {MOCK_EXAMPLES}"):
            source.load("test", MOCK_EXAMPLES)

        # The mock's fake examples are JPEG bytes, decoded by core.data.images.decode_image like any image.
        decoded.clear()
        images, labels = ImageCache(workspace).get(source, "train", 16)
    assert images.shape == (MOCK_EXAMPLES, 16, 16, 3) and images.dtype == np.uint8
    assert np.array_equal(labels, source.labels("train"))
    assert len(decoded) == MOCK_EXAMPLES
    assert all(data[:3] == b"\xff\xd8\xff" for data in decoded)
    assert Image.open(io.BytesIO(decoded[0])).format == "JPEG"
    assert not (workspace / "tensorflow_datasets").exists()  # the mock's data_dir was used


def test_tfds_mock_data_download_path(tfds_metadata, tmp_path, monkeypatch):
    """An unprepared data_dir under mock_data probes, then runs the mocked download_and_prepare."""
    metadata = tfds_metadata / "oxford_iiit_pet"
    empty = tmp_path / "empty"
    empty.mkdir()

    def write_metadata(builder):
        # What a real preparation leaves behind: the metadata on disk and a complete builder.info.
        folder = Path(builder.data_path)
        folder.mkdir(parents=True)
        for path in next(metadata.iterdir()).iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
        builder.info.read_from_directory(builder.data_path)

    monkeypatch.setattr("core.data.tfds_source.check_reachable", lambda url, timeout=5.0: False)
    with (
        mocked_tfds(empty),
        spy_download_and_prepare() as prepare,
        pytest.raises(OfflineError, match="--source oxford-files"),
    ):
        open_source("tfds", workspace=tmp_path / "ws")
    assert prepare.call_count == 0

    monkeypatch.setattr("core.data.tfds_source.check_reachable", lambda url, timeout=5.0: True)
    # The mock's plain no-op prepares nothing: a clear error, not a failing `train[:90%]` later.
    with (
        mocked_tfds(empty),
        spy_download_and_prepare() as prepare,
        pytest.raises(PetLabError, match="without its train and test split"),
    ):
        open_source("tfds", workspace=tmp_path / "ws")
    assert prepare.call_count == 1

    stages = []
    with mocked_tfds(empty), spy_download_and_prepare(write_metadata) as prepare:
        source = open_source("tfds", workspace=tmp_path / "ws", progress=lambda *a: stages.append(a))
        assert prepare.call_count == 1
        assert prepare.call_args.kwargs["download_config"].try_download_gcs is False
        assert stages[0][1:] == (0, None) and stages[-1][1:] == (1, 1)
        assert source.describe()["sizes"] == {split: MOCK_EXAMPLES for split in SPLITS}
        images, labels = ImageCache(tmp_path / "ws").get(source, "test", 8)
    assert images.shape == (MOCK_EXAMPLES, 8, 8, 3) and np.array_equal(labels, source.labels("test"))


def recorded_waits(monkeypatch) -> list[bool]:
    """What each wait of core.data.net's probe returns from now on: True when the attempt ended, False
    when the timeout ran out (only core.data.net sees this Event; other threads keep the real one)."""
    waits: list[bool] = []

    class RecordedEvent(threading.Event):
        def wait(self, timeout=None) -> bool:
            waits.append(super().wait(timeout))
            return waits[-1]

    own_threading = types.SimpleNamespace(Event=RecordedEvent, Thread=threading.Thread)
    monkeypatch.setattr(core.data.net, "threading", own_threading)
    return waits


def test_check_reachable_takes_a_refusal_as_the_answer(monkeypatch):
    """Catches the probe sitting out its timeout when the connection was refused at once: its wait
    must end because the attempt finished, not because the time ran out (no clock involved)."""
    waits = recorded_waits(monkeypatch)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert check_reachable(f"http://127.0.0.1:{server.getsockname()[1]}/x", timeout=30)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert not check_reachable(f"https://127.0.0.1:{port}/", timeout=30)
    assert waits == [True, True]


def test_check_reachable_gives_up_on_a_connection_that_hangs(monkeypatch):
    """Catches the probe waiting for a name lookup or connection that never ends (socket timeouts
    do not cover name resolution): it answers False while the attempt is still hanging."""
    release, ended = threading.Event(), threading.Event()

    def hang(address, timeout=None):
        release.wait(60)  # set below, once check_reachable has answered
        ended.set()
        raise OSError("released")

    monkeypatch.setattr(core.data.net, "socket", types.SimpleNamespace(create_connection=hang))
    try:
        assert not check_reachable("https://petlab.invalid/", timeout=0.5)
        assert not ended.is_set()  # it did not wait for the attempt
    finally:
        release.set()


# --- image cache -------------------------------------------------------------------------------------


def counting_decoder(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = core.data.base.decode_image

    def decode(data, name=None):
        calls.append(str(data))
        return original(data, name)

    monkeypatch.setattr(core.data.base, "decode_image", decode)
    return calls


def test_cache_builds_once_and_reuses(class_folders, tmp_path, monkeypatch):
    source = open_source("folder", str(class_folders), workspace=tmp_path)
    calls = counting_decoder(monkeypatch)
    stages = []
    images, labels = ImageCache(tmp_path).get(source, "train", 16, progress=lambda *a: stages.append(a))
    n = source.split_size("train")
    assert isinstance(images, np.memmap) and not images.flags.writeable
    assert images.shape == (n, 16, 16, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and np.array_equal(labels, source.labels("train"))
    assert len(calls) == n
    assert stages[-1] == ("decoding train images", n, n)
    # class_folders paints cat red, dog green, rabbit blue: the brightest channel is the label.
    assert np.array_equal(images.reshape(n, -1, 3).mean(axis=1).argmax(axis=1), labels)

    again, _ = ImageCache(tmp_path).get(source, "train", 16)
    assert len(calls) == n  # nothing decoded the second time
    assert np.array_equal(again, images)
    bigger, _ = ImageCache(tmp_path).get(source, "train", 20)
    assert bigger.shape == (n, 20, 20, 3) and len(calls) == 2 * n


def test_cache_key_follows_content(class_folders, tmp_path):
    cache = ImageCache(tmp_path)
    before = open_source("folder", str(class_folders), workspace=tmp_path)
    save_image(class_folders / "dog" / "extra.jpg", (40, 200, 40))
    after = open_source("folder", str(class_folders), workspace=tmp_path)
    assert cache.key(before, "train", 16) != cache.key(after, "train", 16)
    assert cache.key(after, "train", 16) != cache.key(after, "test", 16)


def test_cache_crash_leaves_no_half_cache(class_folders, tmp_path):
    source = open_source("folder", str(class_folders), workspace=tmp_path)
    cache = ImageCache(tmp_path)

    def broken(split):
        yield source.load(split, 0)
        raise RuntimeError("power cut")

    with mock.patch.object(source, "iter_split", broken), pytest.raises(RuntimeError):
        cache.get(source, "train", 8)
    assert list(cache.root.iterdir()) == []
    images, _ = cache.get(source, "train", 8)
    assert images.shape[0] == source.split_size("train")


def test_cache_of_an_empty_split(class_folders, tmp_path):
    config = DataConfig(validation_fraction=0.0)
    source = open_source("folder", str(class_folders), workspace=tmp_path, data_config=config)
    images, labels = ImageCache(tmp_path).get(source, "validation", 8)
    assert images.shape == (0, 8, 8, 3) and labels.shape == (0,)


def test_a_damaged_file_stops_the_cache_with_its_name(class_folders, tmp_path):
    (class_folders / "dog" / "dog03.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    source = open_source("folder", str(class_folders), workspace=tmp_path)
    split = next(s for s in SPLITS if "dog03.jpg" in all_names(source, s))
    with pytest.raises(BadImageError, match=r"^dog03\.jpg is damaged"):
        ImageCache(tmp_path).get(source, split, 8)
    assert list(ImageCache(tmp_path).root.iterdir()) == []
