"""Sweeps: settings lists, choosing by validation only, promoting the winner, cancelling between heads.

The heads train on generated images a head can learn (tests.tiny_models.striped_experiment),
so members differ in what they reach; every expected answer is worked out here from the
registry's logged epochs, not taken from the sweep's own numbers.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from core.catalog.experiments import check_settings, grid, random_draws
from core.errors import BadInputError
from core.model.classifier import load_model
from core.runs.store import RunStore
from core.training.fit import RunData
from core.training.sweep import SweepHooks, promote, run_sweep
from tests.tiny_models import STRIPED_CLASSES, striped_features

# From chance level (a learning rate far too small) to a good one: members that differ.
SETTINGS = [
    {"lr": 1e-6},
    {"lr": 1e-2, "dropout": 0.1},
    {"lr": 3e-3, "label_smoothing": 0.1},
    {"lr": 3e-2, "dropout": 0.4, "batch_size": 8},
]


# -- settings lists -------------------------------------------------------------------------------


def test_grid_is_every_combination_in_order() -> None:
    settings = grid({"lr": [1e-3, 1e-2], "dropout": [0.1, 0.2, 0.4]})
    assert settings == [{"lr": lr, "dropout": d} for lr in (1e-3, 1e-2) for d in (0.1, 0.2, 0.4)]
    assert grid({}) == [{}]  # nothing varied: the base settings once


def test_random_draws_stay_in_their_ranges_and_repeat_with_the_seed() -> None:
    ranges = {"lr": (1e-5, 1e-1), "dropout": (0.0, 0.5), "batch_size": [16, 32], "epochs": (2, 4)}
    draws = random_draws(ranges, 100, seed=7)
    assert draws == random_draws(ranges, 100, seed=7) and draws != random_draws(ranges, 100, seed=8)
    lrs = np.array([d["lr"] for d in draws])
    assert lrs.min() >= 1e-5 and lrs.max() <= 1e-1
    # Even on a log scale: about as many draws in each of the 4 decades (a linear draw puts 90% in the last).
    per_decade = np.histogram(np.log10(lrs), bins=4, range=(-5, -1))[0]
    assert per_decade.min() > 10
    assert all(0.0 <= d["dropout"] <= 0.5 for d in draws)
    assert {d["batch_size"] for d in draws} == {16, 32}
    assert {d["epochs"] for d in draws} == {2, 3, 4} and all(isinstance(d["epochs"], int) for d in draws)


@pytest.mark.parametrize(
    "settings",
    [
        [{"lr": 0}],
        [{"dropout": 1.0}],
        [{"label_smoothing": -0.1}],
        [{"batch_size": 12.5}],
        [{"epochs": 0}],
        [{"momentum": 0.9}],
        [],
        [{}] * 101,
    ],
    ids=["lr", "dropout", "smoothing", "batch", "epochs", "unknown", "none", "too-many"],
)
def test_bad_settings_are_refused_with_one_sentence(settings) -> None:
    with pytest.raises(BadInputError) as info:
        check_settings(settings)
    assert "\n" not in str(info.value)


def test_a_members_label_smoothing_reaches_its_loss(features, tmp_path) -> None:
    """Catches a label-smoothing setting that never reaches the loss (training and validation alike)."""
    from core.training.feature_cache import head_model

    store = RunStore(tmp_path / "workspace")
    epsilon = 0.3
    setting = {"lr": 1e-2, "label_smoothing": epsilon, "epochs": 1}
    result = run_sweep(store, features, [setting], new_run_in(store), SweepHooks())
    (logged,) = result.winner.history
    probabilities = head_model(result.model).predict(features.validation, verbose=0)
    one_hot = np.eye(len(STRIPED_CLASSES))[features.data.arrays["validation"][1]]
    smoothed = one_hot * (1 - epsilon) + epsilon / len(STRIPED_CLASSES)
    cross_entropy = -np.mean(np.sum(smoothed * np.log(np.clip(probabilities, 1e-7, 1)), axis=1))
    hard = -np.mean(np.sum(one_hot * np.log(np.clip(probabilities, 1e-7, 1)), axis=1))
    assert logged["val_loss"] == pytest.approx(cross_entropy, rel=1e-4)
    assert abs(hard - cross_entropy) > 0.01  # the smoothing makes a difference here


# -- a sweep --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    return striped_features(tmp_path_factory.getbasetemp() / "striped-experiment")


class SplitsWithoutTest(dict):
    """The decoded splits, with the test split out of reach: choosing must never read it."""

    def __getitem__(self, split):
        assert split != "test", "the sweep read the test split"
        return super().__getitem__(split)


def without_test_split(features):
    data = RunData(features.data.source, SplitsWithoutTest(features.data.arrays))
    return dataclasses.replace(features, data=data)


def new_run_in(store: RunStore):
    def new_run(config: dict) -> int:
        return store.create("head", config, status="running")

    return new_run


@pytest.fixture(scope="module")
def swept(features, tmp_path_factory):
    """The sweep of SETTINGS, cancelled before one more setting, with every progress report it made."""
    store = RunStore(tmp_path_factory.mktemp("swept") / "workspace")
    reports, asked = [], []
    hooks = SweepHooks(
        progress=reports.append, should_stop=lambda: asked.append(True) or len(asked) > len(SETTINGS)
    )
    features = without_test_split(features)
    result = run_sweep(store, features, [*SETTINGS, {"lr": 1e-3}], new_run_in(store), hooks)
    return store, result, reports


def best_by_hand(store: RunStore, run_id: int) -> tuple[float, float]:
    """(val accuracy, val loss) of the epoch a run kept: its lowest val_loss, from the logged epochs."""
    history = store.history(run_id)
    kept = min(history, key=lambda epoch: epoch["val_loss"])
    return kept["val_accuracy"], kept["val_loss"]


def test_every_member_is_a_finished_run_with_its_own_settings(swept) -> None:
    store, result, _ = swept
    assert [member.settings for member in result.members] == SETTINGS
    for member in result.members:
        record = store.get(member.run_id)
        assert record.status == "done" and member.status == "done"
        assert record.train.lr == member.settings["lr"]
        assert record.train.dropout == member.settings.get("dropout", 0.2)
        assert record.train.batch_size == member.settings.get("batch_size", 16)
        assert record.config["train"]["label_smoothing"] == member.settings.get("label_smoothing", 0.0)
        assert member.history == store.history(member.run_id) and len(member.history) >= 1


def test_a_cancel_between_heads_keeps_the_finished_members(swept) -> None:
    """Catches a cancel that drops finished members, or trains the next head anyway."""
    store, result, _ = swept
    assert result.stopped and len(result.members) == len(SETTINGS)  # the last setting never trained
    assert sorted(record.id for record in store.list()) == [member.run_id for member in result.members]
    assert result.winner in result.members and result.model is not None


def test_the_winner_has_the_best_validation_accuracy_of_its_members(swept) -> None:
    """Catches a winner chosen by loss alone, by training accuracy, by position, or by the last epoch."""
    store, result, _ = swept
    kept = {member.run_id: best_by_hand(store, member.run_id) for member in result.members}
    assert len({accuracy for accuracy, _ in kept.values()}) >= 3  # the members really differ
    best = max(accuracy for accuracy, _ in kept.values())
    expected = min((loss, run_id) for run_id, (accuracy, loss) in kept.items() if accuracy == best)[1]
    assert result.winner.run_id == expected
    assert result.winner.metrics["best_val_accuracy"] == pytest.approx(best)
    assert result.leaderboard()[0] is result.winner


def test_progress_names_each_member_and_epoch_in_order(swept) -> None:
    _, result, reports = swept
    expected = [
        (number, len(SETTINGS) + 1, member.run_id, epoch)  # + the setting the cancel skipped
        for number, member in enumerate(result.members, start=1)
        for epoch in range(1, len(member.history) + 1)
    ]
    assert [(r.member, r.members, r.run_id, r.epoch) for r in reports] == expected
    assert {r.epochs for r in reports} == {3}


def test_the_promoted_run_is_a_normal_head_run_that_reproduces_its_validation_accuracy(
    swept, features
) -> None:
    """Catches a promoted model that is not the winner's head on the backbone, or not the best epoch."""
    store, result, _ = swept
    run_id = store.create("head", result.winner.config, status="running")
    metrics = promote(store, features, result, run_id)
    store.finish(run_id, "done", metrics)
    record = store.get(run_id)
    assert record.status == "done" and record.broken is None
    assert store.history(run_id) == [
        {**epoch, "seconds": pytest.approx(epoch["seconds"])} for epoch in result.winner.history
    ]
    paths = store.paths(run_id)
    assert json.loads(paths.class_names.read_text()) == sorted(STRIPED_CLASSES)  # as folders list them
    assert json.loads(paths.evaluation.read_text())["count"] == len(features.data.arrays["test"][1])
    model = load_model(paths.model)  # the full model: it takes images
    images, labels = features.data.arrays["validation"]
    predicted = model.predict(images.astype(np.float32), verbose=0).argmax(axis=1)
    accuracy = float(np.mean(predicted == labels))
    assert accuracy == pytest.approx(result.winner.metrics["best_val_accuracy"], abs=1e-6)
    assert metrics["best_val_accuracy"] == result.winner.metrics["best_val_accuracy"]
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


