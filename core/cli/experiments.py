"""The command line's experiments on cached features: `lr-find` and `sweep`.

`lr-find` prints the suggested learning rate and writes the curve (CSV) under the workspace.
`sweep` trains a head per setting (a grid of the values given, or --random N draws) and ends
with `run: <ID>`, the winner by validation promoted to a normal head run.

Until the registry knows sweeps (a "sweep" record with its members as child runs), each member
is a head run while it trains; once the winner is promoted in place, the other members' runs are
removed and their settings and results are kept in the winner's metrics ("sweep").
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from core.cli.commands import data_config, store_of, train_config
from core.cli.parser import EXIT_OK, SWEPT
from core.errors import BadInputError, PetLabError
from core.workspace import atomic_write_text, resolve_workspace

LR_FIND_FOLDER = "lr_find"  # <workspace>/lr_find/<time>.csv: the curves lr-find wrote


def cmd_lr_find(args) -> int:
    from core.progress import TerminalProgress
    from core.training.device import configure_device
    from core.training.lr_finder import lr_find

    workspace = resolve_workspace(args.workspace)
    configure_device()
    train = train_config(args)
    curve = lr_find(data_config(args), train, workspace, TerminalProgress(), args.label_smoothing)
    path = write_curve(workspace / LR_FIND_FOLDER, curve)
    print(f"curve: {path}")
    if curve.suggestion is None:
        raise PetLabError(
            "The loss did not fall at any learning rate tried, so there is no suggestion; "
            "check that the labels fit the images, or try another batch size."
        )
    print(f"suggestion: {curve.suggestion:.3g}")
    return EXIT_OK


def write_curve(folder: Path, curve) -> Path:
    """The finder's curve as CSV (lr, loss, raw_loss) in a new file of `folder`; returns its path."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["lr", "loss", "raw_loss"])
    writer.writerows(zip(curve.lrs, curve.losses, curve.raw_losses, strict=True))
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 10**9:09d}"
    path = folder / f"{stamp}.csv"
    atomic_write_text(path, text.getvalue())
    return path


def swept_values(args) -> dict:
    """The values given per sweep setting: a list, or a (low, high) range; refused ranges without --random."""
    values = {name: getattr(args, f"sweep_{name}") for name in SWEPT}
    values = {name: value for name, value in values.items() if value is not None}
    ranges = [SWEPT[name][0] for name, value in values.items() if isinstance(value, tuple)]
    if ranges and not args.random:
        what = "is a range" if len(ranges) == 1 else "are ranges"
        raise BadInputError(
            f"{', '.join(ranges)} {what}; add --random N to draw settings from ranges, "
            "or list values separated by commas."
        )
    return values


def cmd_sweep(args) -> int:
    values = swept_values(args)
    from core.progress import TerminalProgress
    from core.training.device import configure_device
    from core.training.head_features import load_head_features
    from core.training.sweep import SweepHooks, grid, promote, random_draws, run_sweep

    settings = random_draws(values, args.random, args.seed) if args.random else grid(values)
    store = store_of(args)
    configure_device()
    features = load_head_features(data_config(args), train_config(args), store.workspace, TerminalProgress())
    created: list[int] = []

    def new_run(config: dict) -> int:
        created.append(store.create("head", config, status="running"))
        return created[-1]

    hooks = SweepHooks(say=_say, progress=_announce)
    promoted = None
    try:
        result = run_sweep(store, features, settings, new_run, hooks)
        _print_leaderboard(result)
        if result.winner is None:
            raise PetLabError("The sweep was cancelled before any setting finished, so nothing was promoted.")
        promoted = result.winner.run_id
        metrics = promote(store, features, result, promoted, TerminalProgress())
        store.finish(promoted, "done", metrics | {"sweep": [_summary(member) for member in result.members]})
    finally:
        _remove_members(store, created, keep=promoted)
    print(f"test accuracy: {metrics['test_accuracy']:.4f}  top-5: {metrics['test_top5_accuracy']:.4f}")
    print(f"run: {promoted}")
    return EXIT_OK


def _say(line: str) -> None:
    print(line, flush=True)


def _announce(progress) -> None:
    from core.training.sweep import describe

    if progress.epoch == 1:
        where = f"setting {progress.member}/{progress.members}"
        _say(f"{where}: {describe(progress.settings)} (run {progress.run_id})")


def _print_leaderboard(result) -> None:
    from core.training.sweep import describe

    print("leaderboard (chosen by validation; the test split is not used to choose):")
    for place, member in enumerate(result.leaderboard(), start=1):
        accuracy, loss = member.metrics.get("best_val_accuracy"), member.metrics.get("best_val_loss")
        shown = (
            "no finished epoch" if accuracy is None else f"val accuracy {accuracy:.4f}  val loss {loss:.4f}"
        )
        status = "" if member.status == "done" else f"  ({member.status})"
        print(f"{place:>3}. {describe(member.settings)}: {shown}{status}")
    if result.stopped:
        print(f"stopped after {len(result.members)} settings (cancelled)")


def _summary(member) -> dict:
    """What the winner's metrics keep of each member while sweeps have no record of their own."""
    keys = ("best_val_accuracy", "best_val_loss", "best_epoch", "epochs_run")
    return {"settings": member.settings, "status": member.status} | {k: member.metrics.get(k) for k in keys}


def _remove_members(store, created: list[int], keep: int | None) -> None:
    """Remove the members' runs that ended without a model (all but the promoted one); a failed one stays."""
    for run_id in created:
        if run_id != keep and store.get(run_id).status in ("done", "cancelled"):
            store.delete(run_id)
