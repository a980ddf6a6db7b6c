"""A zip of class folders, uploaded to the dashboard, unpacked into a folder source.

`import_zip` takes `<class>/<images>` at the top of the zip or under one common
top folder, and unpacks it into `<workspace>/datasets/uploads/<name>-<hash>/`
(into a hidden temporary folder first, renamed when complete, so a half import
is never seen). The zip is untrusted, so before anything is written it is
refused, with one sentence, if a member's path leads out of its folder
(absolute, `..`), is a symbolic link or is encrypted, or if the headers promise a
zip bomb (too many members, too many bytes in all, a member too large or far
more compressed than photos ever are); while unpacking, each member must yield
exactly as many bytes as its header declared, since headers can lie. Files that
do not decode as images (core.data.images.decode_image) are skipped and counted;
system junk (`__MACOSX`, dot files, Thumbs.db) is ignored. At least two classes
with `min_per_class` images each are needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from core.data.images import IMAGE_EXTENSIONS, decode_image
from core.errors import BadImageError, BadInputError, PetLabError
from core.progress import ProgressCallback, no_progress

UPLOADS = Path("datasets") / "uploads"
MAX_MEMBERS = 50_000
MAX_TOTAL_BYTES = 2 * 1024**3  # everything unpacked
MAX_MEMBER_BYTES = 64 * 1024**2  # one file unpacked
# A member this large may be at most this compressed; photos hardly compress at all.
RATIO_CHECK_BYTES = 1024**2
MAX_RATIO = 100
JUNK_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
_CHUNK = 1024**2
STAGE = "checking the zip's images"


@dataclass(frozen=True)
class ImportReport:
    """Where a zip was unpacked (a folder source), its images per class, and what was skipped."""

    path: Path
    class_counts: dict[str, int]
    skipped: list[str] = field(default_factory=list)  # members that are not images in a class folder

    @property
    def images(self) -> int:
        """How many images were imported."""
        return sum(self.class_counts.values())


def import_zip(
    data: bytes | IO[bytes],
    workspace: str | os.PathLike[str],
    name: str = "upload",
    min_per_class: int = 5,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Unpack an uploaded zip of class folders into the workspace; see the module docstring."""
    progress = progress or no_progress
    stream = _seekable(data)
    digest = _sha256(stream)
    try:
        with zipfile.ZipFile(stream) as archive:
            members = checked_members(archive)
            uploads = Path(workspace) / UPLOADS
            uploads.mkdir(parents=True, exist_ok=True)
            target = uploads / f"{_safe_name(name)}-{digest[:10]}"
            with _temporary_folder(uploads) as tmp:
                counts, skipped = _extract(archive, members, tmp, progress)
                _check_classes(counts, min_per_class)
                _publish(tmp, target)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        # A member that unpacks to other bytes than its header says ends here too (bad CRC-32).
        reason = "an unsupported compression" if isinstance(exc, NotImplementedError) else "damage"
        raise BadInputError(
            f"The upload cannot be read as a zip file ({reason}); zip the class folders again and retry."
        ) from None
    except OSError as exc:
        raise PetLabError(
            f"Cannot write the imported images into the workspace ({exc.strerror or 'write failed'}); "
            "free some disk space or shorten very long file names, then try again."
        ) from None
    return ImportReport(target, dict(sorted(counts.items())), skipped)


