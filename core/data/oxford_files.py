"""The original Oxford-IIIT Pet files as a data source, archives or extracted folders.

Accepted layouts for `--path`: the folder holding `images/` (and optionally
`annotations/`), the `images` folder itself, or a folder holding
`images.tar.gz` / `annotations.tar.gz` (also a path to one of the archives).
Archives are extracted once into `<workspace>/datasets/oxford/`, refusing
entries that would land outside it.

With `annotations/trainval.txt` and `test.txt` the official split is used,
exactly as tensorflow-datasets does: 90% of trainval is train and 10%
validation (the same images as tfds's `train[:90%]` / `train[90%:]`, in the
same order), test.txt is test. Without annotations the breed comes from
the file name (`Bengal_12.jpg`) and the split is stratified.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.config import DataConfig
from core.data.base import FileItem, FileListSource, assign_splits, is_image_file, require_path
from core.data.breeds import OXFORD_BREEDS, breed_from_file_name
from core.data.splits import reference_train_count, stratified_rule, stratified_split, tfds_order
from core.errors import BadInputError
from core.progress import ProgressCallback, no_progress
from core.workspace import atomic_write_json, read_json

PARTS = ("images", "annotations")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
OFFICIAL_LISTS = ("trainval.txt", "test.txt")


class OxfordFilesSource(FileListSource):
    """The Oxford-IIIT Pet images read from the original files."""

    kind = "oxford-files"


def open_oxford_files(
    path: str | os.PathLike[str] | None,
    workspace: Path,
    config: DataConfig,
    progress: ProgressCallback | None = None,
) -> OxfordFilesSource:
    """Open the Oxford files at `path`, extracting archives into the workspace if needed."""
    root = require_path(path, "oxford-files")
    images_dir, annotations_dir = locate_folders(root, Path(workspace), progress or no_progress)
    if annotations_dir is not None and all((annotations_dir / name).is_file() for name in OFFICIAL_LISTS):
        return official_split_source(images_dir, annotations_dir, config)
    return _named_files_source(images_dir, config)


def locate_folders(root: Path, workspace: Path, progress: ProgressCallback) -> tuple[Path, Path | None]:
    """The images folder and the annotations folder (or None) for a given --path."""
    if root.is_file():
        if _archive_part(root) is None:
            raise BadInputError(
                f"{root.name} is not an Oxford archive; give images.tar.gz, or the folder that holds it."
            )
        root = root.parent
    found = {part: _part_folder(root, part, workspace, progress) for part in PARTS}
    images_dir, annotations_dir = found["images"], found["annotations"]
    if images_dir is None and any(is_image_file(child) for child in root.iterdir()):
        images_dir = root
        sibling = root.parent / "annotations"
        annotations_dir = annotations_dir or (sibling if sibling.is_dir() else None)
    if images_dir is None:
        raise BadInputError(
            f"No Oxford-IIIT Pet images were found in {root}; give the folder holding images/ "
            "(or images.tar.gz), or the images folder itself."
        )
    return images_dir, annotations_dir


def _part_folder(root: Path, part: str, workspace: Path, progress: ProgressCallback) -> Path | None:
    """`root/<part>/` if it exists, else the extracted `root/<part>.tar.gz`, else None."""
    if (root / part).is_dir():
        return root / part
    for suffix in ARCHIVE_SUFFIXES:
        archive = root / f"{part}{suffix}"
        if archive.is_file():
            return extract_archive(archive, part, workspace / "datasets" / "oxford", progress)
    return None


def _archive_part(path: Path) -> str | None:
    for part in PARTS:
        if any(path.name == f"{part}{suffix}" for suffix in ARCHIVE_SUFFIXES):
            return part
    return None


def extract_archive(archive: Path, part: str, destination: Path, progress: ProgressCallback) -> Path:
    """Extract `archive` into `destination/<part>/`, reusing an earlier extraction of the same archive."""
    target = destination / part
    stamp_file = destination / f".{part}.archive.json"
    stat = archive.stat()
    stamp = {"archive": str(archive), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if target.is_dir() and stamp_file.is_file() and read_json(stamp_file) == stamp:
        return target
    destination.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{part}-", dir=destination))
    try:
        _safe_extract(archive, scratch, progress)
        extracted = scratch / part if (scratch / part).is_dir() else scratch
        if target.exists():
            shutil.rmtree(target)
        os.replace(extracted, target)
        atomic_write_json(stamp_file, stamp)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _safe_extract(archive: Path, destination: Path, progress: ProgressCallback) -> None:
    stage = f"extracting {archive.name}"
    total_mb = max(1, archive.stat().st_size // 2**20)
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
            for member in _checked_members(tar, archive):
                tar.extract(member, destination, filter="data")
                progress(stage, min(total_mb, raw.tell() // 2**20), total_mb)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BadInputError(
            f"{archive.name} could not be extracted ({exc}); download it again or extract it by hand."
        ) from None
    progress(stage, total_mb, total_mb)


def _checked_members(tar: tarfile.TarFile, archive: Path) -> Iterator[tarfile.TarInfo]:
    """The archive's files and folders; any link, device or path leaving the folder is refused."""
    for member in tar:
        parts = Path(member.name).parts
        unsafe = (
            member.name.startswith(("/", "\\")) or ".." in parts or not (member.isfile() or member.isdir())
        )
        if unsafe:
            raise BadInputError(
                f"{archive.name} contains an unsafe entry ({member.name}); PetLab extracts only plain files "
                "inside the archive's folder, so extract it by hand if you trust it."
            )
        yield member


