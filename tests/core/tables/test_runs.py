"""core.tables.runs: the Training page's runs table, curves, followed run, results and time left; a data
job's progress (and never a data job among the training runs)."""

from __future__ import annotations

import pandas as pd
import pytest

from core.runs.records import Progress
from core.runs.store import RunStore
from core.tables.runs import (
    current_run,
    epoch_seconds,
    estimate_eta,
    finetunable_runs,
    format_duration,
    history_frame,
    predictable_runs,
    prepare_progress,
    result_summary,
    runs_csv,
    runs_frame,
)


def test_eta_uses_finished_epochs_or_the_observed_speed():
    progress = Progress(epoch=2, epochs=3, step=5, steps=10)
    assert estimate_eta(progress, [20.0], None, 0.0) == pytest.approx(5 * 2 + 20)
    assert estimate_eta(progress, [], (100.0, 1), 104.0) == pytest.approx(5 * 1 + 10)
    assert estimate_eta(progress, [], None, 0.0) is None
    assert estimate_eta(Progress(), [1.0], None, 0.0) is None


def test_format_duration():
    assert format_duration(None) == "" and format_duration(5) == "5 s"
    assert format_duration(125) == "2 min 05 s" and format_duration(3725) == "1 h 02 min"


def test_runs_table_and_current_run(workspace):
    store = RunStore(workspace)
    assert current_run([]) is None
    done = store.create("head", {"train": {"backbone": "b", "epochs": 2}}, status="done")
    store.update_metrics(done, {"best_val_accuracy": 0.5, "test_accuracy": 0.25})
    queued = store.create("finetune", {"train": {"backbone": "b"}, "finetune": {"epochs": 1}}, parent=done)
    records = store.list()
    assert current_run(records).id == queued
    table = runs_frame(records)
    assert table["run"].tolist() == [queued, done]
    assert table["kind"].tolist() == [f"finetune of {done}", "head"]
    assert table["best val accuracy %"].tolist()[1] == 50.0 and table["epochs"].tolist() == [1, 2]
    assert table["unfreeze"][0] == "all" and pd.isna(table["unfreeze"][1])  # a head run unfreezes nothing
    assert runs_csv(records).splitlines()[0].startswith("run,kind,status,backbone")


def test_history_curves_and_epoch_times(workspace):
    store = RunStore(workspace)
    run_id = store.create("head", {"train": {"backbone": "b"}}, status="running")
    store.log_epoch(run_id, 1, {"accuracy": 0.5, "val_accuracy": 0.4, "loss": 1.2}, 10.0)
    store.log_epoch(run_id, 2, {"accuracy": 0.6, "val_accuracy": 0.5, "loss": 1.0}, 12.0)
    frame = history_frame(store, [run_id])
    assert frame.columns.tolist() == ["run", "epoch", "metric", "split", "value"]
    assert len(frame) == 2 * 3  # no val_loss logged
    loss = frame[frame["metric"] == "loss"]
    assert loss["split"].tolist() == ["train", "train"] and loss["value"].tolist() == [1.2, 1.0]
    assert epoch_seconds(store.history(run_id)) == [10.0, 12.0]
    assert history_frame(store, []).empty


def test_result_summary_and_finished_runs(workspace):
    store = RunStore(workspace)
    first = store.create("head", {"train": {"backbone": "b"}}, status="done")
    second = store.create("head", {"train": {"backbone": "b"}}, status="done")
    store.update_metrics(second, {"best_val_accuracy": 0.9, "test_accuracy": 0.875})
    summary = result_summary(store.get(second))
    assert summary == "best validation accuracy 90.0%, test accuracy 87.5%"
    assert result_summary(store.get(first)) == "no metrics"
    # Both folders are missing, so both runs are broken: nothing to predict with or fine-tune.
    assert predictable_runs(store) == [] and finetunable_runs(store) == []


def test_training_tables_leave_data_jobs_out(workspace):
    store = RunStore(workspace)
    done = store.create("head", {"train": {"backbone": "b"}}, status="done")
    preparing = store.create("prepare", {"data": {"source": "tfds"}}, status="running")
    queued = store.create("head", {"train": {"backbone": "b"}})
    records = store.list()
    assert current_run(records).id == queued  # the download runs, but the panel follows training
    assert runs_frame(records)["run"].tolist() == [queued, done]
    assert f"\n{preparing}," not in runs_csv(records)
    store.finish(queued, "failed", error="x")
    assert current_run(store.list()).id == queued  # the newest training run, not the newer job


def test_prepare_progress_in_words(workspace):
    store = RunStore(workspace)
    job = store.create("prepare", {"data": {"source": "tfds"}})
    assert prepare_progress(store.get(job)) == (0.0, "Waiting for the worker to start preparing the dataset…")
    store.start(job)
    assert prepare_progress(store.get(job)) == (0.0, "Starting to prepare the dataset…")
    store.set_progress(job, stage="downloading the archives (MB)", done=200, total=800)
    assert prepare_progress(store.get(job)) == (0.25, "Downloading the archives (MB): 200 of 800")
    store.set_progress(job, stage="writing the train examples", done=5, total=None)
    assert prepare_progress(store.get(job)) == (0.0, "Writing the train examples…")
    store.request_cancel(job)
    assert prepare_progress(store.get(job))[1] == "Stopping: writing the train examples…"


def test_a_sweep_winner_is_named_as_such_and_its_members_stay_out(workspace):
    store = RunStore(workspace)
    sweep = store.create("sweep", {"train": {"backbone": "b"}}, status="done")
    member = store.create("member", {"train": {"backbone": "b"}}, parent=sweep, status="done")
    winner = store.create("head", {"train": {"backbone": "b"}}, parent=sweep, status="running")
    table = runs_frame(store.list())
    assert table["run"].tolist() == [winner] and member != winner
    assert table["kind"].tolist() == [f"sweep winner of {sweep}"]
