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

from core import cli
from core import config as cfg
from core.errors import OfflineError
from core.runs.layout import RunPaths
from core.runs.store import RunStore
from tests.conftest import REPO, write_oxford_images
from tests.core.inference import known_answers as known
from tests.core.inference.known_answers import assert_matches_the_hand_answers

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
    source = ["--source", "oxford-files", "--path", str(images)]
    head = petlab("train", *source, *TINY, "--epochs", "2", workspace=workspace)
    head_id = int(head.stdout.strip().splitlines()[-1].removeprefix("run: "))
    fine = petlab(
        "finetune", "--from", str(head_id), "--epochs", "1", "--unfreeze", "10", workspace=workspace
    )
    fine_id = int(fine.stdout.strip().splitlines()[-1].removeprefix("run: "))
    return {
        "images": images,
        "workspace": workspace,
        "head": head,
        "head_id": head_id,
        "fine": fine,
        "fine_id": fine_id,
    }


def test_data_prints_classes_and_split_sizes(tmp_path) -> None:
    images = write_oxford_images(tmp_path / "images")
    out = petlab("data", "--source", "oxford-files", "--path", str(images), workspace=tmp_path / "ws").stdout
    lines = dict(line.split(": ") for line in out.strip().splitlines())
    assert lines["classes"] == "3"
    # By hand, per breed of 10 images: test 20% = 2, validation round(10% of 8) = 1, train 7.
    assert {split: int(lines[split]) for split in ("train", "validation", "test")} == {
        "train": 21,
        "validation": 3,
        "test": 6,
    }


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
    paths = RunPaths.of(trained["workspace"], trained["head_id"])
    for path in (paths.model, paths.class_names, paths.config, paths.history, paths.evaluation):
        assert path.is_file(), path.name
    model = keras.saving.load_model(paths.model, safe_mode=True)
    assert model.output_shape == (None, 3)
    assert json.loads(paths.class_names.read_text()) == ["Abyssinian", "beagle", "Bengal"]
    assert list(paths.tensorboard.rglob("events.out.tfevents.*"))  # tensorboard --logdir works
    history = json.loads(paths.history.read_text())
    assert [row["epoch"] for row in history] == [1, 2]


def test_evaluate_prints_and_writes_the_full_evaluation(trained) -> None:
    out = petlab("evaluate", "--run", str(trained["fine_id"]), workspace=trained["workspace"]).stdout
    values = dict(line.rsplit(": ", 1) for line in out.strip().splitlines() if line.startswith("test "))
    assert set(values) == {"test loss", "test accuracy", "test top-5 accuracy"}
    report = json.loads(RunPaths.of(trained["workspace"], trained["fine_id"]).evaluation.read_text())
    assert float(values["test accuracy"]) == pytest.approx(report["accuracy"], abs=1e-4)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == report["count"] > 0
    assert len(report["per_class"]) == 3


def test_predict_prints_top_k_sorted_probabilities(trained) -> None:
    photo = trained["images"] / "Bengal_3.jpg"  # a CMYK JPEG
    args = ["predict", "--run", str(trained["fine_id"]), "--top", "3", str(photo)]
    out = petlab(*args, workspace=trained["workspace"]).stdout
    rows = [line.rsplit(" ", 1) for line in out.strip().splitlines()]
    assert len(rows) == 3
    assert {name for name, _ in rows} == {"Abyssinian", "Bengal", "beagle"}
    probabilities = [float(p) for _, p in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=2e-3)


def test_evaluate_reports_the_hand_computed_numbers(tmp_path) -> None:
    """Catches `evaluate` printing, storing or registering other numbers than the textbook ones.

    The run's model outputs known probabilities (tests/core/inference/known_answers.py), so its
    accuracy, top-5, loss, confusion matrix and per-class scores are known without PetLab's code.
    """
    workspace = tmp_path / "workspace"
    run_id = known.write_known_run(workspace, tmp_path / "known")
    out = petlab("evaluate", "--run", str(run_id), workspace=workspace).stdout
    printed = dict(line.rsplit(": ", 1) for line in out.strip().splitlines() if line.startswith("test "))
    assert printed == {
        "test loss": f"{known.LOSS:.4f}",
        "test accuracy": "0.6000",
        "test top-5 accuracy": "0.9000",
    }
    assert_matches_the_hand_answers(json.loads(RunPaths.of(workspace, run_id).evaluation.read_text()))
    metrics = RunStore(workspace).get(run_id).metrics
    assert (metrics["test_accuracy"], metrics["test_top5_accuracy"], metrics["test_count"]) == (0.6, 0.9, 10)


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
    args = ["predict", "--run", str(trained["head_id"]), str(fake)]
    result = petlab(*args, workspace=trained["workspace"], check=False)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "cat.jpg" in result.stderr