# -- stopping ---------------------------------------------------------------------------------------


def test_cancelling_the_running_member_stops_the_sweep(features, tmp_path) -> None:
    """Catches a sweep that trains on after its running member was cancelled in the registry."""
    store = RunStore(tmp_path / "workspace")

    def cancel_at_the_second_epoch(progress) -> None:
        if progress.epoch == 2:
            store.request_cancel(progress.run_id)

    hooks = SweepHooks(progress=cancel_at_the_second_epoch)
    result = run_sweep(store, features, SETTINGS[1:3], new_run_in(store), hooks)
    (member,) = result.members
    assert member.status == "cancelled" and result.stopped
    assert store.get(member.run_id).status == "cancelled" and len(store.list()) == 1
    assert len(store.history(member.run_id)) == 1  # the epoch the cancel cut short is not logged
    assert result.winner is None  # only a member that finished can win


def test_a_failing_member_is_recorded_failed(features, tmp_path) -> None:
    store = RunStore(tmp_path / "workspace")

    class OutOfMemory(type(features)):
        def new_model(self, dropout):
            raise RuntimeError("out of memory")

    failing = OutOfMemory(**{f.name: getattr(features, f.name) for f in dataclasses.fields(features)})
    with pytest.raises(RuntimeError):
        run_sweep(store, failing, SETTINGS[1:3], new_run_in(store), SweepHooks())
    (record,) = store.list()
    assert record.status == "failed" and "out of memory" in record.error
