"""The Training page (views/training.py, ui.run_status, ui.runs_table) under AppTest.

Runs are queued from the page and, except in the last test, never trained: the registry is
filled by hand, or the worker process is replaced by the `spawned` fixture.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time

from core.runs import worker_process as jobs
from core.runs.liveness import process_alive
from core.runs.store import RunStore
from tests.apptest import TINY, chart, open_page, sidebar_widget, start_app, texts


def test_a_wrong_folder_is_refused_before_anything_is_queued(workspace, tmp_path, spawned):
    at = start_app(data_source="folder", data_path=str(tmp_path / "missing"), **TINY)
    open_page(at, "training")
    at.button(key="start_head").click().run()
    assert "does not exist" in texts(at.error)[0]
    assert RunStore(workspace).list() == [] and spawned == []


def test_finetuning_a_finished_run_is_queued_with_the_sidebar_settings(trained_copy, spawned):
    at = start_app(ft_epochs=2, ft_lr=1e-4, ft_unfreeze="top").run()
    sidebar_widget(at, "ft_layers").set_value(7)  # enabled once "Top N" is chosen
    open_page(at, "training")
    at.button(key="start_finetune").click().run()
    assert not at.error, texts(at.error)
    record = RunStore(trained_copy).get(2)
    assert (record.kind, record.parent, record.status) == ("finetune", 1, "queued")
    assert (record.finetune.epochs, record.finetune.lr, record.finetune.unfreeze) == (2, 1e-4, "7")
    assert spawned == [trained_copy.resolve()]


def test_training_page_follows_a_running_run_and_cancels_it(workspace):
    store = RunStore(workspace)
    config = {"data": {"source": "folder"}, "train": {"backbone": "mobilenetv3small", "epochs": 3}}
    run_id = store.create("head", config, status="running")  # owned by this (live) process
    store.log_epoch(run_id, 1, {"accuracy": 0.5, "val_accuracy": 0.4, "loss": 1.2, "val_loss": 1.3}, 10.0)
    store.set_progress(run_id, epoch=2, epochs=3, step=4, steps=10)
    at = start_app()
    open_page(at, "training")
    (bar,) = at.get("progress")
    assert bar.value == 40
    assert "Epoch 2 of 3 · batch 4 of 10 · about 16 s left" in bar.text
    assert any("status **running**" in m.value for m in at.markdown)
    assert {t["name"] for t in chart(at, "live_loss_chart")["data"]} == {"train", "validation"}

    at.button(key="cancel_run").click().run()
    assert store.get(run_id).cancel_requested
    assert any("Stopping at the next batch" in text for text in texts(at.warning))


def test_training_page_shows_what_a_run_prepares_before_its_first_epoch(workspace):
    store = RunStore(workspace)
    run_id = store.create("head", {"train": {"backbone": "mobilenetv3small"}}, status="running")
    at = start_app()
    open_page(at, "training")
    assert at.get("progress")[0].text == "Preparing the data and building the model…"
    store.set_progress(run_id, stage="caching features", done=3, total=12)
    at.run()
    (bar,) = at.get("progress")
    assert bar.value == 25 and bar.text == "Caching features: 3 of 12"


def test_a_long_run_has_readable_epoch_ticks(workspace):
    store = RunStore(workspace)
    run_id = store.create("head", {"train": {"backbone": "mobilenetv3small"}}, status="running")
    for epoch in range(1, 121):
        store.log_epoch(run_id, epoch, {"loss": 1.0 / epoch, "val_loss": 1.1 / epoch}, 1.0)
    at = start_app()
    open_page(at, "training")
    figure = chart(at, "live_loss_chart")
    assert figure["layout"]["xaxis"]["dtick"] == 20  # 120 epochs: 6 ticks, not 120
    assert all(trace["mode"] == "lines" for trace in figure["data"])  # no dots at this length


def test_training_page_shows_why_a_run_failed(workspace):
    store = RunStore(workspace)
    run_id = store.create("head", {"train": {"backbone": "resnet50v2"}}, status="running")
    store.finish(run_id, "failed", error="The ImageNet weights cannot be downloaded (no network).")
    at = start_app()
    open_page(at, "training")
    assert texts(at.error) == [
        f"Run {run_id} failed: The ImageNet weights cannot be downloaded (no network)."
    ]
    assert all(button.key != "cancel_run" for button in at.button)


def test_training_page_offers_to_restart_a_stalled_queue(workspace, spawned):
    store = RunStore(workspace)
    run_id = store.create("head", {"train": {"backbone": "mobilenetv3small"}})
    with sqlite3.connect(store.db_path) as conn:  # queued long ago, and no worker alive
        conn.execute("UPDATE runs SET created = created - 60 WHERE id = ?", (run_id,))
    at = start_app()
    open_page(at, "training")
    assert any("No training process" in text for text in texts(at.warning))
    at.button(key="resume_queue").click().run()
    assert spawned == [workspace.resolve()]


def stop_workers(workspace, *started: int | None) -> None:
    """Kill the workers a test started that still run: the dashboard's current one and `started`."""
    for pid in {jobs.running_worker(workspace), *started} - {None}:
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def wait_until(condition, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; the timeout only bounds the wait (a generous one)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_a_real_worker_trains_runs_started_from_the_page_and_stays_warm(workspace, pets, monkeypatch):
    """Catches each run starting a fresh process (TensorFlow loaded again) instead of the warm one.

    The worker lingers far longer than the test takes, so a slow rerun cannot let it go
    (its going after lingering: the next test).
    """
    monkeypatch.setattr(jobs, "WORKER_LINGER_S", 3600.0)
    at = start_app(data_source="folder", data_path=str(pets), epochs=1, batch_size=16, **TINY)
    open_page(at, "training")
    at.button(key="start_head").click().run()
    assert not at.error, texts(at.error)
    store = RunStore(workspace)
    worker = jobs.running_worker(workspace)
    try:
        wait_until(lambda: store.get(1).status not in ("queued", "running"), 300, "run 1")
        record = store.get(1)
        assert record.status == "done", f"{record.error}\n{jobs.log_tail(workspace)}"
        assert record.pid == worker != os.getpid()  # it trained in another process
        at.run()
        assert "Run 1 is done" in texts(at.success)[0]
        assert "run 1 done" in jobs.log_tail(workspace)
        # The next run goes to the same, still warm worker instead of a new process.
        at.button(key="start_head").click().run()
        assert jobs.running_worker(workspace) == worker
        wait_until(lambda: store.get(2).status not in ("queued", "running"), 300, "run 2")
        assert store.get(2).status == "done" and store.get(2).pid == worker
    finally:
        stop_workers(workspace, worker)


def test_a_worker_with_nothing_to_do_exits_after_lingering(workspace, monkeypatch):
    """Catches a dashboard worker that never exits once the queue stays empty, or trains at full priority."""
    monkeypatch.setattr(jobs, "WORKER_LINGER_S", 0.5)
    store = RunStore(workspace)  # an empty registry (without one, a worker exits at once anyway)
    store.list()
    assert store.db_path.is_file()
    worker = jobs.start_worker(workspace)
    try:
        # It trains below the server's priority, so that a run leaves the server room to answer clicks.
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, worker) == min(19, own + jobs.WORKER_NICE) > own
        wait_until(lambda: not jobs.worker_alive(workspace), 120, "the worker to exit")
        assert "Traceback" not in jobs.log_tail(workspace)
    finally:
        stop_workers(workspace, worker)


def test_a_head_run_on_the_unprepared_reference_data_waits_behind_its_download(workspace, spawned):
    """Catches a head run that would download the dataset inside itself (no Cancel, no progress)."""
    at = start_app(**TINY)  # the default source: tensorflow-datasets, not prepared in a new workspace
    open_page(at, "training")
    at.button(key="start_head").click().run()
    at.button(key="start_head").click().run()  # a second run joins the same download
    store = RunStore(workspace)
    kinds = [(r.id, r.kind, r.status) for r in reversed(store.list())]
    assert kinds == [(1, "prepare", "queued"), (2, "head", "queued"), (3, "head", "queued")]
    assert spawned
    assert "Run 2 is queued behind the dataset download (run 1)" in texts(at.info)[0]