def test_predict_csv_writes_every_photo_of_a_folder_and_lists_the_unreadable(trained, tmp_path) -> None:
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for name in ("Bengal_3.jpg", "Abyssinian_1.jpg"):
        (folder / "nested" / name).write_bytes((trained["images"] / name).read_bytes())
    (folder / "broken.jpg").write_text("<html>not a photo</html>")
    out = tmp_path / "out.csv"
    args = ["predict", "--run", str(trained["head_id"]), "--top", "2", "--csv", str(out), str(folder)]
    result = petlab(*args, workspace=trained["workspace"])
    lines = out.read_text().splitlines()
    assert lines[0] == "file,class_1,prob_1,class_2,prob_2"
    assert sorted(line.split(",")[0] for line in lines[1:]) == [
        "nested/Abyssinian_1.jpg",
        "nested/Bengal_3.jpg",
    ]
    named = [line for line in result.stderr.splitlines() if line.startswith(("broken.jpg", "nested/"))]
    assert len(named) == 1 and named[0].startswith("broken.jpg: ")  # progress lines aside
    empty = tmp_path / "empty"
    empty.mkdir()
    args[-1], args[-2] = str(empty), str(tmp_path / "none.csv")
    failed = petlab(*args, workspace=trained["workspace"], check=False)
    assert failed.returncode == 1 and not (tmp_path / "none.csv").exists()


# -- exit codes, in process (no TensorFlow needed to refuse bad input) -----------------------------


def main_exit_code(argv: list[str]) -> int:
    """cli.main's exit code, also when the parser exits (a usage error)."""
    try:
        return cli.main(argv)
    except SystemExit as exit_info:
        return int(exit_info.code)


@pytest.fixture
def done_run(tmp_path) -> tuple[Path, int]:
    """A workspace with one done head run (whose files are missing: it shows as broken)."""
    store = RunStore(tmp_path / "ws")
    run_id = store.create("head", {"train": {"backbone": "mobilenetv3small"}}, status="done")
    return tmp_path / "ws", run_id


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--run", "999", "x.jpg"],
        ["evaluate", "--run", "999"],
        ["export", "--run", "999", "--format", "keras"],
        ["resume", "--run", "999"],
        ["cancel", "999"],
        ["finetune", "--from", "999"],
        ["finetune", "--from", "{done}", "--unfreeze", "some"],
        ["finetune", "--from", "{done}", "--unfreeze", "0"],
        ["finetune", "--from", "{done}", "--batch-size", "0"],
        ["finetune", "--from", "{done}"],  # its model is gone
        ["resume", "--run", "{done}"],
        ["cancel", "{done}"],
        ["train", "--backbone", "vgg99", "--source", "folder", "--path", "."],
        ["train", "--dropout", "1.5", "--source", "folder", "--path", "."],
        ["train", "--lr", "0", "--source", "folder", "--path", "."],
        ["train", "--seed", "-1", "--source", "folder", "--path", "."],
        ["train", "--patience", "-2", "--source", "folder", "--path", "."],
        ["train", "--image-size", "16", "--source", "folder", "--path", "."],
        ["train", "--augment", "spin=3", "--source", "folder", "--path", "."],
        ["predict", "--run", "{done}", "--top", "0", "x.jpg"],
        ["export", "--run", "{done}", "--format", "onnx"],
        ["worker", "--linger", "soon"],
        ["runs", "--bogus"],
    ],
)
def test_bad_input_exits_2_in_process(args, done_run, capsys) -> None:
    workspace, done = done_run
    argv = [arg.format(done=done) for arg in args] + ["--workspace", str(workspace)]
    assert main_exit_code(argv) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("argv", [[], ["bogus"], ["train", "--epochs"]])
def test_usage_errors_exit_2(argv, capsys) -> None:
    assert main_exit_code(argv) == cli.EXIT_BAD_INPUT
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_damaged_registry_exits_1(tmp_path, capsys) -> None:
    (tmp_path / "runs.db").write_bytes(b"this is not sqlite" * 100)
    assert main_exit_code(["runs", "--workspace", str(tmp_path)]) == cli.EXIT_FAILED
    assert "is damaged" in capsys.readouterr().err


def ends_elsewhere(status: str, error: str | None = None):
    """A stand-in for run_queue: another process ends the run while this command waits for it."""

    def run_queue(store, until, **_) -> None:
        if status == "cancelled":
            store.request_cancel(until)
        else:
            store.start(until)
            store.finish(until, status, error=error)

    return run_queue


