"""The `label-issues` command: a finished run's training and validation images, most suspect label first.

`python -m core label-issues --run ID [--top K] [--folds K]` uses the newest finished ranking of
the run (core.training.label_issues); when there is none it queues the job and carries it out in
this process, as `lr-find` does. Then it prints one line per image, most suspect first:
`<file> <given label> <suggested label> <score>` (score: cleanlab's label quality, 0 to 1, low =
the model disagrees with the given label). Progress and job lines go to stderr, so stdout is the list.

Imports nothing of core.cli at module level, so core.cli.parser can import its parser adder.
"""

from __future__ import annotations

import contextlib
import sys

from core.curation import DEFAULT_FOLDS, DEFAULT_TOP


def add_label_issues_parser(commands) -> None:
    """The `label-issues` command's options."""
    from core.cli.parser import POSITIVE

    p = commands.add_parser(
        "label-issues", help="list a run's training images whose labels the model doubts, most suspect first"
    )
    p.add_argument("--run", type=int, required=True, metavar="ID", help="a finished training run")
    p.add_argument("--top", type=POSITIVE, default=DEFAULT_TOP, metavar="K", help="images to list")
    p.add_argument(
        "--folds",
        type=POSITIVE,
        default=DEFAULT_FOLDS,
        metavar="K",
        help=f"heads of the out-of-fold predictions when the ranking is computed (default {DEFAULT_FOLDS})",
    )


def cmd_label_issues(args) -> int:
    """Print run --run's ranking, computing it first when it has no readable one; 1 when that failed."""
    from core.cli.commands import store_of
    from core.cli.parser import EXIT_FAILED, EXIT_OK
    from core.curation.ranking import ranking_lines, read_ranking
    from core.errors import PetLabError
    from core.runs.records import LABEL_ISSUES
    from core.runs.requests import latest_analysis

    store = store_of(args)
    job = latest_analysis(store, LABEL_ISSUES, args.run)
    ranking = read_ranking(store.paths(job.id).label_issues) if job and job.status == "done" else None
    if ranking is None:
        job = _find_label_issues(store, args.run, args.folds)
        if job is None:
            return EXIT_FAILED
        ranking = read_ranking(store.paths(job.id).label_issues)
        if ranking is None:
            raise PetLabError(f"The label-issue ranking of run {args.run} could not be read; run this again.")
    for line in ranking_lines(ranking, args.top):
        print(line)
    return EXIT_OK


def _find_label_issues(store, run_id: int, folds: int):
    """Queue the ranking of run `run_id` and carry it out here; its record, or None when it failed."""
    from core.cli.experiments import _run_job
    from core.errors import PetLabError
    from core.runs.records import LABEL_ISSUES
    from core.runs.requests import queue_analysis

    job_id = queue_analysis(store, LABEL_ISSUES, run_id, {"folds": folds})
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the list alone
        if not _run_job(store, job_id):
            return None
    job = store.get(job_id)
    if job.status != "done":
        raise PetLabError(f"Finding the label issues of run {run_id} was {job.status}; run it again.")
    return job
