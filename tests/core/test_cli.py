"""The command line as a person uses it: real subprocesses, a generated Oxford-style folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import REPO, write_oxford_images

ROOT = REPO
TINY = ["--weights", "none", "--backbone", "mobilenetv3small", "--image-size", "32"]


def petlab(*args: str, workspace: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | {"PETLAB_WORKSPACE": str(workspace)}
    result = subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One head run and one fine-tuning run, trained through the CLI once for the module."""
    base = tmp_path_factory.mktemp("cli")
    images = write_oxford_images(base / "images")
    workspace = base / "workspace"
    head = petlab("train", "--source", "oxford-files", "--path", str(images), *TINY, "--epochs", "2",
                  workspace=workspace)  # fmt: skip
    head_id = int(head.stdout.strip().splitlines()[-1].removeprefix("run: "))
    fine = petlab(
        "finetune", "--from", str(head_id), "--epochs", "1", "--unfreeze", "10", workspace=workspace
    )
    fine_id = int(fine.stdout.strip().splitlines()[-1].removeprefix("run: "))
    return {"images": images, "workspace": workspace, "head": head, "head_id": head_id, "fine": fine,
            "fine_id": fine_id}  # fmt: skip


def test_data_prints_classes_and_split_sizes(tmp_path) -> None:
    images = write_oxford_images(tmp_path / "images")
    out = petlab("data", "--source", "oxford-files", "--path", str(images), workspace=tmp_path / "ws").stdout
    lines = dict(line.split(": ") for line in out.strip().splitlines())
    assert lines["classes"] == "3"
    sizes = {split: int(lines[split]) for split in ("train", "validation", "test")}
    assert sum(sizes.values()) == 30 and min(sizes.values()) > 0


def test_train_prints_a_line_per_epoch_and_ends_with_run_id(trained) -> None:
    lines = trained["head"].stdout.strip().splitlines()
    assert lines[-1] == f"run: {trained['head_id']}"
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
    assert "val_accuracy" in epoch_lines[0]


def test_finetune_has_the_head_run_as_parent(trained) -> None:
    assert trained["fine"].stdout.strip().splitlines()[-1] == f"run: {trained['fine_id']}"
    runs = json.loads(petlab("runs", "--json", workspace=trained["workspace"]).stdout)
    by_id = {run["id"]: run for run in runs}
    fine = by_id[trained["fine_id"]]
    assert fine["kind"] == "finetune" and fine["parent"] == trained["head_id"] and fine["status"] == "done"
    for run in runs:
        assert {
            "id",
            "kind",
            "parent",
            "status",
            "created",
            "best_val_accuracy",
            "test_accuracy",
        } <= run.keys()
        assert 0.0 <= run["test_accuracy"] <= 1.0 and 0.0 <= run["best_val_accuracy"] <= 1.0


def test_artifacts_are_complete_and_load_in_safe_mode(trained) -> None:
    run_dir = trained["workspace"] / "runs" / str(trained["head_id"])
    for name in ("model.keras", "class_names.json", "config.json", "history.json", "evaluation.json"):
        assert (run_dir / name).is_file(), name
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    assert model.output_shape == (None, 3)
    assert json.loads((run_dir / "class_names.json").read_text()) == ["Abyssinian", "beagle", "Bengal"]
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))  # tensorboard --logdir works
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]


def test_evaluate_prints_and_writes_the_full_evaluation(trained) -> None:
    out = petlab("evaluate", "--run", str(trained["fine_id"]), workspace=trained["workspace"]).stdout
    values = dict(line.rsplit(": ", 1) for line in out.strip().splitlines() if line.startswith("test "))
    assert set(values) == {"test loss", "test accuracy", "test top-5 accuracy"}
    report = json.loads(
        (trained["workspace"] / "runs" / str(trained["fine_id"]) / "evaluation.json").read_text()
    )
    assert float(values["test accuracy"]) == pytest.approx(report["accuracy"], abs=1e-4)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == report["count"] > 0
    assert len(report["per_class"]) == 3


def test_predict_prints_top_k_sorted_probabilities(trained) -> None:
    photo = trained["images"] / "Bengal_3.jpg"  # a CMYK JPEG
    out = petlab("predict", "--run", str(trained["fine_id"]), "--top", "3", str(photo),
                 workspace=trained["workspace"]).stdout  # fmt: skip
    rows = [line.rsplit(" ", 1) for line in out.strip().splitlines()]
    assert len(rows) == 3
    assert {name for name, _ in rows} == {"Abyssinian", "Bengal", "beagle"}
    probabilities = [float(p) for _, p in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--run", "999", "x.jpg"],
        ["train", "--backbone", "vgg99", "--source", "folder", "--path", "."],
        ["train", "--source", "folder", "--path", "/nonexistent/folder", "--weights", "none"],
        ["train", "--augment", "spin=3", "--source", "folder", "--path", "."],
        ["finetune", "--from", "999"],
        ["train", "--epochs", "many"],
        ["evaluate"],
    ],
)
def test_bad_input_exits_2_with_one_line(args, tmp_path) -> None:
    result = petlab(*args, workspace=tmp_path / "ws", check=False)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_predict_on_a_bad_file_exits_2_with_one_line(trained, tmp_path) -> None:
    fake = tmp_path / "cat.jpg"
    fake.write_text("<html>not a photo</html>")
    result = petlab("predict", "--run", str(trained["head_id"]), str(fake), workspace=trained["workspace"],
                    check=False)  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "cat.jpg" in result.stderr