def raises(exc: BaseException):
    def run_queue(store, until, **_) -> None:
        raise exc

    return run_queue


@pytest.mark.parametrize(
    ("run_queue", "message"),
    [
        (ends_elsewhere("cancelled"), "was cancelled before it finished"),
        (ends_elsewhere("failed", "The disk is full; free space, then resume the run."), "disk is full"),
        (raises(OfflineError("The weights cannot be downloaded (no network); connect.")), "no network"),
        (raises(KeyboardInterrupt()), "interrupted"),
    ],
    ids=["cancelled", "failed-elsewhere", "offline", "ctrl-c"],
)
def test_a_run_that_does_not_finish_exits_1(run_queue, message, tmp_path, monkeypatch, capsys) -> None:
    from core.training import worker

    monkeypatch.setattr(worker, "run_queue", run_queue)
    argv = [
        "train",
        "--source",
        "folder",
        "--path",
        str(tmp_path),
        *TINY,
        "--workspace",
        str(tmp_path / "ws"),
    ]
    assert main_exit_code(argv) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_device_names_the_device_and_notes_it_for_the_dashboard(tmp_path) -> None:
    """Catches: the dashboard's sidebar having nothing to show, since the server never asks TensorFlow."""
    from core.runs.worker_process import recorded_device

    workspace = tmp_path / "workspace"
    result = petlab("device", workspace=workspace)
    assert result.stdout.strip() == f"CPU ({os.cpu_count()} cores)"  # no GPU on the test machines
    assert recorded_device(workspace) == result.stdout.strip()


@pytest.mark.parametrize(("flags", "cached"), [([], True), (["--no-feature-cache"], False)])
def test_no_feature_cache_reaches_the_queued_run(flags, cached, class_folders, tmp_path, monkeypatch) -> None:
    """Catches: `train --no-feature-cache` being parsed but never reaching the run's config."""
    from core.training import worker

    seen: list[bool] = []

    def run_queue(store, until, **_) -> None:
        seen.append(store.get(until).train.feature_cache)
        store.request_cancel(until)  # end it without training

    monkeypatch.setattr(worker, "run_queue", run_queue)
    argv = ["train", "--source", "folder", "--path", str(class_folders), "--workspace", str(tmp_path), *flags]
    assert main_exit_code(argv) == cli.EXIT_FAILED  # cancelled before it finished
    assert seen == [cached]


def test_cancel_stops_a_queued_run_and_refuses_a_finished_one(tmp_path, capsys) -> None:
    """Catches: `cancel` printing success without flagging the run, or cancelling a finished run."""
    from core.runs.requests import queue_head_run

    store = RunStore(tmp_path)
    data = cfg.DataConfig(source="folder", path=str(tmp_path))
    run_id = queue_head_run(store, data, cfg.TrainConfig())
    assert main_exit_code(["cancel", str(run_id), "--workspace", str(tmp_path)]) == cli.EXIT_OK
    assert capsys.readouterr().out.strip() == f"cancel requested: run {run_id}"
    record = store.get(run_id)
    assert (record.status, record.cancel_requested) == ("cancelled", True)
    assert main_exit_code(["cancel", str(run_id), "--workspace", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    assert "only queued or running runs can be cancelled" in capsys.readouterr().err


def loads_tensorflow(*args: str, workspace: Path) -> tuple[int, bool]:
    """(exit code of `python -m core <args>`, whether TensorFlow was imported by then)."""
    script = f"""
import json, runpy, sys
sys.argv = ["core", *{list(args)!r}]
try:
    runpy.run_module("core", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print(json.dumps([code, "tensorflow" in sys.modules]))
"""
    env = os.environ | {"PETLAB_WORKSPACE": str(workspace)}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    code, loaded = json.loads(result.stdout.strip().splitlines()[-1])
    return code, loaded


def test_the_command_line_reads_its_arguments_before_loading_tensorflow(tmp_path):
    """A typo, `runs` and `cancel` answer at once: TensorFlow (seconds to import) loads only for commands
    that use it, once their arguments are valid."""
    assert loads_tensorflow("runs", workspace=tmp_path) == (0, False)
    assert loads_tensorflow("train", "--epochs", "0", workspace=tmp_path) == (2, False)
    assert loads_tensorflow("cancel", "7", workspace=tmp_path) == (2, False)  # no such run
    assert loads_tensorflow("evaluate", "--run", "7", workspace=tmp_path) == (2, True)  # control
