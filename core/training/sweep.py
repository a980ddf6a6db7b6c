"""Sweeps: many heads trained on the same cached features, the best by validation promoted to a run.

A sweep trains one head per setting, a setting being overrides of the head-training config
(SWEEPABLE: learning rate, dropout, label smoothing, batch size, epochs; `grid` and
`random_draws` make the list), all on features computed once (core.training.head_features),
one after the other in this process. Each member goes through the reference fit
(core.training.fit: early stopping on val_loss with the config's patience, best weights
restored) as its own run in the registry, created by the caller's `new_run` and finished here,
so its epochs and progress are logged like any run's. The winner is chosen on the validation
split alone: the highest validation accuracy of the weights a member kept, ties to the lower
validation loss. The test split is never used to choose. `promote` then makes a run the
winner's normal head run: its epochs, the full model.keras (backbone + head), class names,
config, history and test report, so it can be evaluated, exported and fine-tuned.

A sweep stops between heads when `should_stop()` says so, or after a member was cancelled,
keeping the members that finished.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from core import config as cfg
from core.errors import BadInputError, PetLabError
from core.progress import ProgressCallback, no_progress
from core.runs.store import RunStore
from core.training.artifacts import save_artifacts, write_evaluation
from core.training.callbacks import Printer
from core.training.feature_cache import head_model
from core.training.fit import TrainingRun, fit
from core.training.head import head_plan
from core.training.head_features import HeadFeatures

Settings = dict[str, float | int]
# What a sweep can vary, with each value's type and the rule it must follow.
SWEEPABLE: dict[str, tuple[type, Callable[[float], bool], str]] = {
    "lr": (float, lambda v: 0 < v < math.inf, "above 0"),
    "dropout": (float, lambda v: 0 <= v < 1, "from 0 up to (not including) 1"),
    "label_smoothing": (float, lambda v: 0 <= v < 1, "from 0 up to (not including) 1"),
    "batch_size": (int, lambda v: v >= 1, "a whole number of at least 1"),
    "epochs": (int, lambda v: v >= 1, "a whole number of at least 1"),
}
MAX_MEMBERS = 100
NewRun = Callable[[dict], int]  # makes a running run for a member's config; returns its id


# -- the settings ----------------------------------------------------------------------------------


def grid(values_by_name: Mapping[str, Sequence[float]]) -> list[Settings]:
    """Every combination of the values given per name, in order (the last name varies fastest)."""
    names = list(values_by_name)
    _check_names(values_by_name)
    _check_count(math.prod(len(values_by_name[name]) for name in names))  # before building a huge grid
    combos = itertools.product(*(values_by_name[name] for name in names))
    return check_settings([dict(zip(names, combo, strict=True)) for combo in combos])


def random_draws(
    ranges: Mapping[str, tuple[float, float] | Sequence[float]], n: int, seed: int
) -> list[Settings]:
    """`n` settings drawn from `ranges`: a (low, high) tuple is a range, a list a choice among its values.

    Learning rates are drawn evenly on a log scale, whole-number settings as whole numbers, the
    rest evenly between low and high.
    """
    rng = np.random.default_rng(seed)

    def draw(name: str, spec) -> float | int:
        if not isinstance(spec, tuple):
            return spec[int(rng.integers(len(spec)))]
        low, high = sorted(spec)
        if SWEEPABLE[name][0] is int:
            return int(rng.integers(int(low), int(high) + 1))
        if name == "lr" and low > 0:
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        return float(rng.uniform(low, high))

    _check_names(ranges)
    _check_count(n)
    return check_settings([{name: draw(name, spec) for name, spec in ranges.items()} for _ in range(n)])


def check_settings(settings: list[Settings]) -> list[Settings]:
    """The settings with their values typed; BadInputError for an unknown name or a value out of range."""
    _check_count(len(settings))
    for setting in settings:
        _check_names(setting)
    return [{name: _typed(name, value) for name, value in setting.items()} for setting in settings]


def _typed(name: str, value: object) -> float | int:
    """`value` as the type setting `name` takes; BadInputError when it breaks the setting's rule."""
    kind, ok, rule = SWEEPABLE[name]
    try:
        typed = kind(value)
        fits = ok(typed) and (kind is float or float(value) == typed)  # 32.5 is no batch size
    except (TypeError, ValueError, OverflowError):
        fits = False
    if not fits:
        raise BadInputError(f"The sweep's {describe_name(name)} must be {rule}, not {value!r}.")
    return typed


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_MEMBERS:
        raise BadInputError(f"A sweep trains 1 to {MAX_MEMBERS} settings, not {count}; change the values.")


def _check_names(settings: Mapping[str, object]) -> None:
    unknown = sorted(set(settings) - set(SWEEPABLE))
    if unknown:
        raise BadInputError(f"A sweep cannot vary {', '.join(unknown)}; it varies {', '.join(SWEEPABLE)}.")


def describe_name(name: str) -> str:
    """A setting's name as a sentence spells it."""
    return "learning rate" if name == "lr" else name.replace("_", " ")


def describe(settings: Settings) -> str:
    """A setting as a person reads it: "lr 0.001, dropout 0.2"."""
    return ", ".join(f"{name.replace('_', ' ')} {value:g}" for name, value in settings.items()) or "reference"


def member_train(train: cfg.TrainConfig, settings: Settings) -> cfg.TrainConfig:
    """The head-training config of one member: the base with the setting's overrides."""
    return dataclasses.replace(train, **{k: v for k, v in settings.items() if k != "label_smoothing"})


def member_config(features: HeadFeatures, index: int, settings: Settings) -> dict:
    """A member's run config: a head run's data and train (with label smoothing), and its sweep place."""
    train = cfg.to_dict(member_train(features.train, settings))
    train["label_smoothing"] = float(settings.get("label_smoothing", 0.0))
    return {
        "data": cfg.to_dict(features.config),
        "train": train,
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
        datasets = features.datasets(plan, float(settings.get("label_smoothing", 0.0)))
        status, metrics = fit(run, head_model(model), datasets, plan, also=[reporter])
    except BaseException as exc:
        store.finish(run_id, "failed", error=_failure(exc))
        raise
    store.finish(run_id, status, metrics)
    shutil.rmtree(run.paths.backup, ignore_errors=True)  # a member is never resumed
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
