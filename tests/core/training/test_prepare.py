"""Prepare jobs in the worker: a data source downloaded and prepared as a job of the queue.

Catches: the preparation running anywhere but in the job's child process (so Cancel could not
stop it); its stages not reaching the registry; a cancelled preparation going on, or leaving
half-written files that a later open would trip over; a failure not ending the job as failed
with one sentence in the dashboard's words; a child that died leaving the job "running".
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import core.training.prepare
import core.training.worker
from core import config as cfg
from core.data import open_source
from core.runs.requests import queue_prepare
from core.training.worker import run_queue
from tests.conftest import write_oxford_annotations, write_oxford_images
from tests.core.training import prepare_fakes

TFDS = cfg.DataConfig()  # the reference source, in $TFDS_DATA_DIR


@pytest.fixture
def tfds_dir(tmp_path, monkeypatch) -> Path:
    """An empty tfds data folder, which the job's child process finds through its environment."""
    path = tmp_path / "tfds"
    monkeypatch.setenv("TFDS_DATA_DIR", str(path))
    return path


def child_runs(monkeypatch, fake) -> None:
    monkeypatch.setattr(core.training.prepare, "prepare_in_child", fake)


def recorded_stages(store, monkeypatch) -> list[tuple]:
    """Every progress stage the worker writes to the registry (none skipped by the write interval)."""
    stages = []
    original = store.set_progress
    monkeypatch.setattr(core.training.worker, "PROGRESS_INTERVAL_S", 0.0)

    def recording(run_id, **progress):
        stages.append((progress["stage"], progress["done"], progress["total"]))
        original(run_id, **progress)

    monkeypatch.setattr(store, "set_progress", recording)
    return stages


def test_a_prepare_job_prepares_the_data_and_reports_its_stages(store, tfds_dir, tmp_path, monkeypatch):
    originals = tmp_path / "oxford"
    write_oxford_images(originals / "images")
    write_oxford_annotations(originals)
    monkeypatch.setenv(prepare_fakes.ORIGINALS_ENV, str(originals))
    child_runs(monkeypatch, prepare_fakes.downloading_generated_files)
    stages = recorded_stages(store, monkeypatch)
    job = queue_prepare(store, TFDS)
    lines = []
    run_queue(store, say=lines.append)

    assert store.get(job).status == "done", store.get(job).error
    assert lines[-1] == f"run {job} done"
    names = [stage for stage, _, _ in stages]
    assert names[0].startswith("downloading and preparing") and stages[-1][1:] == (1, 1)
    # tfds's own bars, as stages with counts: every example of both splits written, then shuffled.
    last = {stage: (done, total) for stage, done, total in stages}
    assert last["writing the train examples"][0] == 21 and last["writing the test examples"][0] == 9
    assert last["shuffling the train examples"] == (21, 21) and last["shuffling the test examples"] == (9, 9)
    assert store.get(job).live.stage == names[-1]
    source = open_source("tfds", workspace=store.workspace, download=False)  # prepared, for this process too
    assert source.split_size("test") == 9


def test_cancel_stops_the_preparation_and_deletes_its_unfinished_files(
    store, tfds_dir, tmp_path, monkeypatch
):
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv(prepare_fakes.PID_FILE_ENV, str(pid_file))
    child_runs(monkeypatch, prepare_fakes.stalling)
    job = queue_prepare(store, TFDS)
    original = store.cancel_requested

    def cancel_once_the_child_reported(run_id):
        if store.get(run_id).live.stage == prepare_fakes.STALLED_STAGE:
            store.request_cancel(run_id)
        return original(run_id)

    monkeypatch.setattr(store, "cancel_requested", cancel_once_the_child_reported)
    run_queue(store, say=lambda line: None)  # returns only because Cancel stopped the child

    record = store.get(job)
    assert record.status == "cancelled" and record.error is None
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)  # the child is gone
    assert not list((tfds_dir / "oxford_iiit_pet").iterdir())  # no half-prepared dataset left
    assert [p.name for p in (tfds_dir / "downloads").iterdir()] == ["annotations.tar.gz"]  # finished: kept


def test_a_failed_preparation_ends_failed_with_the_dashboards_sentence(store, tfds_dir, monkeypatch):
    child_runs(monkeypatch, prepare_fakes.offline)
    job = queue_prepare(store, TFDS)
    lines = []
    run_queue(store, say=lines.append)
    record = store.get(job)
    assert record.status == "failed"
    assert "no network" in record.error and "sidebar" in record.error
    assert "--" not in record.error and "\n" not in record.error and record.error.endswith(".")
    assert lines[-1].startswith(f"run {job} failed: ")


def test_a_child_that_dies_fails_the_job_and_the_queue_goes_on(store, tfds_dir, monkeypatch, class_folders):
    child_runs(monkeypatch, prepare_fakes.crashing_on_tfds)
    job = queue_prepare(store, TFDS)
    behind = queue_prepare(store, cfg.DataConfig(source="folder", path=str(class_folders)))
    run_queue(store, say=lambda line: None)
    assert store.get(job).status == "failed"
    assert "stopped unexpectedly (exit code 3)" in store.get(job).error
    assert store.get(behind).status == "done"
