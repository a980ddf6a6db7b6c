"""The reference data: tensorflow-datasets `oxford_iiit_pet`, split as the tutorial does.

train = `train[:90%]`, validation = `train[90%:]`, test = `test` (the 90 comes
from DataConfig.validation_fraction). The data lives in `TFDS_DATA_DIR` if set,
else `<workspace>/tensorflow_datasets`. Images are read as their stored JPEG
bytes and decoded by core.data.images.decode_image, like every other image in
PetLab. When the dataset is not prepared yet it is downloaded, after a quick
network probe so that an offline machine gets an OfflineError at once instead
of minutes of retries.

Split sizes, labels and images all come from the same reading of the data
(one `as_dataset` call per split, with the same decoders), never from the sizes
declared in `builder.info.splits`: for a real prepared copy the two agree, but
`tfds.testing.mock_data` keeps the real metadata while yielding its own number
of generated examples, and PetLab must describe what it actually reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.config import SPLITS, DataConfig
from core.data.base import DataSource, digest, parallel_map
from core.data.images import decode_image
from core.data.net import check_reachable
from core.data.splits import check_split, reference_percent
from core.errors import NotFoundError, OfflineError, PetLabError
from core.progress import ProgressCallback, no_progress


def _keep_lazy_imports_to_their_thread() -> None:
    """Make etils' `lazy_imports` (used all through tensorflow-datasets) patch imports of its own thread only.

    It swaps `builtins.__import__` process-wide while tfds imports or builds a dataset; in the
    dashboard the web server's thread then gets lazy stubs, or a ValueError for any relative
    import (anyio's, while serving a static file: the browser sees HTTP 500 for a JS chunk).
    """
    import builtins
    import contextlib
    import threading

    try:
        from etils import epy
        from etils.epy import lazy_imports_utils
    except ImportError:
        return
    original = lazy_imports_utils.lazy_imports
    if getattr(original, "thread_local", False):
        return

    @contextlib.contextmanager
    def lazy_imports(**kwargs):
        real, owner = builtins.__import__, threading.get_ident()
        with original(**kwargs):
            lazy = builtins.__import__

            def dispatch(*args, **kw):
                return (lazy if threading.get_ident() == owner else real)(*args, **kw)

            builtins.__import__ = dispatch
            yield

    lazy_imports.thread_local = True
    lazy_imports_utils.lazy_imports = epy.lazy_imports = lazy_imports


_keep_lazy_imports_to_their_thread()

DATASET = "oxford_iiit_pet"
DATA_DIR_ENV = "TFDS_DATA_DIR"
# Fallback if the builder module's _BASE_URL cannot be read (it is private to tfds).
DEFAULT_DOWNLOAD_URL = "https://thor.robots.ox.ac.uk/~vgg/data/pets"
ALTERNATIVES = (
    "use --source oxford-files --path <folder with the original images> "
    "or --source folder --path <folder of class folders>"
)


class TfdsSource(DataSource):
    """Oxford-IIIT Pet read from a prepared tensorflow-datasets folder."""

    kind = "tfds"

    def __init__(self, builder: Any, validation_fraction: float):
        self._builder = builder
        self.class_names = list(builder.info.features["label"].names)
        self._specs = reference_split_specs(validation_fraction)
        self._index: dict[str, tuple[np.ndarray, list[str]]] = {}
        self._sizes: dict[str, int] = {}

    def split_size(self, split: str) -> int:
        """What reading the split yields: the dataset's cardinality, else the length of the labels pass."""
        check_split(split)
        if split not in self._sizes:
            count = int(self._dataset(split).cardinality())
            if count >= 0:
                self._sizes[split] = count
            else:
                self._scan(split)  # unknown or infinite cardinality: count by reading
        return self._sizes[split]

    def labels(self, split: str) -> np.ndarray:
        return self._scan(split)[0].copy()

    def load(self, split: str, index: int) -> tuple[np.ndarray, int]:
        self._check_index(split, index)
        for example in self._examples(split, skip=index, take=1):
            return _decode_example(example)
        raise PetLabError(
            f"Example {index} of the {split} split is missing from the prepared Oxford-IIIT Pet dataset; "
            "delete its tensorflow_datasets folder and prepare it again."
        )

    def iter_split(self, split: str) -> Iterator[tuple[np.ndarray, int]]:
        check_split(split)
        return parallel_map(_decode_example, self._examples(split))

    def item_name(self, split: str, index: int) -> str:
        self._check_index(split, index)
        return self._scan(split)[1][index]

    def fingerprint(self) -> str:
        # A tfds version pins the content; the split strings and sizes pin the split.
        return digest(
            {
                "kind": self.kind,
                "dataset": self._builder.info.full_name,
                "classes": self.class_names,
                "splits": self._specs,
                "sizes": {split: self.split_size(split) for split in SPLITS},
            }
        )

    def _scan(self, split: str) -> tuple[np.ndarray, list[str]]:
        """Labels and file names of a split, from one pass that drops the images (kept in memory).

        The pass reads with the same decoders as the image pass and drops the (undecoded) image
        bytes inside the pipeline, so both passes read the very same examples; its length is
        then the split's size.
        """
        check_split(split)
        if split not in self._index:
            labels, names = [], []
            for example in self._examples(split, fields=("label", "file_name")):
                labels.append(int(example["label"]))
                names.append(example["file_name"].decode("utf-8"))
            self._index[split] = (np.array(labels, dtype=np.int64), names)
            self._sizes[split] = len(labels)
        return self._index[split]

    def _dataset(self, split: str) -> Any:
        import tensorflow_datasets as tfds

        # Skip tfds's own JPEG decoding (and the segmentation masks entirely): decode_image does it.
        decoders = tfds.decode.PartialDecoding(
            {"image": True, "label": True, "file_name": True}, decoders={"image": tfds.decode.SkipDecoding()}
        )
        return self._builder.as_dataset(split=self._specs[split], decoders=decoders, shuffle_files=False)

    def _examples(
        self, split: str, skip: int = 0, take: int | None = None, fields: tuple[str, ...] | None = None
    ) -> Iterator[dict]:
        import tensorflow_datasets as tfds

        dataset = self._dataset(split)
        if fields is not None:
            dataset = dataset.map(lambda example: {name: example[name] for name in fields})
        if skip:
            dataset = dataset.skip(skip)
        if take is not None:
            dataset = dataset.take(take)
        return iter(tfds.as_numpy(dataset))


def _decode_example(example: dict) -> tuple[np.ndarray, int]:
    name = example["file_name"].decode("utf-8")
    return decode_image(bytes(example["image"]), name), int(example["label"])


def reference_split_specs(validation_fraction: float) -> dict[str, str]:
    """tfds split strings for train / validation / test, e.g. train[:90%], train[90%:], test."""
    percent = f"{reference_percent(validation_fraction):g}"
    return {"train": f"train[:{percent}%]", "validation": f"train[{percent}%:]", "test": "test"}


def tfds_data_dir(workspace: Path, path: str | os.PathLike[str] | None = None) -> Path:
    """The tfds data folder: `path`, else $TFDS_DATA_DIR, else <workspace>/tensorflow_datasets."""
    chosen = path or os.environ.get(DATA_DIR_ENV) or Path(workspace) / "tensorflow_datasets"
    return Path(chosen).expanduser().resolve()


def download_url() -> str:
    """The host tfds downloads the Oxford-IIIT Pet archives from."""
    try:
        from tensorflow_datasets.datasets.oxford_iiit_pet import oxford_iiit_pet_dataset_builder as module

        return str(module._BASE_URL)
    except (ImportError, AttributeError):
        return DEFAULT_DOWNLOAD_URL


def open_tfds(
    workspace: Path,
    config: DataConfig,
    path: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    download: bool = True,
) -> TfdsSource:
    """Open the prepared dataset, downloading and preparing it first if allowed."""
    import tensorflow_datasets as tfds

    data_dir = tfds_data_dir(workspace, path)
    builder = tfds.builder(DATASET, data_dir=os.fspath(data_dir))
    if not builder.is_prepared():
        _download_and_prepare(builder, data_dir, progress or no_progress, download)
    return TfdsSource(builder, config.validation_fraction)


def _network_errors() -> tuple[type[BaseException], ...]:
    import requests
    import tensorflow_datasets as tfds

    return (tfds.download.DownloadError, requests.exceptions.RequestException, ConnectionError, TimeoutError)


def _download_and_prepare(builder: Any, data_dir: Path, progress: ProgressCallback, download: bool) -> None:
    import tensorflow_datasets as tfds

    if not download:
        raise NotFoundError(
            f"The Oxford-IIIT Pet dataset is not prepared in {data_dir}; allow the download, "
            f"point {DATA_DIR_ENV} at a prepared copy, or {ALTERNATIVES}."
        )
    if not check_reachable(download_url()):
        raise OfflineError(
            "The Oxford-IIIT Pet dataset is not on this machine and it cannot be downloaded (no network); "
            f"{ALTERNATIVES}, or connect and try again."
        )
    stage = "downloading and preparing the Oxford-IIIT Pet dataset (about 800 MB)"
    progress(stage, 0, None)
    # try_download_gcs=False: fetch from the host just probed, not from a bucket that may be blocked.
    config = tfds.download.DownloadConfig(try_download_gcs=False)
    try:
        builder.download_and_prepare(download_dir=os.fspath(data_dir / "downloads"), download_config=config)
    except _network_errors() as exc:
        raise OfflineError(
            f"Downloading the Oxford-IIIT Pet dataset failed ({type(exc).__name__}); "
            f"check the connection and try again, or {ALTERNATIVES}."
        ) from None
    except OSError as exc:
        raise PetLabError(
            f"Preparing the Oxford-IIIT Pet dataset in {data_dir} failed ({exc.strerror or exc}); "
            f"free disk space or choose another folder with {DATA_DIR_ENV}."
        ) from None
    missing = [split for split in ("train", "test") if split not in builder.info.splits]
    if missing:
        raise PetLabError(
            f"Preparing the Oxford-IIIT Pet dataset in {data_dir} finished without its "
            f"{' and '.join(missing)} split; delete that folder and prepare it again, or {ALTERNATIVES}."
        )
    progress(stage, 1, 1)
