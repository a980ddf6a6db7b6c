"""What a prepare job's child process runs in the tests (core.training.prepare.prepare_in_child, faked).

The child is a fresh interpreter (spawn), so a test's patches do not reach it: a test points
`core.training.prepare.prepare_in_child` at one of these functions, which the child imports by
name, applies its own patches and runs the real child code. Paths come through the environment,
which the child inherits.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from pathlib import Path
from unittest import mock

from core.training.prepare import prepare_in_child

ORIGINALS_ENV = "PETLAB_TEST_OXFORD_ORIGINALS"  # generated Oxford files that stand in for the download
PID_FILE_ENV = "PETLAB_TEST_CHILD_PID_FILE"  # where a stalling child notes its process id
STALLED_STAGE = "downloading the Oxford-IIIT Pet archives (MB)"
STALL_LIMIT_S = 60  # a stalled child gives up after this long, so a Cancel that does not work fails a test


def downloading_generated_files(workspace: str, data: dict, results: Connection) -> None:
    """The real preparation, whose download hands over generated Oxford files instead of the network's."""
    import tensorflow_datasets as tfds

    originals = os.environ[ORIGINALS_ENV]
    fetch = mock.patch.object(
        tfds.download.DownloadManager, "download_and_extract", lambda self, urls: {k: originals for k in urls}
    )
    with fetch, mock.patch("core.data.tfds_source.check_reachable", return_value=True):
        prepare_in_child(workspace, data, results)


def offline(workspace: str, data: dict, results: Connection) -> None:
    """The real preparation on a machine without network."""
    with mock.patch("core.data.tfds_source.check_reachable", return_value=False):
        prepare_in_child(workspace, data, results)


def stalling(workspace: str, data: dict, results: Connection) -> None:
    """Leaves tfds-like unfinished files and a finished download, reports a stage, then waits (for Cancel)."""

    def stall(kind, path=None, *, workspace, data_config=None, progress=None, download=True):
        data_dir = Path(os.environ["TFDS_DATA_DIR"])
        unfinished = data_dir / "oxford_iiit_pet" / "incomplete.0123abcd.4.0.0"
        unfinished.mkdir(parents=True)
        (unfinished / "oxford_iiit_pet-train.tfrecord-00000-of-00004").write_bytes(b"half")
        downloading = data_dir / "downloads" / f"images.tar.gz.tmp.{'a' * 32}"
        downloading.mkdir(parents=True)
        (downloading / "images.tar.gz").write_bytes(b"part")
        (data_dir / "downloads" / "annotations.tar.gz").write_bytes(b"finished")
        Path(os.environ[PID_FILE_ENV]).write_text(str(os.getpid()))
        progress(STALLED_STAGE, 3, 10)
        time.sleep(STALL_LIMIT_S)

    with mock.patch("core.data.open_source", stall):
        prepare_in_child(workspace, data, results)


def crashing_on_tfds(workspace: str, data: dict, results: Connection) -> None:
    """For the tfds source, a child that dies without a word (as one the out-of-memory killer ended)."""
    if data["source"] == "tfds":
        os._exit(3)
    prepare_in_child(workspace, data, results)
