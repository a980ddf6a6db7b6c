"""Sweeps: many heads trained on the same cached features, the best by validation promoted to a run.

A sweep trains one head per setting, a setting being overrides of the head-training config
(core.catalog.experiments: learning rate, dropout, label smoothing, batch size, epochs; `grid`
and `random_draws` make the list), all on features computed once (core.training.head_features),
one after the other in this process. Each member goes through the reference fit
(core.training.fit: early stopping on val_loss with the config's patience, best weights
restored) as its own run in the registry, created by the caller's `new_run` and finished here,
so its epochs and progress are logged like any run's. The winner is chosen on the validation
split alone: the highest validation accuracy of the weights a member kept, ties to the lower
validation loss. The test split is never used to choose. `promote` then makes a run the
winner's normal head run: its epochs, the full model.keras (backbone + head), class names,
config, history and test report, so it can be evaluated, exported and fine-tuned.

A sweep stops between heads when `should_stop()` says so, or after a member was cancelled,
keeping the members that finished. Members fit without the per-epoch backup and TensorBoard
(a member is never resumed). As a job of the worker's queue, `execute_sweep` makes the
members "member" runs of the sweep and promotes the winner to a new "head" run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import keras

from core import config as cfg
from core.catalog.experiments import Settings, check_settings, describe
from core.errors import BadInputError, PetLabError
from core.progress import ProgressCallback, no_progress
from core.runs.records import MEMBER, RunRecord
from core.runs.store import RunStore
from core.training.artifacts import save_artifacts, write_evaluation
from core.training.callbacks import Printer
from core.training.feature_cache import head_model
from core.training.fit import TrainingRun, fit
from core.training.head import curation_counts, head_plan
from core.training.head_features import HeadFeatures, load_head_features

NewRun = Callable[[dict], int]  # makes a running run for a member's config; returns its id


def member_train(train: cfg.TrainConfig, settings: Settings) -> cfg.TrainConfig:
    """The head-training config of one member: the base with the setting's overrides."""
    return dataclasses.replace(train, **settings)


def member_config(features: HeadFeatures, index: int, settings: Settings) -> dict:
    """A member's run config: a head run's data and train, and its place in the sweep."""
    return {
        "data": cfg.to_dict(features.config),
        "train": cfg.to_dict(member_train(features.train, settings)),
        "sweep": {"member": index + 1, "settings": settings},
    }


# -- running a sweep -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep is: member (1-based) of members, its run, and the epoch (1-based) it starts."""

    member: int
    members: int
    run_id: int
    settings: Settings
    epoch: int
    epochs: int


def _silent(line: str) -> None:
    pass


@dataclass(frozen=True)
class SweepHooks:
    """What a sweep tells and asks its caller: lines, progress, and whether to stop before a head."""

    say: Printer = _silent
    progress: Callable[[SweepProgress], None] = lambda progress: None
    should_stop: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class Member:
    """One finished (or cancelled) member: its setting, run, config, per-epoch history and metrics."""

    index: int
    settings: Settings
    run_id: int
    config: dict
    status: str
    history: list[dict]
    metrics: dict  # core.training.fit.history_metrics: best_val_accuracy, best_val_loss, best_epoch, ...

    @property
    def rank(self) -> tuple[float, float, int]:
        """Sorts the best first: highest validation accuracy kept, then lowest validation loss."""
        accuracy = self.metrics.get("best_val_accuracy", -math.inf)
        return (-accuracy, self.metrics.get("best_val_loss", math.inf), self.index)


@dataclass(frozen=True, eq=False)
class SweepResult:
    """The members in the order they trained, the winner (a done member) and its trained full model."""

    members: list[Member]
    winner: Member | None
    model: keras.Model | None
    stopped: bool  # stopped before every setting trained (a cancel)

    def leaderboard(self) -> list[Member]:
        """The members best first (by validation only)."""
        return sorted(self.members, key=lambda member: member.rank)


def run_sweep(
    store: RunStore, features: HeadFeatures, settings: list[Settings], new_run: NewRun, hooks: SweepHooks
) -> SweepResult:
    """Train a head per setting on `features`; the winner is the best done member by validation."""
    if not len(features.validation):
        raise BadInputError(
            "A sweep chooses by validation accuracy, but the data has no validation images; "
            "use more images or a larger validation fraction."
        )
    settings = check_settings(settings)
    members: list[Member] = []
    best: tuple[Member, keras.Model] | None = None
    stopped = False
    for index, setting in enumerate(settings):
        if hooks.should_stop():
            stopped = True
            break
        member, model = _train_member(store, features, (index, len(settings)), setting, new_run, hooks)
        members.append(member)
        if member.status == "done" and (best is None or member.rank < best[0].rank):
            best = (member, model)
        if member.status == "cancelled":  # the member's run was cancelled: so is the sweep
            stopped = index + 1 < len(settings)
            break
    winner, model = best or (None, None)
    return SweepResult(members, winner, model, stopped)


