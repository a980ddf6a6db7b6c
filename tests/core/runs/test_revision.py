"""The registry's change counters (RunStore.revision): each write moves its topic's counter, reads
move none, a run whose process died shows as `stale`, and a version-1 file gains them on opening."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from core.runs.database import MIGRATIONS, SCHEMA_VERSION, statements
from core.runs.store import RunStore


def moved(before, after) -> set[str]:
    """The topics whose counter (or staleness) differs between two revisions."""
    return {k for k, v in asdict(after).items() if asdict(before)[k] != v}


def test_every_write_moves_its_own_topic_and_reads_move_none(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    steps = {}
    last = store.revision()

    def step(name: str) -> None:
        nonlocal last
        now = store.revision()
        steps[name], last = moved(last, now), now

    run_id = store.create("head", {"x": 1})
    step("create")
    store.start(run_id)
    step("start")
    store.set_progress(run_id, epoch=1, step=3, steps=10)
    step("progress")
    store.log_epoch(run_id, 1, {"accuracy": 0.5}, 1.0)
    step("epoch")
    store.log_epoch(run_id, 1, {"accuracy": 0.6}, 1.0)  # logged again: replaced
    step("epoch again")
    store.get(run_id), store.list(), store.active(), store.history(run_id), store.cancel_requested(run_id)
    step("reads")
    store.request_cancel(run_id)
    step("cancel")
    store.update_metrics(run_id, {"test_accuracy": 0.5})
    step("metrics")
    store.finish(run_id, "done")
    step("finish")
    store.delete(run_id)
    step("delete")
    assert steps == {
        "create": {"runs"},
        "start": {"runs"},
        "progress": {"progress"},
        "epoch": {"epochs"},
        "epoch again": {"epochs"},
        "reads": set(),
        "cancel": {"runs"},
        "metrics": {"runs"},
        "finish": {"runs"},
        "delete": {"runs", "epochs"},  # the epochs go with the run (ON DELETE CASCADE)
    }


def test_a_write_by_another_process_is_seen(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create("head", {})
    before = store.revision()
    code = "import sys; from core.runs.store import RunStore; RunStore(sys.argv[1]).log_epoch(1, 1, {}, 1.0)"
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=Path(__file__).parents[3])
    assert moved(before, store.revision()) == {"epochs"} and run_id == 1


def test_a_run_whose_process_died_shows_as_stale_without_any_write(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create("head", {})
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    store.start(run_id, pid=child.pid)
    before = store.revision()
    assert not before.stale
    child.kill()
    child.wait()
    after = store.revision()
    assert moved(before, after) == {"stale"} and after.stale


def test_a_version_1_registry_gains_the_counters_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as conn:
        for statement in statements(MIGRATIONS[0]):
            conn.execute(statement)
        conn.execute("INSERT INTO runs (kind, status, created) VALUES ('head', 'done', 1.0)")
        conn.execute("PRAGMA user_version = 1")
    store = RunStore(tmp_path)
    assert [r.id for r in store.list()] == [1]
    before = store.revision()
    store.create("head", {})
    assert moved(before, store.revision()) == {"runs"}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


def test_statements_keep_a_trigger_body_whole() -> None:
    script = "CREATE TABLE t (a); CREATE TRIGGER g AFTER INSERT ON t BEGIN UPDATE t SET a = 1; END;\n"
    assert statements(script) == [
        "CREATE TABLE t (a);",
        "CREATE TRIGGER g AFTER INSERT ON t BEGIN UPDATE t SET a = 1; END;",
    ]
