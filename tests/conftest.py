"""Shared fixtures that generate small image data sets on the fly (no network, no /work/shared)."""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere
# Runs keep no LiteRT copy of their model (seconds each); the tests of the copy turn it on (`lite_copies`).
os.environ.setdefault("PETLAB_LITE_COPY", "0")

import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Detailed assertion messages in the shared checks of the known evaluation answers.
pytest.register_assert_rewrite("tests.core.inference.known_answers")

# Three Oxford breeds (two cats, one dog) with a distinct colour each, so labels can be checked from pixels.
REPO = Path(__file__).resolve().parents[1]  # the checkout: app.py, core/, views/

SAMPLE_BREEDS = {"Abyssinian": (200, 40, 40), "beagle": (40, 200, 40), "Bengal": (40, 40, 200)}
PER_BREED = 10


def save_image(
    path: Path, color: tuple[int, int, int], size: tuple[int, int] = (24, 18), fmt: str = "JPEG"
) -> Path:
    """Write a small solid-colour image (with a little noise) in `fmt`, whatever the file's extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    pixels = np.clip(np.array(color) + rng.integers(-10, 10, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    if fmt == "CMYK":
        image.convert("CMYK").save(path, format="JPEG")
    elif fmt == "PNG":
        image.convert("RGBA").save(path, format="PNG")
    else:
        image.save(path, format=fmt)
    return path


@pytest.fixture(autouse=True)
def data_roots_hold_temp_data(tmp_path_factory, monkeypatch) -> None:
    """The dashboard reads only inside its data roots (core.data.roots); test data is in pytest's temp."""
    monkeypatch.setenv("PETLAB_DATA_ROOTS", str(tmp_path_factory.getbasetemp()))


def write_oxford_images(folder: Path) -> Path:
    """Oxford-named images (3 breeds × 10), odd formats behind .jpg names, and junk to be ignored."""
    for breed, color in SAMPLE_BREEDS.items():
        for number in range(1, PER_BREED + 1):
            save_image(folder / f"{breed}_{number}.jpg", color, size=(20 + number, 16 + 2 * number))
    # Like some original Oxford files: a PNG with alpha, a GIF and a CMYK JPEG behind a .jpg name.
    save_image(folder / "Abyssinian_5.jpg", SAMPLE_BREEDS["Abyssinian"], fmt="PNG")
    save_image(folder / "beagle_7.jpg", SAMPLE_BREEDS["beagle"], fmt="GIF")
    save_image(folder / "Bengal_3.jpg", SAMPLE_BREEDS["Bengal"], fmt="CMYK")
    (folder / "._Abyssinian_1.jpg").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (folder / "Abyssinian_100.mat").write_bytes(b"MATLAB")
    (folder / "notes.txt").write_text("not an image")
    save_image(folder / "IMG_0001.jpg", (0, 0, 0))
    return folder


def write_oxford_annotations(root: Path) -> Path:
    """`root/annotations/` like the original: trainval.txt (numbers 1-7), test.txt (8-10), trimaps."""
    from core.data import OXFORD_BREEDS

    annotations = root / "annotations"
    (annotations / "trimaps").mkdir(parents=True)
    lists: dict[str, list[str]] = {"trainval.txt": [], "test.txt": []}
    for breed in SAMPLE_BREEDS:
        class_id, species_id = OXFORD_BREEDS.index(breed) + 1, 1 if breed[0].isupper() else 2
        for number in range(1, PER_BREED + 1):
            name = f"{breed}_{number}"
            lists["trainval.txt" if number <= 7 else "test.txt"].append(f"{name} {class_id} {species_id} 1")
            Image.new("L", (8, 8), 1).save(annotations / "trimaps" / f"{name}.png")
    for file_name, lines in lists.items():
        (annotations / file_name).write_text("\n".join(lines) + "\n")
    return annotations


@pytest.fixture
def oxford_images(tmp_path: Path) -> Path:
    """A folder of Oxford-named images without annotations (see write_oxford_images)."""
    return write_oxford_images(tmp_path / "oxford" / "images")