def _train_member(
    store: RunStore,
    features: HeadFeatures,
    place: tuple[int, int],
    settings: Settings,
    new_run: NewRun,
    hooks: SweepHooks,
) -> tuple[Member, keras.Model]:
    """Fit one member's new head as its own run; returns the member and its full model."""
    index, total = place
    config = member_config(features, index, settings)
    run_id = new_run(config)
    run = TrainingRun(store, store.get(run_id), hooks.say, no_progress)
    train = member_train(features.train, settings)
    plan = head_plan(train)
    reporter = _Announcer(hooks.progress, SweepProgress(index + 1, total, run_id, settings, 0, plan.epochs))
    try:
        model = features.new_model(train.dropout)
        # A member is never resumed: no per-epoch backup, no TensorBoard (about twice as fast).
        status, metrics = fit(run, head_model(model), features.datasets(plan), plan, [reporter], False)
    except BaseException as exc:
        store.finish(run_id, "failed", error=_failure(exc))
        raise
    metrics |= curation_counts(features.curation)  # the winner's run inherits them
    store.finish(run_id, status, metrics)
    return Member(index, settings, run_id, config, status, store.history(run_id), metrics), model


def _failure(exc: BaseException) -> str:
    if isinstance(exc, PetLabError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "The sweep was interrupted (Ctrl-C); its finished members are kept."
    return f"Training failed: {type(exc).__name__}: {exc}"[:500]


class _Announcer(keras.callbacks.Callback):
    """Reports each epoch's start of a member to the sweep's progress hook."""

    def __init__(self, report: Callable[[SweepProgress], None], where: SweepProgress) -> None:
        super().__init__()
        self.report, self.where = report, where

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.report(dataclasses.replace(self.where, epoch=epoch + 1))


# -- promoting the winner --------------------------------------------------------------------------


def promote(
    store: RunStore,
    features: HeadFeatures,
    result: SweepResult,
    run_id: int,
    progress: ProgressCallback = no_progress,
) -> dict:
    """Make run `run_id` the winner's head run; returns its final metrics (the caller finishes the run).

    The run gets the winner's epochs (unless it is the winner's own run), the full model
    (backbone + the winner's head), class names, config and history, and the test report.
    """
    winner = result.winner
    if winner is None or result.model is None:
        raise PetLabError("The sweep has no finished member to promote; start the sweep again.")
    if run_id != winner.run_id:
        for entry in winner.history:
            metrics = {k: v for k, v in entry.items() if k not in ("epoch", "seconds")}
            store.log_epoch(run_id, entry["epoch"], metrics, entry["seconds"])
    run = TrainingRun(store, store.get(run_id), _silent, progress)
    save_artifacts(run, result.model, features.data.class_names)  # the full model: backbone + the head
    report = features.test_report(head_model(result.model), progress)
    chosen = {"feature_cache": True, "sweep_member": winner.run_id, "sweep_settings": winner.settings}
    return winner.metrics | chosen | write_evaluation(run, report)


# -- the worker's sweep job ------------------------------------------------------------------------


def execute_sweep(store: RunStore, record: RunRecord, say: Printer, progress: ProgressCallback) -> None:
    """Carry out a claimed sweep job to its end: its members, then the winner promoted to a head run.

    Members are "member" runs and the winner a new "head" run, all with the sweep as parent.
    The sweep's progress says which setting trains and its epoch; a cancel of the sweep stops
    it before the next head, and the best member finished so far is still promoted. The sweep
    ends done, or cancelled when it stopped early; its metrics name the winner's run.
    """
    sweep_id, settings = record.id, record.config["sweep"]["settings"]
    features = load_head_features(record.data, record.train, store.workspace, progress)
    store.set_progress(sweep_id, stage=None)

    def new_run(config: dict) -> int:
        return store.create(MEMBER, config, parent=sweep_id, status="running")

    def report(where: SweepProgress) -> None:
        place = {"member": where.member, "members": where.members, "member_run": where.run_id}
        store.set_progress(sweep_id, **place, epoch=where.epoch, epochs=where.epochs)
        if where.epoch == 1:
            say(f"sweep {sweep_id}: setting {where.member}/{where.members}: {describe(where.settings)}")

    hooks = SweepHooks(say, report, lambda: store.cancel_requested(sweep_id))
    result = run_sweep(store, features, settings, new_run, hooks)
    stopped = result.stopped or any(member.status == "cancelled" for member in result.members)
    summary = {"members": len(result.members), "settings": len(settings)}
    if result.winner is None:
        store.finish(sweep_id, "cancelled", summary)
        say(f"sweep {sweep_id} cancelled before any setting finished")
        return
    winner = promote_winner(store, features, result, sweep_id, progress)
    best = {k: result.winner.metrics.get(k) for k in ("best_val_accuracy", "best_val_loss")}
    chosen = {"winner": winner, "winner_member": result.winner.run_id}
    store.finish(sweep_id, "cancelled" if stopped else "done", summary | best | chosen)
    say(f"sweep {sweep_id} {'cancelled' if stopped else 'done'}: the winner is run {winner}")


def promote_winner(
    store: RunStore, features: HeadFeatures, result: SweepResult, sweep_id: int, progress: ProgressCallback
) -> int:
    """A new done head run (parent: the sweep) holding the sweep's winner; returns its id."""
    run_id = store.create("head", result.winner.config, parent=sweep_id, status="running")
    try:
        metrics = promote(store, features, result, run_id, progress)
    except BaseException as exc:
        store.finish(run_id, "failed", error=_failure(exc))
        raise
    store.finish(run_id, "done", metrics)
    return run_id
