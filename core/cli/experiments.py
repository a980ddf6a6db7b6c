"""The command line's experiments on cached features: `lr-find` and `sweep`.

Both queue a job in the registry (core.runs.requests) and carry it out in this process, as
`train` does, so the dashboard sees them like any job. `lr-find` prints the suggested learning
rate and where its curve was written (the job's folder). `sweep` trains a head per setting (a
grid of the values given, or --random N draws), each a member run of the sweep, prints the
leaderboard and ends with `run: <ID>`, the winner by validation promoted to a normal head run.
"""

from __future__ import annotations

import sys

from core.cli.commands import data_config, store_of, train_config
from core.cli.parser import EXIT_FAILED, EXIT_OK, SWEPT
from core.errors import BadInputError, PetLabError


def _say(line: str) -> None:
    print(line, flush=True)


def _run_job(store, job_id: int) -> bool:
    """Carry out queued job `job_id` in this process (after any run ahead of it); whether it did not fail."""
    from core.progress import TerminalProgress
    from core.training.worker import run_queue

    _say(f"queued: run {job_id}")
    run_queue(store, until=job_id, say=_say, progress=TerminalProgress())
    record = store.get(job_id)
    if record.status == "failed":  # ended by another process
        print(f"error: {record.error or f'Run {job_id} failed.'}", file=sys.stderr)
        return False
    return True


def cmd_lr_find(args) -> int:
    from core.runs.requests import queue_lr_find

    store = store_of(args)
    job_id = queue_lr_find(store, data_config(args), train_config(args))
    if not _run_job(store, job_id):
        return EXIT_FAILED
    suggestion = store.get(job_id).metrics.get("suggested_lr")
    print(f"curve: {store.paths(job_id).lr_curve}")
    if suggestion is None:
        raise PetLabError(
            "The loss did not fall at any learning rate tried, so there is no suggestion; "
            "check that the labels fit the images, or try another batch size."
        )
    print(f"suggestion: {suggestion:.3g}")
    return EXIT_OK


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
    from core.catalog.experiments import grid, random_draws
    from core.runs.requests import queue_sweep

    values = swept_values(args)
    settings = random_draws(values, args.random, args.seed) if args.random else grid(values)
    store = store_of(args)
    sweep_id = queue_sweep(store, data_config(args), train_config(args), settings)
    if not _run_job(store, sweep_id):
        return EXIT_FAILED
    sweep = store.get(sweep_id)
    _print_leaderboard(store, sweep)
    winner = sweep.metrics.get("winner")
    if winner is None:
        raise PetLabError("The sweep was cancelled before any setting finished, so nothing was promoted.")
    metrics = store.get(winner).metrics
    print(f"test accuracy: {metrics['test_accuracy']:.4f}  top-5: {metrics['test_top5_accuracy']:.4f}")
    print(f"run: {winner}")
    return EXIT_OK


def _print_leaderboard(store, sweep) -> None:
    from core.catalog.experiments import describe
    from core.tables.sweeps import members_of, rank_key

    members = sorted(members_of(store.list(), sweep.id), key=rank_key)
    print(f"sweep {sweep.id} leaderboard (chosen by validation; the test split is not used to choose):")
    for place, member in enumerate(members, start=1):
        accuracy, loss = member.metrics.get("best_val_accuracy"), member.metrics.get("best_val_loss")
        shown = (
            "no finished epoch" if accuracy is None else f"val accuracy {accuracy:.4f}  val loss {loss:.4f}"
        )
        status = "" if member.status == "done" else f"  ({member.status})"
        setting = describe(member.config.get("sweep", {}).get("settings", {}))
        print(f"{place:>3}. {setting} (run {member.id}): {shown}{status}")
    if sweep.status == "cancelled":
        print(f"stopped after {len(members)} of {sweep.metrics.get('settings')} settings (cancelled)")
