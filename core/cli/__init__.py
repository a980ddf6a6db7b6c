"""The PetLab command line: every product action without a screen.

Commands: data, train, lr-find, sweep, finetune, resume, evaluate, predict, export, report,
label-issues, runs, cancel, worker, device. Exit 0 on success; 2 on bad input (a usage error, a value out of
range, an unknown run, backbone or file: a BadInputError) and 1 on any other failure (a run
that failed or was cancelled, a full disk, no network), each with one clear line on stderr and
no traceback. Defaults come from core.config.

    parser        every command's options and the checks on their values
    commands      data, single runs (train, finetune, resume, evaluate, predict, export) and the registry
    experiments   lr-find and sweep: many heads on cached features
    report        report: a run's self-contained HTML report
    curation      label-issues: the training images whose labels the model disputes

Importing this package loads no TensorFlow: each command imports what it needs when it runs, and
`python -m core` loads it only after the arguments are read, for the commands that need it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from core.cli import commands, curation, experiments, report
from core.cli.parser import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, build_parser
from core.errors import BadInputError, PetLabError
from core.runs.layout import EXPORT_FORMATS

COMMANDS = {
    "data": commands.cmd_data,
    "train": commands.cmd_train,
    "lr-find": experiments.cmd_lr_find,
    "sweep": experiments.cmd_sweep,
    "finetune": commands.cmd_finetune,
    "resume": commands.cmd_resume,
    "evaluate": commands.cmd_evaluate,
    "predict": commands.cmd_predict,
    "export": commands.cmd_export,
    "lite-copy": commands.cmd_lite_copy,
    "report": report.cmd_report,
    "label-issues": curation.cmd_label_issues,
    "runs": commands.cmd_runs,
    "cancel": commands.cmd_cancel,
    "worker": commands.cmd_worker,
    "device": commands.cmd_device,
}


# Answered without TensorFlow: reading and changing the registry, writing a report.
TENSORFLOW_FREE_COMMANDS = frozenset({"runs", "cancel", "report"})


def main(argv: list[str] | None = None, before: Callable[[str], None] | None = None) -> int:
    """Run one command; returns the exit code (a usage error exits 2 from the parser).

    `before(command)` runs once the arguments are read and valid, before the command itself.
    """
    args = build_parser().parse_args(argv)
    if before is not None:
        before(args.command)
    try:
        return COMMANDS[args.command](args)
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except PetLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_OK
    except KeyboardInterrupt:
        print("error: interrupted; the run is marked failed and earlier runs are intact.", file=sys.stderr)
        return EXIT_FAILED


__all__ = ["COMMANDS", "EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "EXPORT_FORMATS", "build_parser", "main"]
