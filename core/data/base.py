"""What every data source offers, and the shared code of the file-based sources.

A DataSource is a labelled image collection already split into train,
validation and test. Examples are addressed by (split, index); images come out
full size, decoded by core.data.images.decode_image, so resizing and caching are
the business of core.data.cache. `FileListSource` implements the interface for
sources that are plain image files on disk (the Oxford files and a folder of
class sub-folders); it decodes files on worker threads because PIL releases
the GIL while decoding.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from core.config import SPLITS
from core.data.images import IMAGE_EXTENSIONS, decode_image
from core.data.splits import check_split
from core.errors import BadInputError, NotFoundError

T = TypeVar("T")
R = TypeVar("R")


class DataSource(ABC):
    """A labelled image collection split into config.SPLITS, read example by example."""

    kind: str
    class_names: list[str]

    @abstractmethod
    def split_size(self, split: str) -> int:
        """Number of examples in `split`."""

    @abstractmethod
    def labels(self, split: str) -> np.ndarray:
        """int64 labels of `split`, in index order."""

    @abstractmethod
    def load(self, split: str, index: int) -> tuple[np.ndarray, int]:
        """The full-size HxWx3 uint8 RGB image and the label of one example."""

    @abstractmethod
    def item_name(self, split: str, index: int) -> str:
        """A short human name of one example (its file name)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """Hex digest of the content and the split definition; changes when either changes."""

    def iter_split(self, split: str) -> Iterator[tuple[np.ndarray, int]]:
        """Every example of `split` in index order, full size."""
        for index in range(self.split_size(split)):
            yield self.load(split, index)

    def describe(self) -> dict[str, Any]:
        """Kind, classes, split sizes and per-class counts, as plain JSON-able values."""
        counts = {
            split: np.bincount(self.labels(split), minlength=len(self.class_names)).tolist()
            for split in SPLITS
        }
        return {
            "kind": self.kind,
            "classes": list(self.class_names),
            "sizes": {split: self.split_size(split) for split in SPLITS},
            "label_counts": counts,
        }

    def _check_index(self, split: str, index: int) -> None:
        check_split(split)
        size = self.split_size(split)
        if not 0 <= index < size:
            raise BadInputError(
                f"There is no example {index} in the {split} split, which has {size}; pick 0 to {size - 1}."
            )


def digest(obj: Any) -> str:
    """A stable sha256 hex digest of a JSON-able value."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def parallel_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int | None = None, window: int = 64
) -> Iterator[R]:
    """`map(fn, items)` on worker threads, in order, with at most `window` results pending."""
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        for future in pending:
            yield future.result()


def is_image_file(path: Path) -> bool:
    """True for a visible file with an image extension (skips `._*` resource forks and dot files)."""
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


@dataclass(frozen=True)
class FileItem:
    """One example of a file-based source."""

    path: Path
    label: int


class FileListSource(DataSource):
    """A source whose examples are image files, already assigned to splits."""

    def __init__(
        self, root: Path, class_names: list[str], items: dict[str, list[FileItem]], split_rule: dict[str, Any]
    ):
        self.root = root
        self.class_names = list(class_names)
        self._items = {split: list(items.get(split, [])) for split in SPLITS}
        self._labels = {
            split: np.array([item.label for item in self._items[split]], dtype=np.int64) for split in SPLITS
        }
        self._split_rule = split_rule
        self._fingerprint: str | None = None

    def split_size(self, split: str) -> int:
        check_split(split)
        return len(self._items[split])

    def labels(self, split: str) -> np.ndarray:
        check_split(split)
        return self._labels[split].copy()

    def load(self, split: str, index: int) -> tuple[np.ndarray, int]:
        self._check_index(split, index)
        return self._decode(self._items[split][index])

    def iter_split(self, split: str) -> Iterator[tuple[np.ndarray, int]]:
        check_split(split)
        return parallel_map(self._decode, self._items[split])

    def item_name(self, split: str, index: int) -> str:
        self._check_index(split, index)
        return self._items[split][index].path.name

    def fingerprint(self) -> str:
        # Size and modification time stand in for the content: reading every file would take minutes.
        if self._fingerprint is None:
            files = {
                split: [
                    [self._relative(item.path), item.label, *_file_stamp(item.path)]
                    for item in self._items[split]
                ]
                for split in SPLITS
            }
            self._fingerprint = digest(
                {"kind": self.kind, "classes": self.class_names, "rule": self._split_rule, "files": files}
            )
        return self._fingerprint

    def _relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.name

    @staticmethod
    def _decode(item: FileItem) -> tuple[np.ndarray, int]:
        return decode_image(item.path), item.label


def _file_stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def assign_splits(
    paths: list[Path], labels: list[int], split_indices: dict[str, np.ndarray]
) -> dict[str, list[FileItem]]:
    """Turn per-split index arrays over (paths, labels) into per-split FileItem lists."""
    return {
        split: [FileItem(paths[i], labels[i]) for i in indices.tolist()]
        for split, indices in split_indices.items()
    }


def require_path(path: str | os.PathLike[str] | None, kind: str) -> Path:
    """The existing path given for a file-based source, or a BadInputError saying what is wrong."""
    if path is None or not str(path).strip():
        raise BadInputError(
            f"The {kind} source needs a folder; give it with --path.",
            dashboard=f"The {kind} source needs a folder; choose one in the sidebar.",
        )
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise NotFoundError(
            f"{resolved} does not exist; check the --path given for the {kind} source.",
            dashboard=f"{resolved} does not exist; choose another {kind} folder in the sidebar.",
        )
    return resolved