def checked_members(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """(member, path parts) of every file worth looking at; refuses unsafe zips from the headers alone."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise BadInputError(
            f"The zip holds {len(infos)} entries, more than the {MAX_MEMBERS} PetLab imports at once; "
            "import fewer images."
        )
    total = 0
    members = []
    for info in infos:
        parts = _member_parts(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BadInputError(
                f"The zip holds a symbolic link ({info.filename}); zip the images themselves, without links."
            )
        if info.flag_bits & 0x1:
            raise BadInputError(
                f"The zip is password-protected ({info.filename}); zip the images without a password."
            )
        if info.is_dir() or not parts or _is_junk(parts):
            continue
        _check_size(info)
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise BadInputError(
                f"The zip would unpack to more than {MAX_TOTAL_BYTES // 1024**3} GB; "
                "import fewer or smaller images."
            )
        members.append((info, parts))
    return members


def _member_parts(filename: str) -> tuple[str, ...]:
    """The path parts of a member name; BadInputError if it is absolute or climbs out with `..`."""
    text = filename.replace("\\", "/")
    if text.startswith("/") or re.match(r"[A-Za-z]:", text) or ".." in text.split("/"):
        raise _outside(filename)
    return tuple(part for part in PurePosixPath(text).parts if part not in ("", "."))


def _outside(filename: str) -> BadInputError:
    return BadInputError(
        f"The zip holds a file whose path leads outside its folder ({filename}); "
        "PetLab does not import such zips."
    )


def _is_junk(parts: tuple[str, ...]) -> bool:
    return any(part.startswith(".") or part in JUNK_NAMES for part in parts)


def _check_size(info: zipfile.ZipInfo) -> None:
    if info.file_size > MAX_MEMBER_BYTES:
        raise BadInputError(
            f"{info.filename} in the zip would unpack to {info.file_size // 1024**2} MB, more than the "
            f"{MAX_MEMBER_BYTES // 1024**2} MB allowed for one image; leave it out of the zip."
        )
    if info.file_size >= RATIO_CHECK_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise _bomb(info.filename)


def _bomb(filename: str) -> BadInputError:
    return BadInputError(
        f"{filename} in the zip is compressed far more than photos ever are; "
        "PetLab refuses it as a possible zip bomb."
    )


def _extract(
    archive: zipfile.ZipFile,
    members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]],
    folder: Path,
    progress: ProgressCallback,
) -> tuple[dict[str, int], list[str]]:
    """Write every decodable image in a class folder under `folder`; (images per class, skipped names)."""
    top = _common_top(members)
    counts: dict[str, int] = {}
    skipped: list[str] = []
    written: set[tuple[str, ...]] = set()
    budget = MAX_TOTAL_BYTES
    for done, (info, parts) in enumerate(members):
        progress(STAGE, done, len(members))
        inner = parts[top:]
        if len(inner) < 2 or not inner[-1].lower().endswith(IMAGE_EXTENSIONS) or inner in written:
            skipped.append(info.filename)
            continue
        data = read_member(archive, info, budget)
        budget -= len(data)
        try:
            decode_image(data, inner[-1])
        except BadImageError:
            skipped.append(info.filename)
            continue
        destination = folder.joinpath(*inner)
        if not destination.resolve().is_relative_to(folder.resolve()):  # belt and braces
            raise BadInputError(
                f"The zip holds a file whose path leads outside its folder ({info.filename})."
            )
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
        written.add(inner)
        counts[inner[0]] = counts.get(inner[0], 0) + 1
    progress(STAGE, len(members), len(members))
    return counts, skipped


def _common_top(members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]]) -> int:
    """1 if every image sits under one common top folder with class folders inside it, else 0."""
    images = [parts for _, parts in members if parts[-1].lower().endswith(IMAGE_EXTENSIONS)]
    tops = {parts[0] for parts in images}
    return int(len(tops) == 1 and all(len(parts) >= 3 for parts in images))


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """A member's bytes, exactly as many as its header declared.

    More is refused as a bomb as soon as it comes out (zipfile itself stops at the declared
    size today; this does not rely on it); fewer means the header lies, which zipfile lets
    through whenever the CRC-32 matches the shorter data.
    """
    limit = min(info.file_size, MAX_MEMBER_BYTES, budget)
    chunks, size = [], 0
    with archive.open(info) as member:
        while chunk := member.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise _bomb(info.filename)
            chunks.append(chunk)
    if size != info.file_size:
        raise BadInputError(
            f"{info.filename} in the zip holds {size} bytes where its header says {info.file_size}, "
            "so the zip is damaged; zip the class folders again and retry."
        )
    return b"".join(chunks)


def _check_classes(counts: dict[str, int], min_per_class: int) -> None:
    if len(counts) < 2:
        found = "no class folder" if not counts else f"only one class folder ({next(iter(counts))})"
        raise BadInputError(
            f"The zip has {found} with images; put each class's images in its own folder "
            "(cat/…, dog/…), at least two classes."
        )
    short = {name: count for name, count in sorted(counts.items()) if count < min_per_class}
    if short:
        listed = ", ".join(f"{name}: {count}" for name, count in list(short.items())[:5])
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        raise BadInputError(
            f"Too few images in {len(short)} of the zip's classes ({listed}{more}); "
            f"each class needs at least {min_per_class}."
        )


def _safe_name(name: str) -> str:
    """A folder name made of the upload's name: letters, digits, `.-_`, at most 40 characters."""
    stem = Path(str(name)).name
    stem = stem[: -len(".zip")] if stem.lower().endswith(".zip") else stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:40] or "upload"


def _seekable(data: bytes | IO[bytes]) -> IO[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(data))
    data.seek(0)
    return data


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


@contextlib.contextmanager
def _temporary_folder(parent: Path):
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, target: Path) -> None:
    """Rename the finished folder into place; the same zip imported before is kept as it is."""
    if target.is_dir():
        return
    try:
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():  # not merely a concurrent import of the same zip
            raise
