"""Experiments as worker jobs: a sweep and a learning-rate finder pass queued, claimed and carried out.

Generated images a head can learn and a calibrated random backbone (tests.tiny_models.striped_experiment);
every expected answer is read back from the registry and the run folders, not from the engine.
"""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from core.model.classifier import load_model
from core.runs.requests import queue_lr_find, queue_sweep
from core.runs.store import RunStore
from core.tables.sweeps import members_of, rank_key
from core.training.lr_finder import suggest
from core.training.worker import run_queue
from tests.tiny_models import striped_experiment

SETTINGS = [{"lr": 1e-6}, {"lr": 1e-2, "dropout": 0.1}, {"lr": 3e-2, "label_smoothing": 0.1}]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return striped_experiment(tmp_path_factory.getbasetemp() / "striped-experiment")


@pytest.fixture(scope="module")
def swept(experiment, tmp_path_factory):
    """A sweep of SETTINGS carried out by the worker, with every progress the sweep record showed."""
    data, train = experiment
    store = RunStore(tmp_path_factory.mktemp("sweep-job") / "workspace")
    sweep_id = queue_sweep(store, data, train, SETTINGS)
    seen: list[dict] = []
    original = store.set_progress

    def recording(run_id, **progress):
        original(run_id, **progress)
        if run_id == sweep_id:
            seen.append(store.get(sweep_id).progress)

    store.set_progress = recording
    run_queue(store, say=lambda line: None)
    return store, sweep_id, seen


def test_a_sweep_job_trains_its_members_as_child_runs(swept) -> None:
    store, sweep_id, _ = swept
    sweep = store.get(sweep_id)
    members = members_of(store.list(), sweep_id)
    assert sweep.status == "done", sweep.error
    assert [m.config["sweep"]["settings"] for m in members] == SETTINGS
    for member, setting in zip(members, SETTINGS, strict=True):
        assert (member.kind, member.status, member.broken) == ("member", "done", None)
        assert member.train.lr == setting["lr"]
        assert member.train.label_smoothing == setting.get("label_smoothing", 0.0)
        paths = store.paths(member.id)
        assert not paths.backup.exists() and not paths.tensorboard.exists()  # a member is never resumed
    assert not [r for r in store.list() if r.trains and r.parent != sweep_id]


def test_the_sweep_shows_which_setting_and_epoch_trains(swept) -> None:
    store, sweep_id, seen = swept
    places = [(p["member"], p["members"], p["epoch"]) for p in seen if "member" in p]
    assert places[0] == (1, 3, 1) and {m for m, _, _ in places} == {1, 2, 3}
    assert places == sorted(places)  # setting by setting, epoch by epoch
    runs = {p["member_run"] for p in seen if "member_run" in p}
    assert runs == {m.id for m in members_of(store.list(), sweep_id)}


def test_the_winner_is_promoted_to_a_head_run_that_reproduces_its_val_accuracy(swept, experiment) -> None:
    """Catches a winner not chosen by validation, or a promoted model that is not the winner's."""
    store, sweep_id, _ = swept
    members = members_of(store.list(), sweep_id)
    best = max(m.metrics["best_val_accuracy"] for m in members)
    expected = min(
        (m.metrics["best_val_loss"], m.id) for m in members if m.metrics["best_val_accuracy"] == best
    )
    sweep = store.get(sweep_id)
    assert sweep.metrics["winner_member"] == expected[1] == sorted(members, key=rank_key)[0].id
    winner = store.get(sweep.metrics["winner"])
    assert (winner.kind, winner.parent, winner.status, winner.broken) == ("head", sweep_id, "done", None)
    assert winner.metrics["best_val_accuracy"] == best and 0 <= winner.metrics["test_accuracy"] <= 1
    assert store.history(winner.id) == store.history(expected[1])
    model = load_model(store.paths(winner.id).model)
    data, train = experiment
    validation = _validation_split(store, data, train)
    predicted = model.predict(validation[0].astype(np.float32), verbose=0).argmax(axis=1)
    assert float(np.mean(predicted == validation[1])) == pytest.approx(best, abs=1e-6)


def _validation_split(store, data, train):
    from core.training.datasets import load_split_arrays

    return load_split_arrays(data, store.workspace, train.image_size)[1]["validation"]


class CancelAfterFirstMember(RunStore):
    """A registry in which the sweep is cancelled (as the dashboard would) once its first member ends."""

    sweep_id: int | None = None

    def finish(self, run_id, status, metrics=None, error=None) -> None:
        super().finish(run_id, status, metrics, error)
        if self.get(run_id).kind == "member" and self.sweep_id is not None:
            self.request_cancel(self.sweep_id)


def test_cancel_stops_the_sweep_between_heads_and_keeps_the_finished_member(experiment, tmp_path) -> None:
    data, train = experiment
    store = CancelAfterFirstMember(tmp_path / "workspace")
    store.sweep_id = queue_sweep(store, data, train, SETTINGS[1:])
    run_queue(store, say=lambda line: None)
    (member,) = members_of(store.list(), store.sweep_id)
    sweep = store.get(store.sweep_id)
    assert member.status == "done" and sweep.status == "cancelled"
    assert sweep.metrics["members"] == 1 and sweep.metrics["settings"] == 2
    promoted = store.get(sweep.metrics["winner"])  # the best finished member is still promoted
    assert promoted.status == "done" and promoted.metrics["sweep_member"] == member.id


def test_a_killed_sweep_is_reaped_failed_and_its_finished_members_stay(tmp_path) -> None:
    store = RunStore(tmp_path / "workspace")
    sweep = store.create("sweep", {"sweep": {"settings": [{}, {}]}}, status="running")
    done = store.create("member", {}, parent=sweep, status="running")
    store.finish(done, "done", {"best_val_accuracy": 0.5})
    running = store.create("member", {}, parent=sweep, status="running")
    with store._write() as conn:  # the worker process is gone
        conn.execute("UPDATE runs SET pid = 999999999 WHERE id IN (?, ?)", (sweep, running))
    assert sorted(store.reap_stale()) == [sweep, running]
    assert [store.get(i).status for i in (sweep, done, running)] == ["failed", "done", "failed"]


def test_an_lr_find_job_stores_its_curve_and_suggestion(experiment, tmp_path) -> None:
    data, train = experiment
    store = RunStore(tmp_path / "workspace")
    job = queue_lr_find(store, data, dataclasses.replace(train, label_smoothing=0.1))
    run_queue(store, say=lambda line: None)
    record = store.get(job)
    assert (record.kind, record.status, record.broken) == ("lr_find", "done", None)
    with store.paths(job).lr_curve.open() as fh:
        rows = list(csv.DictReader(fh))
    lrs, losses = [float(r["lr"]) for r in rows], [float(r["loss"]) for r in rows]
    assert len(rows) == record.metrics["points"] > 20
    assert record.metrics["suggested_lr"] == pytest.approx(suggest(lrs, losses))
    assert not [r for r in store.list() if r.id != job]  # nothing else was made
