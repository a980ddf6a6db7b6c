"""Choosing and opening a data source by kind ("tfds", "oxford-files", "folder").

`open_source` opens what training and evaluation read; `open_for_browsing` what the dashboard's
pages show, the same data, but the prepared reference dataset without TensorFlow when it can.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.config import SOURCES, DataConfig
from core.data.base import DataSource
from core.data.splits import check_fractions
from core.errors import BadInputError
from core.progress import ProgressCallback


def open_source(
    kind: str,
    path: str | os.PathLike[str] | None = None,
    *,
    workspace: Path,
    data_config: DataConfig | None = None,
    progress: ProgressCallback | None = None,
    download: bool = True,
) -> DataSource:
    """Open a data source by kind.

    For "tfds", `path` optionally names the tfds data folder and `download` says whether a
    missing dataset may be downloaded; the file-based kinds need `path` and ignore `download`.
    """
    config = data_config or DataConfig()
    check_fractions(config)
    if kind == "tfds":
        from core.data.tfds_source import open_tfds

        return open_tfds(Path(workspace), config, path, progress, download)
    if kind == "oxford-files":
        from core.data.oxford_files import open_oxford_files

        return open_oxford_files(path, Path(workspace), config, progress)
    if kind == "folder":
        from core.data.folder import open_folder

        return open_folder(path, config)
    raise BadInputError(f"There is no data source called {kind!r}; use one of {', '.join(SOURCES)}.")


def open_for_browsing(
    kind: str,
    path: str | os.PathLike[str] | None = None,
    *,
    workspace: Path,
    data_config: DataConfig | None = None,
    progress: ProgressCallback | None = None,
    download: bool = True,
) -> DataSource:
    """open_source for looking at the data: a prepared "tfds" dataset is read through the original
    files tfds extracted (core.data.tfds_browser, no TensorFlow) when they are all there.

    Same classes, split members and order as open_source gives; only training and evaluation
    need TfdsSource itself (its fingerprint names their caches).
    """
    config = data_config or DataConfig()
    if kind == "tfds":
        check_fractions(config)
        from core.data.tfds_browser import tfds_browser

        browser = tfds_browser(Path(workspace), config, path)
        if browser is not None:
            return browser
    return open_source(
        kind, path, workspace=workspace, data_config=config, progress=progress, download=download
    )
