"""The prepared reference dataset read without TensorFlow, through the original files tfds extracted.

TfdsSource reads a prepared tensorflow-datasets copy with tf.data, so opening it brings
TensorFlow (seconds) into the dashboard's server. Preparing it, though, leaves the extracted
archives in `<tfds data folder>/downloads/extracted/`, named by tfds's download manager
`<extract method>.<name derived from the URL and checksum>`:

    TAR_GZ.thor.robots.ox.ac.uk_vgg_pets_images<checksum>.tar.gz/images/*.jpg
    TAR_GZ.thor.robots.ox.ac.uk_vgg_pets_annotatio<checksum>.tar.gz/annotations/{trainval,test}.txt

Read as the Oxford files with the official lists (core.data.oxford_files.official_split_source),
they give the same classes, the same images in each split and the same order as TfdsSource, so
the pages browse those instead. The folder names are matched loosely (any finished extraction
holding `images/`, any holding `annotations/` with both lists), and the files count only if each
list yields exactly as many images as the prepared split holds: a missing image would move the
train/validation cut. Otherwise (downloads deleted, a damaged folder, a data folder prepared
elsewhere) `tfds_browser` returns None and the caller opens TfdsSource as before.

Only the pages browse this way: training and evaluation keep TfdsSource, whose fingerprint names
their cached images and features. The pictures differ only for the dozen originals tfds re-encodes
while preparing (its `_CORRUPT_SAMPLES`), decoded here from the original bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.config import DataConfig
from core.data.breeds import OXFORD_BREEDS
from core.data.oxford_files import OFFICIAL_LISTS, OxfordFilesSource, official_split_source
from core.data.tfds_source import DATASET, INCOMPLETE_PREFIX, tfds_data_dir
from core.errors import BadInputError

EXTRACTED = (
    Path("downloads") / "extracted"
)  # under the tfds data folder (download_dir=<data folder>/downloads)


def tfds_browser(
    workspace: Path, config: DataConfig, path: str | os.PathLike[str] | None = None
) -> OxfordFilesSource | None:
    """The prepared reference dataset as the Oxford files tfds extracted, or None if they are not all there.

    `path` names the tfds data folder as for open_tfds. Imports tensorflow-datasets (not TensorFlow).
    """
    data_dir = tfds_data_dir(workspace, path)
    pairs = extracted_oxford_folders(data_dir / EXTRACTED)
    if not pairs:
        return None  # before importing tfds: nothing to browse
    prepared = prepared_split_sizes(data_dir)
    if prepared is None:
        return None
    for images_dir, annotations_dir in pairs:
        try:
            source = official_split_source(images_dir, annotations_dir, config)
        except BadInputError:  # lists of another form, or none of their images here
            continue
        read = {"train": source.split_size("train") + source.split_size("validation")}
        if read | {"test": source.split_size("test")} == prepared:
            return source
    return None


def extracted_oxford_folders(extracted: Path) -> list[tuple[Path, Path]]:
    """(images folder, annotations folder) pairs among tfds's finished extractions in `extracted`."""
    if not extracted.is_dir():
        return []
    # tfds extracts into `incomplete.<uuid>_<name>` and renames it when done (also `….todelete`).
    finished = sorted(
        folder
        for folder in extracted.iterdir()
        if folder.is_dir() and not folder.name.startswith(INCOMPLETE_PREFIX)
    )
    images = [folder / "images" for folder in finished if (folder / "images").is_dir()]
    annotations = [
        folder / "annotations"
        for folder in finished
        if all((folder / "annotations" / name).is_file() for name in OFFICIAL_LISTS)
    ]
    return [(image_dir, annotation_dir) for image_dir in images for annotation_dir in annotations]


def prepared_split_sizes(data_dir: Path) -> dict[str, int] | None:
    """{"train": n, "test": n} of the prepared dataset in `data_dir` (its metadata), or None if not prepared.

    None too if its label names are not the Oxford breeds in PetLab's order, since the files'
    labels would not mean the same classes.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(DATASET, data_dir=os.fspath(data_dir))
    if not builder.is_prepared() or list(builder.info.features["label"].names) != OXFORD_BREEDS:
        return None
    splits = builder.info.splits
    if not {"train", "test"} <= set(splits.keys()):
        return None
    return {name: int(splits[name].num_examples) for name in ("train", "test")}