def official_split_source(images_dir: Path, annotations_dir: Path, config: DataConfig) -> OxfordFilesSource:
    """The images listed in trainval.txt and test.txt, split and ordered exactly as tfds's reference split."""
    trainval = read_official_list(annotations_dir / "trainval.txt", images_dir)
    test = read_official_list(annotations_dir / "test.txt", images_dir)
    if not trainval or not test:
        missing = f"None of the images listed in {annotations_dir} were found in {images_dir}"
        raise BadInputError(
            f"{missing}; point --path at the complete Oxford-IIIT Pet images.",
            dashboard=f"{missing}; choose the folder of the complete Oxford-IIIT Pet images in the sidebar.",
        )
    # Put both lists in tfds's stored order so that train[:90%] picks the very same images as tfds.
    trainval = [trainval[i] for i in tfds_order([item.path.name for item in trainval], "train")]
    test = [test[i] for i in tfds_order([item.path.name for item in test], "test")]
    n_train = reference_train_count(len(trainval), config.validation_fraction)
    items = {"train": trainval[:n_train], "validation": trainval[n_train:], "test": test}
    rule = {"rule": "official", "validation_fraction": config.validation_fraction}
    return OxfordFilesSource(images_dir.parent, OXFORD_BREEDS, items, rule)


def read_official_list(list_file: Path, images_dir: Path) -> list[FileItem]:
    """Items of an Oxford split list (`Abyssinian_100 1 1 1` lines), in file order, skipping absent images."""
    items = []
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            class_id = int(fields[1])
        except (IndexError, ValueError):
            class_id = 0
        if not 1 <= class_id <= len(OXFORD_BREEDS):
            raise BadInputError(
                f"Line {number} of {list_file.name} does not have the form 'Abyssinian_100 1 1 1'; "
                "use the original annotation files."
            )
        path = images_dir / f"{fields[0]}.jpg"
        if path.is_file():
            items.append(FileItem(path, class_id - 1))
    return items


def _named_files_source(images_dir: Path, config: DataConfig) -> OxfordFilesSource:
    paths, breeds = [], []
    for path in sorted(images_dir.iterdir()):
        breed = breed_from_file_name(path.stem) if is_image_file(path) else None
        if breed is not None:
            paths.append(path)
            breeds.append(breed)
    if not paths:
        missing = f"No images named like Bengal_12.jpg were found in {images_dir}"
        raise BadInputError(
            f"{missing}; for your own images use --source folder with one sub-folder per class.",
            dashboard=f"{missing}; for your own images choose the class-folders source in the sidebar.",
        )
    present = set(breeds)
    class_names = [breed for breed in OXFORD_BREEDS if breed in present]
    labels = [class_names.index(breed) for breed in breeds]
    split_indices = stratified_split(labels, config.validation_fraction, config.test_fraction, config.seed)
    return OxfordFilesSource(
        images_dir, class_names, assign_splits(paths, labels, split_indices), stratified_rule(config)
    )
