"""Batch prediction: every photo of a folder (recursively) or a zip, top-k classes each, as a table.

`predict_folder` lists the photos (image extensions of core.data.images, hidden files and zip
junk skipped), reads them MAX_BATCH at a time and hands each group to `Predictor.predict_many`,
which decodes them and answers the readable ones in one forward pass; a file that cannot be read
is listed with its one-sentence reason and the batch goes on. A zip is read member by member
from the upload or file itself, never unpacked to disk, under the same safety checks as the
Dataset page's zip import (core.data.zip_import). Progress: stage "predicting", photos done.

`write_predictions_csv` is the command line's `predict --csv`: it writes the CSV
(core.tables.predictions) and prints each unreadable file on stderr.
"""

from __future__ import annotations

import os
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import core.predictions.answers as answers
from core.data.folder import class_images
from core.data.images import IMAGE_EXTENSIONS, ImageInput
from core.data.zip_import import MAX_TOTAL_BYTES, checked_members, read_member
from core.errors import BadInputError, NotFoundError
from core.inference.predict import Predictor
from core.progress import ProgressCallback, TerminalProgress, no_progress
from core.runs.store import RunStore
from core.tables.predictions import BatchResult, write_predictions

STAGE = "predicting"
Source = str | os.PathLike[str] | IO[bytes]
# (file inside the source, a function reading it: a path or the bytes)
Photo = tuple[str, Callable[[], ImageInput]]


def predict_folder(
    predictor: Predictor, source: Source, top_k: int = 5, progress: ProgressCallback | None = None
) -> BatchResult:
    """Top-k classes of every photo in a folder or zip (path, or an open zip such as an upload)."""
    progress = progress or no_progress
    rows, unreadable = [], []
    with open_photos(source) as photos:
        total = len(photos)
        progress(STAGE, 0, total)
        for start in range(0, total, answers.MAX_BATCH):
            group = [
                (file, *read_photo(file, read)) for file, read in photos[start : start + answers.MAX_BATCH]
            ]
            unreadable += [(file, error) for file, _, error in group if error]
            readable = [(file, data) for file, data, error in group if not error]
            for answer in predictor.predict_many(readable, top_k):
                if answer.error:
                    unreadable.append((answer.name, answer.error))
                else:
                    rows.append((answer.name, answer.top))
            progress(STAGE, min(start + answers.MAX_BATCH, total), total)
    order = {file: position for position, (file, _) in enumerate(photos)}
    unreadable.sort(key=lambda item: order[item[0]])
    return BatchResult(min(top_k, len(predictor.class_names)), rows, unreadable)


def read_photo(file: str, read: Callable[[], ImageInput]) -> tuple[ImageInput | None, str | None]:
    """(data, None), or (None, why) when a zip member cannot even be unpacked."""
    try:
        return read(), None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError):
        name = file.rsplit("/", 1)[-1]
        return None, f"{name} cannot be unpacked from the zip (it is damaged); zip the photo again."


@contextmanager
def open_photos(source: Source) -> Iterator[list[Photo]]:
    """The photos of a folder or zip, sorted by file; a zip stays open while the block runs."""
    if not isinstance(source, str | os.PathLike):
        with zip_photos(source) as photos:
            yield photos
        return
    path = Path(source)
    if path.is_dir():
        yield folder_photos(path)
    elif path.is_file():
        with path.open("rb") as stream, zip_photos(stream, path.name) as photos:
            yield photos
    else:
        raise NotFoundError(f"{path.name or path} does not exist; give a folder or a zip file of photos.")


def folder_photos(folder: Path) -> list[Photo]:
    """Every visible image file below `folder` (not following links out of it), by relative path."""
    root = folder.resolve()
    files = [path for path in class_images(folder) if path.resolve().is_relative_to(root)]
    return [(path.relative_to(folder).as_posix(), lambda path=path: path) for path in files]


@contextmanager
def zip_photos(stream: IO[bytes], name: str = "The zip") -> Iterator[list[Photo]]:
    """The image members of a zip, read one at a time on demand (nothing is unpacked to disk)."""
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, EOFError, OSError):
        raise BadInputError(
            f"{name} is neither a folder nor a readable zip file; give a folder or a zip of photos."
        ) from None
    with archive:
        members = [
            ("/".join(parts), info)
            for info, parts in checked_members(archive)  # refuses links, passwords and zip bombs
            if parts[-1].lower().endswith(IMAGE_EXTENSIONS)
        ]
        # A member larger than the whole zip's allowance is refused by read_member; each is within it.
        photos = [
            (file, lambda info=info: read_member(archive, info, MAX_TOTAL_BYTES)) for file, info in members
        ]
        yield sorted(dict(photos).items())


def write_predictions_csv(
    store: RunStore, run_id: int, source: Source, csv_path: str | os.PathLike[str], top_k: int, say=print
) -> int:
    """`predict --run ID --csv FILE DIR`: write the CSV, list unreadable files on stderr; photos predicted."""
    predictor = Predictor.for_run(store, run_id)
    result = predict_folder(predictor, source, top_k, progress=TerminalProgress())
    for file, reason in result.unreadable:
        print(f"{file}: {reason}", file=sys.stderr)
    if result.predicted:
        write_predictions(result, csv_path)
        say(f"predicted {result.predicted} photos into {csv_path} ({len(result.unreadable)} unreadable)")
    return result.predicted
