"""A person's own images as a data source: one sub-folder per class.

`root/<class>/*.jpg` (sub-folders inside a class folder are included too).
Class names are the sorted names of the sub-folders that hold at least one
image; hidden files and folders are skipped. The split is stratified
(core.data.splits), so every class is represented in every split it can be.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.config import DataConfig
from core.data.base import FileListSource, assign_splits, is_image_file, require_path
from core.data.splits import stratified_rule, stratified_split
from core.errors import BadInputError


class FolderSource(FileListSource):
    """Images in class sub-folders of one folder."""

    kind = "folder"


def open_folder(path: str | os.PathLike[str] | None, config: DataConfig) -> FolderSource:
    """Open `path` as a folder of class sub-folders; at least two classes with images are needed."""
    root = require_path(path, "folder")
    if not root.is_dir():
        raise BadInputError(
            f"{root} is a file; the folder source needs a folder with one sub-folder per class."
        )
    files_by_class = {
        folder.name: files
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".") and (files := class_images(folder))
    }
    if len(files_by_class) < 2:
        found = "no class" if not files_by_class else f"only one class ({next(iter(files_by_class))})"
        raise BadInputError(
            f"{root} has {found} with images; put each class's images in its own sub-folder, "
            "at least two classes."
        )
    class_names = sorted(files_by_class)
    paths = [path for name in class_names for path in files_by_class[name]]
    labels = [label for label, name in enumerate(class_names) for _ in files_by_class[name]]
    split_indices = stratified_split(labels, config.validation_fraction, config.test_fraction, config.seed)
    return FolderSource(
        root, class_names, assign_splits(paths, labels, split_indices), stratified_rule(config)
    )


def class_images(folder: Path) -> list[Path]:
    """The image files under a class folder, sorted, skipping anything hidden."""
    return sorted(
        path
        for path in folder.rglob("*")
        if is_image_file(path) and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
