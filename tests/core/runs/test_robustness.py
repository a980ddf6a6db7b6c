"""Robustness: a person closes the laptop mid-run, opens two tabs, shares a GPU box.

One test per case of the issue; the product either does the right thing or says
clearly what went wrong, never shows a traceback, never loses a finished model and
never leaves a run shown as running forever:

- kill -9 mid-epoch: failed as soon as the process is gone, earlier runs intact, resumable from the
  last finished epoch (head on cached features through the CLI; head on images and
  fine-tuning in-process; the backup and early stopping's state itself:
  tests/core/training/test_callbacks.py);
- cancel: tests/core/training/test_worker.py::test_cancel_stops_at_the_next_batch_and_keeps_the_model
  and tests/views/test_training.py::test_training_page_follows_a_running_run_and_cancels_it;
- a run folder or model.keras deleted or damaged by hand: listed as broken;
- disk full / unwritable workspace: a clear error and a consistent registry;
- the Streamlit server restarts during a run: the worker goes on, a new session reattaches;
- two browser sessions: the same runs, one running and the other visibly queued;
  concurrent SQLite writers and claimers: tests/core/runs/test_store.py::test_concurrent_writers
  and ::test_claim_race_exactly_one_wins;
- the runs table downloads as CSV.

Models are tiny (MobileNetV3Small, random weights, 32 px) on a generated folder.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import keras
import pandas as pd
import pytest

from core import config as cfg
from core.cli import main as cli_main
from core.errors import BadInputError, PetLabError
from core.inference.predict import Predictor
from core.runs import worker_process as jobs
from core.runs.layout import RunBackup, registry_file
from core.runs.liveness import process_alive
from core.runs.requests import (
    queue_finetune_run,
    queue_head_run,
    resumable_epoch,
    resume_run,
)
from core.runs.store import STALE_ERROR, RunStore
from core.tables.runs import predictable_runs, runs_csv, runs_frame
from core.training.worker import run_queue
from tests.apptest import open_page, start_app, texts
from tests.conftest import REPO

ROOT = REPO
TINY = {"backbone": "mobilenetv3small", "weights": "none", "image_size": 32}
TINY_ARGS = ["--backbone", "mobilenetv3small", "--weights", "none", "--image-size", "32"]
WAIT_S = 300  # generous: the CI box has two cores shared with other jobs


def quiet(line: str) -> None:
    pass


def petlab(*args: str, workspace: Path) -> subprocess.Popen:
    """Start `python -m core ARGS` on `workspace` (the caller waits)."""
    env = os.environ | {"PETLAB_WORKSPACE": str(workspace)}
    return subprocess.Popen(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(condition, timeout: float = WAIT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def integrity_ok(workspace: Path) -> bool:
    with sqlite3.connect(registry_file(workspace)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.fixture
def workspace(tmp_path, monkeypatch, trained) -> Path:
    """A private copy of the trained workspace (run 1 done), which the dashboard (AppTest) uses too."""
    path = tmp_path / "workspace"
    shutil.copytree(trained, path)
    monkeypatch.setenv("PETLAB_WORKSPACE", str(path))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return path


def photo(pets: Path) -> Path:
    return next((pets / "beagle").iterdir())


# -- kill -9 mid-epoch, and resume ---------------------------------------------------------


def test_kill_9_fails_fast_keeps_earlier_runs_and_resumes(workspace, pets):
    """Catches a killed run shown as running (or lost) and a resume that restarts from epoch 1."""
    store = RunStore(workspace)
    # An epoch on cached features takes about 0.1 s: 60 of them leave seconds between the first
    # backup and the end of the run, for the kill to land in (the resume trains the rest).
    epochs = 60
    args = ["--epochs", str(epochs), "--batch-size", "4", "--patience", "0"]
    proc = petlab("train", "--source", "folder", "--path", str(pets), *TINY_ARGS, *args, workspace=workspace)
    try:
        wait_for(lambda: resumable_epoch(store, 2) >= 1 or proc.poll() is not None, what="epoch 1")
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{err}"
    backed_up = resumable_epoch(store, 2)
    assert 1 <= backed_up < epochs

    # Once the process is gone, the very next read of the registry says failed, in one sentence.
    record = store.get(2)
    assert record.error == STALE_ERROR and record.error.count(". ") == 0 and "resume" in record.error
    assert store.active() is None and integrity_ok(workspace)

    # The earlier run and its model are intact.
    assert store.get(1).status == "done" and not store.get(1).broken
    assert_predicts(store, 1, pets)

    # The dashboard (a fresh session) shows the failure and offers to resume, without a traceback.
    at = start_app()
    open_page(at, "training")
    assert texts(at.error)[0] == f"Run 2 failed: {STALE_ERROR}"
    assert at.button(key="resume_run").label == f"Resume from epoch {backed_up + 1}"

    # `resume` continues after the backed-up epoch; the history keeps the earlier epochs.
    resumed = petlab("resume", "--run", "2", workspace=workspace)
    out, err = resumed.communicate(timeout=WAIT_S * 2)
    assert resumed.returncode == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == "run: 2"
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert epoch_lines[0].startswith(f"epoch {backed_up + 1}/{epochs}:")
    assert len(epoch_lines) == epochs - backed_up
    assert [h["epoch"] for h in store.history(2)] == list(range(1, epochs + 1))
    record = store.get(2)
    assert record.status == "done" and record.error is None and record.metrics["epochs_run"] == epochs
    assert not store.paths(2).backup.exists()  # removed once the run ended normally
    assert_predicts(store, 2, pets)


def crash_at_epoch(store: RunStore, monkeypatch, epoch: int) -> None:
    """Make the training process 'die' right after logging `epoch` (before its backup is written)."""
    real = store.log_epoch

    def log_epoch(run_id, number, metrics, seconds):
        real(run_id, number, metrics, seconds)
        if number == epoch:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(store, "log_epoch", log_epoch)


@pytest.mark.slow
def test_resume_head_training_on_images_and_fine_tuning(workspace, monkeypatch):
    store = RunStore(workspace)
    data = store.get(1).data
    train = cfg.TrainConfig(epochs=3, batch_size=8, patience=0, feature_cache=False, **TINY)
    head = queue_head_run(store, data, train)
    tune = cfg.FinetuneConfig(epochs=3, lr=1e-4, unfreeze="10", batch_size=8, patience=0)
    for queue in (lambda: head, lambda: queue_finetune_run(store, head, tune)):
        run_id = queue()
        with monkeypatch.context() as patch:
            crash_at_epoch(store, patch, 2)
            with pytest.raises(RuntimeError):
                run_queue(store, say=quiet)
        assert store.get(run_id).status == "failed" and resumable_epoch(store, run_id) == 1
        assert resume_run(store, run_id) == 1 and store.get(run_id).status == "queued"
        lines: list[str] = []
        run_queue(store, say=lines.append)
        record = store.get(run_id)
        assert record.status == "done", record.error
        assert [line.split(":")[0] for line in lines if line.startswith("epoch")] == [
            "epoch 2/3",
            "epoch 3/3",
        ]
        assert [h["epoch"] for h in store.history(run_id)] == [1, 2, 3]
        assert record.metrics["epochs_run"] == 3 and 1 <= record.metrics["best_epoch"] <= 3
        assert not store.paths(run_id).backup.exists()
    assert store.get(head + 1).kind == "finetune" and store.get(head + 1).parent == head


def test_only_a_failed_run_with_a_backup_can_be_resumed(workspace):
    store = RunStore(workspace)
    with pytest.raises(BadInputError, match="only a failed run"):
        resume_run(store, 1)  # done
    run_id = store.create("head", store.get(1).config, status="running")
    store.finish(run_id, "failed", error="The data folder is gone.")
    with pytest.raises(BadInputError, match="nothing to resume"):
        resume_run(store, run_id)
    with pytest.raises(BadInputError, match="only a failed run"):
        store.requeue(1)


def test_resume_button_requeues_a_failed_run_with_a_backup(workspace, spawned):
    store = RunStore(workspace)
    run_id = store.create("head", store.get(1).config, status="running")
    store.log_epoch(run_id, 1, {"loss": 1.0, "val_loss": 1.0}, 1.0)
    store.finish(run_id, "failed", error=STALE_ERROR)
    first, second = start_app(), start_app()  # two browser tabs
    open_page(first, "training")
    assert all(button.key != "resume_run" for button in first.button)  # no backup, nothing to resume
    backup = RunBackup(store.paths(run_id).backup)
    backup.epoch_file.parent.mkdir(parents=True)
    backup.epoch_file.write_text('{"epoch": 1}')
    first.run()
    open_page(second, "training")
    first.button(key="resume_run").click().run()
    assert not first.exception and not first.error, texts(first.error)
    record = store.get(run_id)
    assert (record.status, record.error, record.pid) == ("queued", None, None)
    assert [h["epoch"] for h in store.history(run_id)] == [1]  # the logged epochs are kept
    assert spawned == [workspace.resolve()]
    assert [toast.value for toast in first.toast] == [f"Run {run_id} queued to resume after epoch 1"]
    assert any(f"Run {run_id} is queued" in text for text in texts(first.info))

    # The other tab still showed the button; its click is refused in one sentence.
    second.button(key="resume_run").click().run()
    assert texts(second.error) == [f"Run {run_id} is queued; only a failed run can be resumed."]
    assert spawned == [workspace.resolve()] and store.get(run_id).status == "queued"


# -- broken runs -----------------------------------------------------------------------------


def test_deleted_or_damaged_runs_are_listed_as_broken(workspace, pets, capsys):
    store = RunStore(workspace)
    for run_id in (2, 3, 4, 5):
        shutil.copytree(store.paths(1).folder, store.paths(run_id).folder)
        assert store.create("head", store.get(1).config, status="done") == run_id
    # Run 2 looks like a Keras file to the cheap check, but its contents are junk.
    with zipfile.ZipFile(store.paths(2).model, "w") as archive:
        archive.writestr("config.json", "{not json")
        archive.writestr("model.weights.h5", b"junk")
    store.paths(3).model.unlink()
    store.paths(4).model.write_bytes(b"garbage, not a zip")
    shutil.rmtree(store.paths(5).folder)

    broken = {r.id: r.broken for r in store.list() if r.broken}
    assert set(broken) == {3, 4, 5}
    assert "model.keras was deleted" in broken[3] and "damaged" in broken[4] and "folder" in broken[5]
    assert store.get(4).shown_status == "broken" and store.get(1).broken is None

    # The command line lists them as broken, with the reason (text and JSON).
    assert cli_main(["runs", "--workspace", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert out.count(" broken ") == 3 and broken[4] in out
    assert cli_main(["runs", "--json", "--workspace", str(workspace)]) == 0
    listed = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed[3]["broken"] == broken[3] and listed[1]["broken"] is None

    # Predicting, evaluating or fine-tuning from them is a clear one-line error, never a traceback.
    for run_id in (2, 3, 4, 5):
        assert (
            cli_main(["predict", "--run", str(run_id), str(photo(pets)), "--workspace", str(workspace)]) == 2
        )
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: Run {run_id}") and "\n" not in err, err
        assert "cannot be read" in err if run_id == 2 else err == f"error: {broken[run_id]}"
    for run_id in (3, 4, 5):
        with pytest.raises(BadInputError, match="is broken"):
            queue_finetune_run(store, run_id, cfg.FINETUNE)
    assert cli_main(["evaluate", "--run", "4", "--workspace", str(workspace)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {broken[4]}"
    assert not store.paths(5).folder.exists()  # nothing recreated the deleted folder

    # The dashboard helpers leave them out of the pickers and mark them in the table and its CSV.
    assert sorted(r.id for r in predictable_runs(store)) == [1, 2]
    table = runs_frame(store.list())
    assert table["status"].tolist() == ["broken", "broken", "broken", "done", "done"]
    csv = pd.read_csv(io.StringIO(runs_csv(store.list())))
    assert csv["run"].tolist() == [5, 4, 3, 2, 1] and csv[csv["run"] == 4]["note"].item() == broken[4]

    # The pages render; the Training page explains the newest (broken) run.
    at = start_app()
    open_page(at, "training")
    assert texts(at.error) == [broken[5]]
    assert any("status **broken**" in m.value for m in at.markdown)
    assert at.dataframe[0].value["status"].tolist() == table["status"].tolist()
    assert at.download_button(key="download_runs").label == "Download the table as CSV"
    open_page(at, "predict")
    picker = at.selectbox(key="predict_run")
    assert len(picker.options) == 2
    picker.set_value(2).run()
    at.file_uploader(key="predict_upload").set_value([("pet.jpg", photo(pets).read_bytes(), "image/jpeg")])
    at.run()
    assert not at.exception and "cannot be read" in texts(at.error)[0]
    # The good run still predicts.
    assert_predicts(store, 1, pets)


# -- disk full, unwritable workspace ------------------------------------------------------------


def test_disk_full_at_save_fails_clearly_and_the_run_resumes_later(workspace, monkeypatch):
    store = RunStore(workspace)
    data = store.get(1).data
    run_id = queue_head_run(store, data, cfg.TrainConfig(epochs=2, batch_size=16, patience=0, **TINY))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save", full)
        with pytest.raises(PetLabError) as info:
            run_queue(store, until=run_id, say=quiet)
    message = str(info.value)
    assert "disk is full" in message and "resume" in message and message.count(". ") == 0
    record = store.get(run_id)
    assert (record.status, record.error) == ("failed", message)
    assert store.active() is None and integrity_ok(workspace)
    assert store.get(1).status == "done" and not store.get(1).broken  # the earlier model is untouched

    # Once there is space again, the run resumes from its backup (both epochs were done).
    assert resume_run(store, run_id) == 2
    run_queue(store, say=quiet)
    assert store.get(run_id).status == "done" and [h["epoch"] for h in store.history(run_id)] == [1, 2]


def test_unwritable_run_folder_exits_nonzero_with_one_line(workspace, pets):
    RunStore(workspace).paths(2).folder.write_text("a file where the run folder should be")
    proc = petlab(
        "train", "--source", "folder", "--path", str(pets), *TINY_ARGS, "--epochs", "1", workspace=workspace
    )
    _, err = proc.communicate(timeout=WAIT_S * 2)
    assert proc.returncode == 1
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1]
    assert "run folder" in errors[0] and "cannot be created" in errors[0]
    store = RunStore(workspace)
    assert store.get(2).status == "failed" and store.get(2).error == errors[0].removeprefix("error: ")
    assert store.active() is None and integrity_ok(workspace)


# -- the Streamlit server restarts during a run --------------------------------------------------


def test_the_worker_outlives_the_server_and_a_new_session_reattaches(workspace):
    store = RunStore(workspace)
    data = store.get(1).data
    run_id = queue_head_run(store, data, cfg.TrainConfig(epochs=20, batch_size=4, patience=0, **TINY))
    # A short-lived "server" starts the worker as the dashboard does, then goes away.
    starter = (
        "import sys; from core.runs.worker_process import start_worker; print(start_worker(sys.argv[1]))"
    )
    server = subprocess.run(
        [sys.executable, "-c", starter, str(workspace)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    worker = int(server.stdout.strip())  # the "server" has exited; what follows is the worker's doing
    try:
        wait_for(
            lambda: store.get(run_id).live.epoch or store.get(run_id).status == "done",
            what="the worker to train",
        )
        # A new session (the restarted server) shows the run from the registry.
        at = start_app()
        open_page(at, "training")
        status = store.get(run_id).status
        assert any(f"Run {run_id}: head training" in m.value for m in at.markdown)
        assert status in ("running", "done")
        wait_for(lambda: store.get(run_id).status != "running", what="the run to finish")
        record = store.get(run_id)
        assert record.status == "done", f"{record.error}\n{jobs.log_tail(workspace)}"
        assert record.pid == worker and len(store.history(run_id)) == 20
        at.run()
        assert f"Run {run_id} is done" in texts(at.success)[0]
    finally:
        if process_alive(worker):
            os.kill(worker, signal.SIGKILL)


# -- two browser sessions ----------------------------------------------------------------------


def test_two_sessions_see_the_same_runs_and_only_one_runs(workspace, pets, spawned):
    store = RunStore(workspace)
    sessions = [start_app(data_source="folder", data_path=str(pets), epochs=2, **TINY) for _ in range(2)]
    first, second = sessions
    open_page(first, "training")
    open_page(second, "training")
    first.button(key="start_head").click().run()
    claimed = store.claim_next_queued()  # the worker (here: this process) starts run 2
    assert claimed is not None and claimed.id == 2
    second.button(key="start_head").click().run()
    assert not second.error, texts(second.error)
    assert any("Run 3 queued; it starts when run 2 ends" in toast.value for toast in second.toast)

    statuses = {r.id: r.status for r in store.list()}
    assert statuses == {1: "done", 2: "running", 3: "queued"}
    assert store.claim_next_queued() is None  # a second worker gets nothing while run 2 runs
    for at in sessions:
        at.run()
        assert not at.exception
        assert any("Run 2: head training" in m.value and "**running**" in m.value for m in at.markdown)
        assert "Also queued: run 3" in texts(at.caption)
        assert at.dataframe[0].value["status"].tolist() == ["queued", "running", "done"]
    assert spawned == [workspace.resolve()] * 2


def assert_predicts(store: RunStore, run_id: int, pets: Path) -> None:
    """The run's model loads and gives a probability for every class, summing to 1, best first.

    Catches: a damaged or half-written model that still returns some list of names.
    """
    class_names = json.loads(store.paths(run_id).class_names.read_text())
    top = Predictor.for_run(store, run_id).predict_image(photo(pets), top_k=len(class_names)).top
    names, probabilities = [name for name, _ in top], [p for _, p in top]
    assert sorted(names) == sorted(class_names)
    assert probabilities == sorted(probabilities, reverse=True)
    assert abs(sum(probabilities) - 1) < 1e-4
