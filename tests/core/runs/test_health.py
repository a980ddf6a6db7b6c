"""Tests for the cheap check of a finished run's files (core/runs/health.py) and the run layout."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from core.errors import PetLabError
from core.runs.health import artifact_problem
from core.runs.layout import EXPORT_FORMATS, RunPaths


def healthy_run(workspace: Path, run_id: int = 7) -> RunPaths:
    """A run folder holding a plausible (never loaded) Keras file and class names."""
    paths = RunPaths.of(workspace, run_id)
    paths.create()
    with zipfile.ZipFile(paths.model, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"")
    paths.class_names.write_text(json.dumps(["cat", "dog"]), encoding="utf-8")
    return paths


def test_a_complete_run_has_no_problem(tmp_path: Path) -> None:
    assert artifact_problem(7, healthy_run(tmp_path)) is None


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda p: shutil.rmtree(p.folder), "its folder"),
        (lambda p: p.model.unlink(), "its model.keras was deleted"),
        (lambda p: p.model.write_text("not a zip"), "its model.keras is damaged"),
        (lambda p: p.class_names.write_text("[]"), "its class_names.json is missing or damaged"),
        (lambda p: p.class_names.unlink(), "its class_names.json is missing or damaged"),
    ],
)
def test_damage_is_one_sentence(tmp_path: Path, damage, expected: str) -> None:
    paths = healthy_run(tmp_path)
    damage(paths)
    problem = artifact_problem(7, paths)
    assert problem is not None and problem.startswith("Run 7 is broken: ") and expected in problem
    assert problem.count(". ") == 0 and problem.endswith("backup).")


def test_export_files_live_in_the_export_folder(tmp_path: Path) -> None:
    paths = RunPaths.of(tmp_path, 3)
    assert {fmt: paths.export_model(fmt).name for fmt in EXPORT_FORMATS} == {
        "keras": "model.keras",
        "savedmodel": "savedmodel",
        "tflite": "model.tflite",
    }
    assert paths.export_model("tflite", quantize=True) == paths.exports / "model_quantized.tflite"
    assert paths.export_labels == tmp_path / "runs" / "3" / "export" / "labels.txt"
    assert not (tmp_path / "runs").exists()  # building paths creates nothing


def test_a_run_folder_that_cannot_be_made_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "4").write_text("a file where the run folder should be")
    with pytest.raises(PetLabError, match=r"The run folder .* cannot be created \("):
        RunPaths.of(tmp_path, 4).create()


@pytest.mark.parametrize("kind", ["sweep", "member", "lr_find"])
def test_experiments_keep_no_model_so_are_never_broken(tmp_path: Path, kind: str) -> None:
    """Catches a finished sweep, member or finder pass listed as broken for the model it never had."""
    from core.runs.store import RunStore

    store = RunStore(tmp_path)
    experiment = store.create(kind, {}, status="done")
    head = store.create("head", {}, status="done")  # the control: a head run without its model is broken
    assert store.get(experiment).broken is None and store.get(experiment).shown_status == "done"
    assert store.get(head).broken is not None
