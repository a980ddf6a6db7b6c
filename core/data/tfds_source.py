"""The reference data: tensorflow-datasets `oxford_iiit_pet`, split as the tutorial does.

train = `train[:90%]`, validation = `train[90%:]`, test = `test` (the 90 comes
from DataConfig.validation_fraction). The data lives in `TFDS_DATA_DIR` if set,
else `<workspace>/tensorflow_datasets`. Images are read as their stored JPEG
bytes and decoded by core.data.images.decode_image, like every other image in
PetLab. When the dataset is not prepared yet it is downloaded, after a quick
network probe so that an offline machine gets an OfflineError at once instead
of minutes of retries. The download reports its progress (megabytes downloaded,
files extracted, examples written) through the usual progress callback: tfds
draws tqdm bars, which `_tfds_bars_reported` turns into (stage, done, total) calls.
tfds prepares into `incomplete.*` folders it renames at the end, so an interrupted
preparation never looks prepared; `remove_incomplete` deletes what one left behind.

Split sizes, labels and images all come from the same reading of the data
(one `as_dataset` call per split, with the same decoders), never from the sizes
declared in `builder.info.splits`: for a real prepared copy the two agree, but
`tfds.testing.mock_data` keeps the real metadata while yielding its own number
of generated examples, and PetLab must describe what it actually reads.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import types
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
# The same remedy in the dashboard's words (core.catalog.choices.SOURCE_LABELS names the sources).
ALTERNATIVES_DASHBOARD = (
    "choose the Oxford-IIIT Pet files or a folder of class folders as the dataset source in the sidebar"
)
# tfds's progress bars worth showing (a pattern of their description) and the stage each one reports.
TFDS_BAR_STAGES = (
    (re.compile(r"Dl Size"), "downloading the Oxford-IIIT Pet archives (MB)"),
    (re.compile(r"Extraction completed"), "extracting the archives (files)"),
    (re.compile(r"Generating (?P<split>\w+) examples"), "writing the {split} examples"),
    (re.compile(r"Shuffling .*-(?P<split>\w+)\.tfrecord"), "shuffling the {split} examples"),
)
INCOMPLETE_PREFIX = "incomplete."  # tfds.core.constants.INCOMPLETE_PREFIX
DOWNLOAD_TMP = re.compile(r"\.tmp\.[0-9a-f]{32}$")  # a download tfds had not finished: <name>.tmp.<uuid hex>


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


def has_prepared_version(data_dir: Path) -> bool:
    """Whether `data_dir` holds a prepared version of the dataset at all (a `<version>/dataset_info.json`).

    A look at the folder before importing tensorflow-datasets (about a second on 2 cores, most of
    the dashboard's first page when the dataset is not downloaded yet): without such a folder tfds
    cannot find the dataset prepared either. With one, tfds' own check decides.
    """
    return any((data_dir / DATASET).glob("*/dataset_info.json"))


def tfds_prepared(workspace: Path, path: str | os.PathLike[str] | None = None) -> bool:
    """Whether the reference dataset is prepared (tensorflow-datasets' check; imports no TensorFlow)."""
    data_dir = tfds_data_dir(workspace, path)
    if not has_prepared_version(data_dir):
        return False
    import tensorflow_datasets as tfds

    return tfds.builder(DATASET, data_dir=os.fspath(data_dir)).is_prepared()


def open_tfds(
    workspace: Path,
    config: DataConfig,
    path: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    download: bool = True,
) -> TfdsSource:
    """Open the prepared dataset, downloading and preparing it first if allowed."""
    data_dir = tfds_data_dir(workspace, path)
    if not download and not has_prepared_version(data_dir):
        raise not_prepared(data_dir)  # without importing tensorflow-datasets
    import tensorflow_datasets as tfds

    builder = tfds.builder(DATASET, data_dir=os.fspath(data_dir))
    if not builder.is_prepared():
        _download_and_prepare(builder, data_dir, progress or no_progress, download)
    return TfdsSource(builder, config.validation_fraction)


def not_prepared(data_dir: Path) -> NotFoundError:
    """The error for a dataset that is not prepared and may not be downloaded here."""
    return NotFoundError(
        f"The Oxford-IIIT Pet dataset is not prepared in {data_dir}; allow the download, "
        f"point {DATA_DIR_ENV} at a prepared copy, or {ALTERNATIVES}.",
        dashboard=(
            f"The Oxford-IIIT Pet dataset is not prepared in {data_dir} yet; download and prepare it "
            f"here (about 800 MB), or {ALTERNATIVES_DASHBOARD}."
        ),
    )


def _network_errors() -> tuple[type[BaseException], ...]:
    import requests
    import tensorflow_datasets as tfds

    return (tfds.download.DownloadError, requests.exceptions.RequestException, ConnectionError, TimeoutError)


def _download_and_prepare(builder: Any, data_dir: Path, progress: ProgressCallback, download: bool) -> None:
    import tensorflow_datasets as tfds

    if not download:
        raise not_prepared(data_dir)
    if not check_reachable(download_url()):
        raise other_sources(
            OfflineError,
            "The Oxford-IIIT Pet dataset is not on this machine and it cannot be downloaded (no network); "
            "{other}, or connect and try again.",
        )
    stage = "downloading and preparing the Oxford-IIIT Pet dataset (about 800 MB)"
    progress(stage, 0, None)
    # try_download_gcs=False: fetch from the host just probed, not from a bucket that may be blocked.
    config = tfds.download.DownloadConfig(try_download_gcs=False)
    downloads = os.fspath(data_dir / "downloads")
    try:
        with _tfds_bars_reported(progress):
            builder.download_and_prepare(download_dir=downloads, download_config=config)
    except _network_errors() as exc:
        raise other_sources(
            OfflineError,
            f"Downloading the Oxford-IIIT Pet dataset failed ({type(exc).__name__}); "
            "check the connection and try again, or {other}.",
        ) from None
    except OSError as exc:
        reason = exc.strerror or exc
        what = f"Preparing the Oxford-IIIT Pet dataset in {data_dir} failed ({reason}); free disk space"
        raise PetLabError(
            f"{what} or choose another folder with {DATA_DIR_ENV}.",
            dashboard=f"{what}, or give another TFDS data folder in the sidebar.",
        ) from None
    missing = " and ".join(split for split in ("train", "test") if split not in builder.info.splits)
    if missing:
        raise other_sources(
            PetLabError,
            f"Preparing the Oxford-IIIT Pet dataset in {data_dir} finished without its {missing} split; "
            "delete that folder and prepare it again, or {other}.",
        )
    progress(stage, 1, 1)


def other_sources(error: type[PetLabError], sentence: str) -> PetLabError:
    """`error` whose `sentence` offers the other sources at "{other}": as flags, and as sidebar choices
    in the dashboard's wording."""
    return error(
        sentence.replace("{other}", ALTERNATIVES),
        dashboard=sentence.replace("{other}", ALTERNATIVES_DASHBOARD),
    )


def bar_stage(description: str | None) -> str | None:
    """The stage a tfds progress bar reports (TFDS_BAR_STAGES), or None for a bar not worth showing."""
    for pattern, stage in TFDS_BAR_STAGES:
        found = pattern.match(description or "")
        if found:
            return stage.format(**found.groupdict())
    return None


@contextlib.contextmanager
def _tfds_bars_reported(progress: ProgressCallback) -> Iterator[None]:
    """While inside, tfds's tqdm bars report to `progress` instead of drawing on the terminal.

    tfds offers no progress callback, and every bar it draws comes from `tqdm_utils.tqdm_lib.tqdm`;
    a tqdm subclass overriding `display` (tqdm's documented hook for other front ends) is put
    there. Should a later tfds move it, preparation still works, reporting only its start and end.
    """
    from tensorflow_datasets.core.utils import tqdm_utils
    from tqdm import std

    class ReportingBar(std.tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **(kwargs | {"file": io.StringIO()}))  # nothing on the terminal

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            stage = bar_stage(self.desc)
            if stage:
                progress(stage, int(self.n), int(self.total) if self.total else None)
            return True

    if not hasattr(tqdm_utils, "tqdm_lib"):
        yield
        return
    saved, tqdm_utils.tqdm_lib = tqdm_utils.tqdm_lib, types.SimpleNamespace(tqdm=ReportingBar)
    try:
        yield
    finally:
        tqdm_utils.tqdm_lib = saved


def remove_incomplete(workspace: Path, path: str | os.PathLike[str] | None = None) -> list[Path]:
    """Delete what an interrupted preparation left in the tfds data folder; return what was deleted.

    Only tfds's own unfinished work goes: `incomplete.*` folders and files of the dataset and of
    the extraction, and `<archive>.tmp.<uuid>` download folders. Finished downloads stay, so the
    next preparation does not fetch them again.
    """
    data_dir = tfds_data_dir(workspace, path)
    removed = []
    for top in (data_dir / DATASET, data_dir / "downloads"):
        for folder, dirs, files in os.walk(top):
            for name in [*dirs, *files]:
                if name.startswith(INCOMPLETE_PREFIX) or DOWNLOAD_TMP.search(name):
                    target = Path(folder) / name
                    if target.is_dir():
                        shutil.rmtree(target, ignore_errors=True)
                    else:
                        target.unlink(missing_ok=True)
                    removed.append(target)
            dirs[:] = [d for d in dirs if not d.startswith(INCOMPLETE_PREFIX) and not DOWNLOAD_TMP.search(d)]
    return removed
