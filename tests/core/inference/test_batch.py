"""Batch prediction (core/inference/batch.py, core/tables/predictions.py): a folder or zip in, a CSV out."""

from __future__ import annotations

import csv
import io
import math
import zipfile
from pathlib import Path

import pytest

import core.predictions.answers
from core.errors import BadInputError, NotFoundError
from core.inference.batch import predict_folder, write_predictions_csv
from core.inference.predict import Predictor
from core.runs.store import RunStore
from core.tables.predictions import columns, predictions_csv, table_rows
from tests.conftest import PET_BREEDS, save_image

READABLE = ["Bengal.png", "cats/a.jpg", "cats/deep/b.JPG", "dogs/c.webp"]
BROKEN = "cats/broken.jpg"


@pytest.fixture
def predictor(trained_copy) -> Predictor:
    return Predictor.for_run(RunStore(trained_copy), 1)


@pytest.fixture
def photos(tmp_path) -> Path:
    """Nested photos, a broken .jpg, a text file and a hidden image (the last two are not photos)."""
    folder = tmp_path / "photos"
    save_image(folder / "Bengal.png", PET_BREEDS["Bengal"], fmt="PNG")
    save_image(folder / "cats" / "a.jpg", PET_BREEDS["Abyssinian"])
    save_image(folder / "cats" / "deep" / "b.JPG", PET_BREEDS["Persian"])
    save_image(folder / "dogs" / "c.webp", PET_BREEDS["pug"], fmt="WEBP")
    (folder / BROKEN).write_bytes(b"not an image at all")
    (folder / "dogs" / "notes.txt").write_text("not a photo")
    save_image(folder / ".hidden" / "x.jpg", (0, 0, 0))
    return folder


def zipped(folder: Path) -> bytes:
    """The folder as a zip (under one top folder), with macOS junk beside it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"photos/{path.relative_to(folder).as_posix()}")
        archive.writestr("__MACOSX/photos/._Bengal.png", b"\x00\x05\x16\x07")
    return buffer.getvalue()


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_a_folder_gives_one_row_per_readable_photo_and_lists_the_unreadable(predictor, photos):
    seen = []
    result = predict_folder(predictor, photos, top_k=5, progress=lambda *call: seen.append(call))
    header, *rows = read_csv(predictions_csv(result))
    assert header == ["file"] + [f"{kind}_{k}" for k in range(1, 6) for kind in ("class", "prob")]
    assert [row[0] for row in rows] == READABLE
    for row in rows:
        classes, probs = row[1::2], [float(p) for p in row[2::2]]
        assert len(set(classes)) == 5 and set(classes) <= set(PET_BREEDS)
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
        assert all(len(p.split(".")[-1]) <= 4 for p in row[2::2])  # rounded to 4 decimals
    ((file, reason),) = result.unreadable
    assert file == BROKEN and reason.startswith("broken.jpg is") and reason.endswith(".")
    assert seen[0] == ("predicting", 0, 5) and seen[-1] == ("predicting", 5, 5)


def test_a_photo_gets_the_same_answer_as_on_its_own(predictor, photos):
    result = predict_folder(predictor, photos, top_k=3)
    alone = predictor.predict_image(photos / "cats" / "a.jpg", 3)
    row = dict(result.rows)["cats/a.jpg"]
    assert [c for c, _ in row] == [c for c, _ in alone.top]
    assert [p for _, p in row] == pytest.approx([p for _, p in alone.top], abs=1e-5)
    assert table_rows(result)[1][:3] == ["cats/a.jpg", alone.top[0][0], round(alone.top[0][1], 4)]


def test_a_zip_gives_the_same_rows_as_the_folder_without_unpacking(predictor, photos, tmp_path, monkeypatch):
    from_folder = predict_folder(predictor, photos, top_k=5)
    archive = tmp_path / "photos.zip"
    archive.write_bytes(zipped(photos))
    monkeypatch.setattr(zipfile.ZipFile, "extract", lambda *a, **k: pytest.fail("unpacked"))
    monkeypatch.setattr(zipfile.ZipFile, "extractall", lambda *a, **k: pytest.fail("unpacked"))
    for source in (archive, io.BytesIO(archive.read_bytes())):  # a file, and an upload
        result = predict_folder(predictor, source, top_k=5)
        assert [f.removeprefix("photos/") for f, _ in result.rows] == READABLE
        assert [row[1:] for row in table_rows(result)] == [row[1:] for row in table_rows(from_folder)]
        assert result.unreadable == [(f"photos/{BROKEN}", from_folder.unreadable[0][1])]


def test_an_unsafe_zip_is_refused_with_the_zip_imports_checks(predictor, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../escape.jpg", b"x")
    with pytest.raises(BadInputError, match="leads outside its folder"):
        predict_folder(predictor, buffer)


def test_a_source_that_is_neither_folder_nor_zip_is_one_sentence(predictor, tmp_path):
    (tmp_path / "photo.txt").write_text("hello")
    with pytest.raises(BadInputError, match="neither a folder nor a readable zip"):
        predict_folder(predictor, tmp_path / "photo.txt")
    with pytest.raises(NotFoundError, match="does not exist"):
        predict_folder(predictor, tmp_path / "nowhere")


def test_photos_go_through_the_model_in_batches_with_progress(predictor, tmp_path, monkeypatch):
    monkeypatch.setattr(core.predictions.answers, "MAX_BATCH", 4)
    for number in range(9):
        save_image(tmp_path / "many" / f"{number}.jpg", (20 * number, 100, 100))
    batches, seen = [], []
    real = predictor.probabilities
    monkeypatch.setattr(predictor, "probabilities", lambda x: batches.append(len(x)) or real(x))
    result = predict_folder(predictor, tmp_path / "many", top_k=2, progress=lambda *call: seen.append(call))
    assert len(batches) == math.ceil(9 / 4) and batches == [4, 4, 1]
    assert result.predicted == 9 and result.top_k == 2
    assert seen == [("predicting", done, 9) for done in (0, 4, 8, 9)]


def test_the_command_writes_the_csv_and_lists_unreadable_files_on_stderr(
    trained_copy, photos, tmp_path, capsys
):
    said = []
    out = tmp_path / "out.csv"
    count = write_predictions_csv(RunStore(trained_copy), 1, photos, out, 3, say=said.append)
    assert count == 4
    header, *rows = read_csv(out.read_text())
    assert header == columns(3) == ["file", "class_1", "prob_1", "class_2", "prob_2", "class_3", "prob_3"]
    assert [row[0] for row in rows] == READABLE
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith(BROKEN)]
    assert len(err_lines) == 1 and err_lines[0].startswith(f"{BROKEN}: broken.jpg is")
    assert said and "4 photos" in said[0]


def test_the_command_predicts_nothing_when_no_photo_can_be_read(trained_copy, tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"")
    out = tmp_path / "out.csv"
    assert write_predictions_csv(RunStore(trained_copy), 1, tmp_path / "bad", out, 5, say=print) == 0
    assert not out.exists()
    assert "a.jpg: a.jpg is empty" in capsys.readouterr().err
