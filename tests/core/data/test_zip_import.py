"""Importing a zip of class folders (core.data.zip_import), and the Dataset page's zip upload.

Zips are built in memory with zipfile; the unsafe ones (zip-slip, symlinks, zip
bombs, encryption, lying headers) must be refused before anything lands in the
workspace.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from core.data import open_source
from core.data import zip_import as zi
from core.data.zip_import import import_zip
from core.errors import BadInputError

COLORS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "rabbit": (40, 40, 200)}


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (24, 18)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_zip(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def class_files(counts: dict[str, int], top: str = "") -> dict[str, bytes]:
    return {
        f"{top}{name}/{name}{number:02d}.jpg": jpeg(COLORS[name])
        for name, count in counts.items()
        for number in range(count)
    }


GOOD = {"cat": 7, "dog": 6, "rabbit": 5}


def uploads(workspace: Path) -> list[str]:
    """Everything in the uploads folder, leftovers of failed imports included."""
    folder = workspace / zi.UPLOADS
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def refused(workspace: Path, data: bytes, match: str) -> str:
    with pytest.raises(BadInputError, match=match) as info:
        import_zip(data, workspace, "pets.zip")
    assert uploads(workspace) == []  # nothing published, no temporary folder left behind
    message = str(info.value)
    assert "\n" not in message and message.count(". ") == 0 and message.endswith(".")
    return message


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "workspace"


# -- good zips -------------------------------------------------------------------------------


def test_a_zip_of_three_class_folders_becomes_a_folder_source(workspace):
    calls = []
    report = import_zip(
        make_zip(class_files(GOOD)), workspace, "My pets!.zip", progress=lambda *a: calls.append(a)
    )
    assert report.class_counts == GOOD and report.images == 18 and report.skipped == []
    assert report.path.parent == workspace / "datasets" / "uploads"
    assert report.path.name.startswith("My_pets-")
    assert calls[-1] == (zi.STAGE, 18, 18)

    source = open_source("folder", report.path, workspace=workspace)
    assert source.class_names == ["cat", "dog", "rabbit"]
    assert sum(source.describe()["sizes"].values()) == 18
    image, _ = source.load("train", 0)
    assert image.shape == (18, 24, 3) and image.dtype.name == "uint8"

    # The same zip again: the same folder, imported once.
    again = import_zip(make_zip(class_files(GOOD)), workspace, "My pets!.zip")
    assert again.path == report.path and uploads(workspace) == [report.path.name]


def test_class_folders_under_one_top_folder_and_from_a_file_object(workspace):
    data = make_zip(class_files(GOOD, top="pets/"))
    report = import_zip(io.BytesIO(data), workspace, "pets.zip")
    assert report.class_counts == GOOD
    assert sorted(p.name for p in report.path.iterdir()) == ["cat", "dog", "rabbit"]


def test_non_images_are_skipped_and_counted_and_system_junk_ignored(workspace):
    files = class_files(GOOD, top="pets/") | {
        "pets/cat/notes.txt": b"not an image",
        "pets/dog/broken.jpg": b"\xff\xd8\xff garbage",
        "pets/readme.md": b"# my pets",
        "pets/cat/sub/extra.png": jpeg((1, 2, 3)),  # a sub-folder inside a class counts for the class
        "__MACOSX/pets/cat/._cat00.jpg": b"\x00\x05\x16\x07",
        "pets/.DS_Store": b"junk",
        "pets/dog/Thumbs.db": b"junk",
    }
    report = import_zip(make_zip(files), workspace, "pets.zip")
    assert report.class_counts == {"cat": 8, "dog": 6, "rabbit": 5}
    assert sorted(report.skipped) == ["pets/cat/notes.txt", "pets/dog/broken.jpg", "pets/readme.md"]
    assert not (report.path / "dog" / "broken.jpg").exists()
    assert (report.path / "cat" / "sub" / "extra.png").is_file()


# -- what a zip needs ------------------------------------------------------------------------


def test_one_class_is_not_enough(workspace):
    message = refused(workspace, make_zip(class_files({"cat": 6})), "at least two classes")
    assert "only one class folder (cat)" in message


def test_a_zip_of_loose_photos_names_the_layout_it_needs(workspace):
    refused(workspace, make_zip({f"a{n}.jpg": jpeg((9, 9, 9)) for n in range(6)}), "no class folder")


def test_too_few_images_per_class_names_the_short_classes(workspace):
    message = refused(workspace, make_zip(class_files({"cat": 6, "dog": 2, "rabbit": 1})), "at least 5")
    assert "dog: 2" in message and "rabbit: 1" in message and "cat" not in message


def test_not_a_zip(workspace):
    refused(workspace, b"this is no zip", "cannot be read as a zip")


# -- unsafe zips -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../evil.jpg", "cat/../../evil.jpg", "/etc/x.jpg", "C:/evil.jpg", "..\\evil.jpg"]
)
def test_member_paths_leading_out_are_refused(workspace, tmp_path, name):
    files = class_files(GOOD) | {name: jpeg((1, 1, 1))}
    refused(workspace, make_zip(files), "leads outside its folder")
    assert not (tmp_path / "evil.jpg").exists() and not (workspace / "evil.jpg").exists()


def test_symlink_members_are_refused(workspace):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in class_files(GOOD).items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("cat/link.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    refused(workspace, buffer.getvalue(), "symbolic link")


def test_encrypted_members_are_refused(workspace):
    # zipfile cannot encrypt: set the "encrypted" flag bit in the central directory by hand.
    data = bytearray(make_zip(class_files(GOOD)))
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 8, struct.unpack_from("<H", data, central + 8)[0] | 0x1)
    refused(workspace, bytes(data), "password-protected")


@pytest.fixture
def no_member_read(monkeypatch):
    """Fails the test if any member is opened: the refusal must come from the headers alone."""

    real_open = zipfile.ZipFile.open

    def opened(self, name, mode="r", *args, **kwargs):
        assert mode != "r", "a member was read before the zip was refused"
        return real_open(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", opened)


def test_a_zip_bomb_is_refused_from_its_headers_before_extracting(workspace, no_member_read):
    bomb = make_zip(class_files(GOOD) | {"cat/huge.jpg": bytes(200 * 1024**2)})
    assert len(bomb) < 1024**2  # 200 MB of zeros compress to a few hundred KB
    refused(workspace, bomb, "would unpack to 200 MB")


def test_a_member_compressed_far_more_than_photos_is_refused(workspace, no_member_read):
    bomb = make_zip(class_files(GOOD) | {"dog/flat.png": bytes(5 * 1024**2)})
    refused(workspace, bomb, "possible zip bomb")


def test_the_limits_are_the_documented_ones():
    """Catches a limit loosened (or tightened) in core/data/zip_import.py: the tests below that
    patch a limit only show that it is applied, not what it is."""
    assert zi.MAX_TOTAL_BYTES == 2 * 1024**3  # 2 GB unpacked in all
    assert zi.MAX_MEMBERS == 50_000
    assert zi.MAX_MEMBER_BYTES == 64 * 1024**2  # one file
    assert (zi.MAX_RATIO, zi.RATIO_CHECK_BYTES) == (100, 1024**2)  # 100:1 for a member of 1 MB or more


def test_too_many_bytes_or_members_in_all_are_refused(workspace, monkeypatch, no_member_read):
    data = make_zip(class_files(GOOD))
    monkeypatch.setattr(zi, "MAX_TOTAL_BYTES", 5_000)
    refused(workspace, data, "would unpack to more than")
    monkeypatch.setattr(zi, "MAX_TOTAL_BYTES", 2 * 1024**3)
    monkeypatch.setattr(zi, "MAX_MEMBERS", 10)
    refused(workspace, data, "holds 18 entries, more than the 10")


# -- zips whose headers lie, written byte by byte ----------------------------------------------


@dataclass(frozen=True)
class Member:
    """A stored (uncompressed) zip member: its bytes, and what its headers claim about them."""

    name: str
    data: bytes = b""
    declared_size: int | None = None  # the uncompressed size in the headers; None: the truth
    crc: int | None = None  # the CRC-32 in the headers; None: the data's
    compressed_size: int | None = None  # the stored size in the headers; None: the truth

    def header_fields(self) -> tuple[int, int, int]:
        """(CRC-32, compressed size, uncompressed size) as the headers give them."""
        crc = zlib.crc32(self.data) if self.crc is None else self.crc
        stored = len(self.data) if self.compressed_size is None else self.compressed_size
        return crc, stored, len(self.data) if self.declared_size is None else self.declared_size


def hand_built_zip(members: list[Member]) -> bytes:
    """A zip written with struct, so its headers can say anything (zipfile writes only the truth)."""
    out = io.BytesIO()
    central = []
    for member in members:
        name, offset, fields = member.name.encode(), out.tell(), member.header_fields()
        # Local header: signature, version, flags, method 0 (stored), time, date, CRC, sizes, name length.
        out.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, *fields, len(name), 0))
        out.write(name + member.data)
        # Central directory entry: as above, plus comment, disk, attributes and the local header's offset.
        entry = struct.pack(
            "<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, *fields, len(name), 0, 0, 0, 0, 0, offset
        )
        central.append(entry + name)
    start, directory = out.tell(), b"".join(central)
    out.write(directory)
    count = len(members)
    out.write(struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, count, count, len(directory), start, 0))
    return out.getvalue()


def good_members() -> list[Member]:
    return [Member(name, data) for name, data in class_files(GOOD).items()]


def test_a_hand_built_zip_imports(workspace):
    """The control for the lying zips below: with honest headers, hand_built_zip makes a good zip."""
    assert import_zip(hand_built_zip(good_members()), workspace, "pets.zip").class_counts == GOOD


def test_a_header_declaring_more_than_the_data_is_refused_by_petlab(workspace):
    """Catches PetLab trusting a header that lies: zipfile reads the member without complaint
    (its CRC-32 matches), so only PetLab's count of the bytes read can refuse it."""
    photo = jpeg(COLORS["cat"])
    lying = Member("cat/short.jpg", photo, declared_size=len(photo) + 1_000)
    data = hand_built_zip([*good_members(), lying])
    assert zipfile.ZipFile(io.BytesIO(data)).read("cat/short.jpg") == photo  # zipfile: no error
    message = refused(workspace, data, "the zip is damaged")
    size, declared = len(photo), len(photo) + 1_000
    assert message.startswith(f"cat/short.jpg in the zip holds {size} bytes where its header says {declared}")


def test_a_header_declaring_less_than_the_data_yields_only_the_declared_bytes(workspace):
    """Catches more bytes coming out of a member than its header declared (what the size limits
    rest on). zipfile stops there itself, with the CRC-32 of what it returns matching, so this
    holds even without PetLab's own check, which
    test_reading_stops_as_soon_as_a_member_yields_more_than_declared exercises on its own."""
    photo = jpeg(COLORS["cat"])
    padded = Member(
        "cat/padded.jpg", photo + bytes(5 * 1024**2), declared_size=len(photo), crc=zlib.crc32(photo)
    )
    report = import_zip(hand_built_zip([*good_members(), padded]), workspace, "pets.zip")
    assert report.class_counts == {**GOOD, "cat": GOOD["cat"] + 1}
    assert (report.path / "cat" / "padded.jpg").read_bytes() == photo


def test_the_real_limits_refuse_from_the_headers(workspace, no_member_read):
    """Catches the real limits (not patched ones) failing to apply: the headers alone declare
    50,001 members, a member 1 byte over 64 MB, and 33 members of 64 MB (2 GB and 64 MB in all)."""
    too_many = [Member(f"cat/{n}.jpg") for n in range(50_001)]
    refused(workspace, hand_built_zip(too_many), "holds 50001 entries, more than the 50000")
    too_large = [*good_members(), Member("cat/huge.jpg", declared_size=64 * 1024**2 + 1)]
    refused(workspace, hand_built_zip(too_large), "more than the 64 MB allowed")
    # Sizes declared only, each member "stored" at its full size so that no ratio check fires first.
    largest = 64 * 1024**2
    full = [Member(f"cat/{n}.jpg", declared_size=largest, compressed_size=largest) for n in range(33)]
    refused(workspace, hand_built_zip(full), "would unpack to more than 2 GB")


def lie_about_sizes(data: bytes, name: str, size: int) -> bytes:
    """The zip with `name`'s uncompressed size rewritten to `size` in both its headers."""
    out = bytearray(data)
    encoded = name.encode()
    for signature, size_offset, name_offset in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = out.find(signature)
        while start != -1:
            if out[start + name_offset : start + name_offset + len(encoded)] == encoded:
                struct.pack_into("<I", out, start + size_offset, size)
            start = out.find(signature, start + 4)
    return bytes(out)


def test_headers_that_lie_about_the_size_are_caught_while_extracting(workspace):
    """A header declaring less than a deflated member holds, with the CRC-32 of all of it: zipfile
    stops at the declared size and its CRC check refuses the member (the zip library's check)."""
    honest = make_zip(class_files(GOOD) | {"cat/bomb.jpg": bytes(50 * 1024**2)})
    lying = lie_about_sizes(honest, "cat/bomb.jpg", 1_000)
    assert zipfile.ZipFile(io.BytesIO(lying)).getinfo("cat/bomb.jpg").file_size == 1_000
    refused(workspace, lying, "cannot be read as a zip")


def test_reading_stops_as_soon_as_a_member_yields_more_than_declared():
    """Defence in depth, whatever the zip library does with a lying header."""

    class Archive:
        def open(self, info):
            return io.BytesIO(bytes(10 * 1024**2))

    info = zipfile.ZipInfo("cat/bomb.jpg")
    info.file_size = 1_000
    with pytest.raises(BadInputError, match="possible zip bomb"):
        zi.read_member(Archive(), info, zi.MAX_TOTAL_BYTES)


# -- the Dataset page ------------------------------------------------------------------------


@pytest.fixture
def dashboard(tmp_path, monkeypatch) -> tuple[Path, list[Path]]:
    """An empty dashboard workspace, and a record of workers started instead of real ones."""
    from core.runs import worker_process as jobs

    path = tmp_path / "dashboard"
    monkeypatch.setenv("PETLAB_WORKSPACE", str(path))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    spawned: list[Path] = []
    monkeypatch.setattr(jobs, "start_worker", lambda workspace: spawned.append(Path(workspace)) or 4242)
    return path, spawned


def test_an_uploaded_zip_becomes_the_sidebar_folder_and_trains(dashboard):
    from core.runs.store import RunStore
    from tests.apptest import TINY, open_page, start_app, texts

    workspace, spawned = dashboard
    files = class_files(GOOD, top="pets/") | {"pets/notes.txt": b"x", "pets/cat/bad.jpg": b"nope"}
    at = start_app(**TINY)
    at.file_uploader(key="dataset_zip").set_value(("pets.zip", make_zip(files), "application/zip")).run()
    assert not at.exception, at.exception
    assert at.session_state["data_source"] == "folder"
    imported = Path(at.session_state["data_path"])
    assert imported.parent == (workspace / "datasets" / "uploads").resolve()
    (message,) = texts(at.success)
    assert "Imported 18 images in 3 classes (cat 7, dog 6, rabbit 5)" in message
    assert "Skipped 2 files" in message and "pets/notes.txt" in message
    assert str(workspace) not in message  # the server's path is not shown
    assert texts(at.metric)[0] == "3" and not at.error

    open_page(at, "augmentation")
    assert not at.error and len(at.image) == 9
    open_page(at, "training")
    at.button(key="start_head").click().run()
    assert not at.error, texts(at.error)
    (record,) = RunStore(workspace).list()
    assert record.config["data"]["source"] == "folder" and record.config["data"]["path"] == str(imported)
    assert spawned


def test_a_refused_zip_gives_one_sentence_and_keeps_the_sidebar(dashboard):
    from tests.apptest import start_app, texts

    at = start_app()
    bad = make_zip(class_files(GOOD) | {"../evil.jpg": jpeg((1, 1, 1))})
    at.file_uploader(key="dataset_zip").set_value(("evil.zip", bad, "application/zip")).run()
    assert not at.exception
    assert any("leads outside its folder" in text for text in texts(at.error))
    assert at.session_state["data_source"] == "tfds"