@pytest.fixture
def oxford_dataset(oxford_images: Path) -> Path:
    """The folder holding `images/` and `annotations/`, laid out like the original release."""
    write_oxford_annotations(oxford_images.parent)
    return oxford_images.parent


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    """A person's own images: `pets/<class>/*.jpg` for three classes of different sizes."""
    root = tmp_path / "pets"
    for name, count, color in (
        ("cat", 12, (200, 40, 40)),
        ("dog", 10, (40, 200, 40)),
        ("rabbit", 8, (40, 40, 200)),
    ):
        for number in range(count):
            save_image(root / name / f"{name}{number:02d}.jpg", color)
    (root / "dog" / ".DS_Store").write_bytes(b"junk")
    (root / ".hidden").mkdir()
    save_image(root / ".hidden" / "x.jpg", (0, 0, 0))
    (root / "empty").mkdir()
    return root


# -- a workspace with one real finished run, shared by the dashboard and robustness tests ----------

# Six Oxford breeds, three cats and three dogs, each its own colour: enough classes for a top 5.
PET_BREEDS = {
    "Abyssinian": (200, 40, 40),
    "Bengal": (200, 120, 40),
    "Persian": (200, 200, 40),
    "beagle": (40, 200, 40),
    "boxer": (40, 200, 200),
    "pug": (40, 40, 200),
}
PETS_PER_BREED = 8


def write_pets(root: Path) -> Path:
    """Oxford-named photos of PET_BREEDS in class folders, of slightly different sizes."""
    for breed, color in PET_BREEDS.items():
        for number in range(PETS_PER_BREED):
            save_image(root / breed / f"{breed}_{number}.jpg", color, size=(30 + number, 24))
    return root


@pytest.fixture(scope="session")
def pets(tmp_path_factory) -> Path:
    return write_pets(tmp_path_factory.mktemp("data") / "pets")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, pets) -> Path:
    """A workspace with one real finished head run (run 1) and its evaluation.json, trained once.

    Read it, never write to it: tests that add runs or change files work on a copy.
    """
    from tests.tiny_models import finished_head_run

    workspace = tmp_path_factory.mktemp("trained") / "workspace"
    assert finished_head_run(workspace, pets) == 1
    assert (workspace / "runs" / "1" / "evaluation.json").is_file()
    return workspace


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """An empty workspace for the dashboard, and a tfds folder that holds nothing (never downloaded into)."""
    path = tmp_path / "workspace"
    monkeypatch.setenv("PETLAB_WORKSPACE", str(path))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return path


@pytest.fixture(autouse=True)
def device_probes(monkeypatch) -> list[Path]:
    """The sidebar's background device probe (a TensorFlow process) as a record, not a process.

    Tests that need the real probe (the CLI's `device` command, the browser test) run it in
    their own subprocess, where this replacement does not reach.
    """
    from core.runs import worker_process as jobs

    calls: list[Path] = []
    monkeypatch.setattr(jobs, "probe_device", lambda workspace: calls.append(Path(workspace)))
    return calls


@pytest.fixture
def spawned(monkeypatch) -> list[Path]:
    """Replaces the dashboard's worker process with a record of the workspaces it was started for."""
    from core.runs import worker_process as jobs

    calls: list[Path] = []
    monkeypatch.setattr(jobs, "start_worker", lambda workspace: calls.append(Path(workspace)) or 4242)
    return calls


@pytest.fixture
def trained_copy(trained, workspace) -> Path:
    """A private copy of the trained workspace, for tests that add runs."""
    shutil.copytree(trained, workspace, ignore=shutil.ignore_patterns("cache"))
    return workspace


@pytest.fixture
def lite_copies(monkeypatch):
    """Finished runs leave their LiteRT copy (core.training.artifacts), as outside the tests."""
    monkeypatch.setenv("PETLAB_LITE_COPY", "1")
