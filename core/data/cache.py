"""Decoded images on disk, so each image is decoded and resized once per size.

`ImageCache.get` returns a split as a read-only memory-mapped uint8 array
[N, size, size, 3] plus its int64 labels. The first call for a (source
content, split, size) builds `<workspace>/cache/images/<key>/` in a temporary
folder and renames it into place, so a crash never leaves a half-written cache;
later calls, in this process or another, only map the files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from core.data.base import DataSource
from core.data.images import resize_image
from core.data.splits import check_split
from core.errors import BadInputError, PetLabError
from core.progress import ProgressCallback, no_progress
from core.workspace import atomic_write_json

# Bump when the stored layout or the decoding changes, so old caches are not reused.
CACHE_FORMAT = 1
IMAGES_FILE = "images.npy"
LABELS_FILE = "labels.npy"
META_FILE = "meta.json"
# Leftover build folders older than this are from crashed builds and are removed.
STALE_BUILD_SECONDS = 24 * 3600


class ImageCache:
    """Per-(source, split, size) arrays of resized images under <workspace>/cache/images/."""

    def __init__(self, workspace: Path):
        self.root = Path(workspace) / "cache" / "images"

    def key(self, source: DataSource, split: str, size: int) -> str:
        """The folder name for one source content, split and image size."""
        text = f"{CACHE_FORMAT}|{source.fingerprint()}|{split}|{size}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def get(
        self, source: DataSource, split: str, size: int, progress: ProgressCallback | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(images read-only uint8 [N, size, size, 3], labels int64 [N]), building the cache if needed."""
        check_split(split)
        if not isinstance(size, int) or size < 1:
            raise BadInputError(f"The image size must be a positive whole number of pixels, not {size!r}.")
        folder = self.root / self.key(source, split, size)
        if not (folder / META_FILE).is_file():
            self._build(source, split, size, folder, progress or no_progress)
        return _open(folder, size)

    def _build(
        self, source: DataSource, split: str, size: int, folder: Path, progress: ProgressCallback
    ) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _remove_stale_builds(self.root)
        scratch = Path(tempfile.mkdtemp(prefix=f".build-{folder.name}-", dir=self.root))
        try:
            _write_arrays(source, split, size, scratch, progress)
            atomic_write_json(
                scratch / META_FILE,
                {
                    "format": CACHE_FORMAT,
                    "fingerprint": source.fingerprint(),
                    "kind": source.kind,
                    "split": split,
                    "size": size,
                    "count": source.split_size(split),
                },
            )
            try:
                os.rename(scratch, folder)
            except OSError:
                # Another process finished the same cache first; theirs is as good as ours.
                if not (folder / META_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _write_arrays(
    source: DataSource, split: str, size: int, folder: Path, progress: ProgressCallback
) -> None:
    count = source.split_size(split)
    stage = f"decoding {split} images"
    labels = np.zeros(count, dtype=np.int64)
    if count:
        images = np.lib.format.open_memmap(
            folder / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=(count, size, size, 3)
        )
        done = 0
        progress(stage, 0, count)
        for done, (image, label) in enumerate(source.iter_split(split), start=1):
            if done > count:
                break
            images[done - 1] = resize_image(image, size)
            labels[done - 1] = label
            progress(stage, done, count)
        images.flush()
        del images
        if done != count:
            raise PetLabError(
                f"The {split} split yielded {done} images but declares {count}; the dataset is damaged, "
                "prepare or extract it again."
            )
    np.save(folder / LABELS_FILE, labels)


def _open(folder: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.load(folder / LABELS_FILE, allow_pickle=False)
    if len(labels) == 0:
        # numpy cannot memory-map an empty file.
        empty = np.zeros((0, size, size, 3), dtype=np.uint8)
        empty.flags.writeable = False
        return empty, labels
    return np.load(folder / IMAGES_FILE, mmap_mode="r", allow_pickle=False), labels


def _remove_stale_builds(root: Path) -> None:
    cutoff = time.time() - STALE_BUILD_SECONDS
    for leftover in root.glob(".build-*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass
