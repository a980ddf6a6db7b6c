"""The live panel's view (ui.live.LiveView): it reads the registry and builds figures only for what
changed since the last poll, and with 3,000 epochs and 1,000 runs an idle poll still reads nothing."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.runs.store import RunStore
from ui.live import LiveView


class CountingStore(RunStore):
    """A RunStore that counts its reads of runs and epochs."""

    def __init__(self, workspace: Path) -> None:
        super().__init__(workspace)
        self.calls: Counter[str] = Counter()

    def list(self):
        self.calls["list"] += 1
        return super().list()

    def get(self, run_id):
        self.calls["get"] += 1
        return super().get(run_id)

    def history(self, run_id):
        self.calls["history"] += 1
        return super().history(run_id)


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    store = CountingStore(tmp_path)
    old = store.create("head", {"train": {"backbone": "mobilenetv3small"}})
    store.start(old)
    store.finish(old, "cancelled")
    running = store.create("head", {"train": {"backbone": "mobilenetv3small"}})
    store.start(running)
    store.log_epoch(running, 1, {"accuracy": 0.5, "val_accuracy": 0.4, "loss": 1.0, "val_loss": 1.2}, 1.0)
    return store


def poll(view: LiveView, store: CountingStore) -> tuple[set[str], Counter]:
    store.calls.clear()
    changed = view.refresh(store)
    return changed, Counter(store.calls)


def test_an_idle_poll_reads_no_run_and_builds_no_figure(store: CountingStore) -> None:
    view = LiveView()
    changed, calls = poll(view, store)
    assert changed == {"runs", "progress", "epochs"} and calls == {"list": 1, "history": 1}
    figures, table = view.figures, view.table
    assert set(figures) == {"accuracy", "loss"} and len(table) == 2
    changed, calls = poll(view, store)
    assert changed == set() and calls == {}
    assert view.figures is figures and view.table is table  # the very same objects: nothing rebuilt


def test_progress_rereads_only_the_running_run(store: CountingStore) -> None:
    view = LiveView()
    poll(view, store)
    store.set_progress(2, epoch=2, epochs=5, step=3, steps=10)
    figures = view.figures
    changed, calls = poll(view, store)
    assert changed == {"progress"} and calls == {"get": 1}
    assert view.followed.live.step == 3 and view.figures is figures


def test_a_new_epoch_rebuilds_the_curves_and_a_finished_run_rereads_the_runs(store: CountingStore) -> None:
    view = LiveView()
    poll(view, store)
    store.log_epoch(2, 2, {"accuracy": 0.7, "val_accuracy": 0.6, "loss": 0.8, "val_loss": 0.9}, 1.0)
    changed, calls = poll(view, store)
    assert changed == {"epochs"} and calls == {"history": 1}
    assert len(view.figures["accuracy"].data[0].x) == 2  # the train curve has both epochs
    store.finish(2, "done")
    changed, calls = poll(view, store)
    assert "runs" in changed and calls["list"] == 1
    assert view.followed.status == "done"


def test_a_run_whose_process_died_is_noticed_without_any_write(store: CountingStore) -> None:
    store.finish(2, "done")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run_id = store.create("head", {"train": {"backbone": "mobilenetv3small"}})
    store.start(run_id, pid=child.pid)
    view = LiveView()
    poll(view, store)
    assert view.followed.id == run_id and view.followed.status == "running"
    child.kill()
    child.wait()
    changed, _ = poll(view, store)
    assert "runs" in changed and view.followed.status == "failed"


def test_with_3000_epochs_and_1000_runs_an_idle_poll_still_reads_nothing(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    metrics = '{"accuracy": 0.5, "val_accuracy": 0.4, "loss": 1.0, "val_loss": 1.2}'
    with store._write() as conn:  # a big registry, written in one transaction
        conn.executemany(
            "INSERT INTO runs (kind, status, config, created) VALUES ('head', 'cancelled', '{}', ?)",
            [(float(i),) for i in range(999)],
        )
    run_id = store.create("head", {})
    store.start(run_id)
    with store._write() as conn:
        conn.executemany(
            "INSERT INTO epochs (run_id, epoch, seconds, metrics) VALUES (?, ?, 1.0, ?)",
            [(run_id, e, metrics) for e in range(1, 3001)],
        )
    view = LiveView()
    poll(view, store)
    assert len(view.table) == 1000 and len(view.figures["loss"].data[0].x) == 3000
    for _ in range(3):
        changed, calls = poll(view, store)
        assert changed == set() and calls == {}
