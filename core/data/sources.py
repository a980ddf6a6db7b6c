"""Choosing and opening a data source by kind ("tfds", "oxford-files", "folder")."""

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
