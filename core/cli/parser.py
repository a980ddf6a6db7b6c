"""The command line's arguments: every command's options, and the checks that refuse bad values.

A bad value is a usage error (exit 2, one line) before anything runs or any TensorFlow loads.
Defaults come from core.config.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from core import config as cfg
from core.cli.curation import add_label_issues_parser
from core.cli.report import add_report_parser
from core.errors import BadInputError
from core.runs.layout import EXPORT_FORMATS

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
MAX_SEED = 2**32 - 1  # what numpy's and TensorFlow's seeding accept


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see --help)\n")


# -- argument values: a bad one is a usage error (exit 2) before anything runs ----------------


def _checked(convert: Callable[[str], Any], wanted: str, ok: Callable[[Any], bool]) -> Callable[[str], Any]:
    """An argparse type: `convert` the text and insist on `ok`, else a usage error saying what is wanted."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {text!r}")
        return value

    return parse


def _unfreeze(text: str) -> str:
    try:
        cfg.parse_unfreeze(text)
    except BadInputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--unfreeze ").rstrip(".")) from None
    return text


def _swept(value: Callable[[str], Any]) -> Callable[[str], list | tuple]:
    """An argparse type for a sweep: values separated by commas (a list), or a LOW:HIGH range (a tuple)."""

    def parse(text: str) -> list | tuple:
        parts = text.split(":")
        if len(parts) == 2:
            return tuple(value(part) for part in parts)
        return [value(part) for part in text.split(",")]

    return parse


POSITIVE = _checked(int, "a whole number of at least 1", lambda value: value >= 1)
NON_NEGATIVE = _checked(int, "a whole number, 0 or more", lambda value: value >= 0)
SEED = _checked(int, f"a whole number from 0 to {MAX_SEED}", lambda value: 0 <= value <= MAX_SEED)
LEARNING_RATE = _checked(float, "a number above 0", lambda value: 0 < value < math.inf)
DROPOUT = _checked(float, "a fraction from 0 up to (not including) 1", lambda value: 0 <= value < 1)
LABEL_SMOOTHING = DROPOUT  # the same rule: a fraction from 0 up to 1
SECONDS = _checked(float, "a number of seconds, 0 or more", lambda value: value >= 0)
# The settings a sweep varies (core.training.sweep.SWEEPABLE): option, then each value's type.
SWEPT = {
    "lr": ("--lr", LEARNING_RATE),
    "dropout": ("--dropout", DROPOUT),
    "label_smoothing": ("--label-smoothing", LABEL_SMOOTHING),
    "batch_size": ("--batch-size", POSITIVE),
    "epochs": ("--epochs", POSITIVE),
}


# -- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all commands."""
    parser = _Parser(prog="python -m core", description="PetLab: transfer learning for pet breeds.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    adders = (_add_data, _add_train, _add_experiments, _add_finetune, _add_run_commands, _add_export)
    for add in (*adders, _add_lite_copy, add_report_parser, add_label_issues_parser, _add_housekeeping):
        add(commands)
    for command in commands.choices.values():
        command.add_argument(
            "--workspace", metavar="DIR", help="workspace folder (default: $PETLAB_WORKSPACE or ./workspace)"
        )
    return parser


def _add_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", choices=cfg.SOURCES, default=cfg.DATA.source, help="where the images come from"
    )
    parser.add_argument("--path", metavar="P", help="folder or archive for oxford-files / folder sources")


def _add_data(commands) -> None:
    _add_source(commands.add_parser("data", help="prepare a dataset and show its classes and split sizes"))


def _add_model(parser: argparse.ArgumentParser) -> None:
    """The data and the model a head trains on, and its seed: every head command's first options."""
    t = cfg.TRAIN
    _add_source(parser)
    parser.add_argument("--backbone", default=t.backbone, help=f"backbone name (default {t.backbone})")
    parser.add_argument(
        "--weights", default=t.weights, help="imagenet, none, or a Keras weights file (no top)"
    )
    parser.add_argument(
        "--image-size", type=int, default=t.image_size, help="pixels (default: the backbone's)"
    )
    parser.add_argument(
        "--augment", default=t.augment, metavar="SPEC", help="e.g. flip,rotation=0.1,zoom=0.1 or none"
    )
    parser.add_argument("--seed", type=SEED, default=t.seed)


def _add_patience(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument(
        "--patience", type=NON_NEGATIVE, default=default, help="early-stopping patience; 0 = off"
    )


def _add_train(commands) -> None:
    t = cfg.TRAIN
    p = commands.add_parser("train", help="train a classification head on a frozen backbone")
    _add_model(p)
    p.add_argument("--epochs", type=POSITIVE, default=t.epochs)
    p.add_argument("--lr", type=LEARNING_RATE, default=t.lr, help="learning rate")
    p.add_argument("--batch-size", type=POSITIVE, default=t.batch_size)
    _add_patience(p, t.patience)
    p.add_argument("--dropout", type=DROPOUT, default=t.dropout)
    _add_label_smoothing(p)
    p.add_argument(
        "--no-feature-cache",
        dest="feature_cache",
        action="store_false",
        help="run the frozen backbone on every image in every epoch (the reference pipeline)",
    )
    p.add_argument(
        "--no-curation",
        dest="curation",
        action="store_false",
        help="train on the labels as given, ignoring the relabel / exclude marks saved for the data",
    )


def _add_experiments(commands) -> None:
    """lr-find and sweep: many heads on the cached features of one data set."""
    t = cfg.TRAIN
    p = commands.add_parser("lr-find", help="suggest a learning rate for the head (a short rising-rate fit)")
    _add_model(p)
    p.add_argument("--batch-size", type=POSITIVE, default=t.batch_size)
    p.add_argument("--dropout", type=DROPOUT, default=t.dropout)
    _add_label_smoothing(p)
    p = commands.add_parser(
        "sweep", help="train a head per setting on cached features; promote the best by validation"
    )
    _add_model(p)
    _add_patience(p, t.patience)
    for name, (option, value) in SWEPT.items():
        p.add_argument(
            option,
            dest=f"sweep_{name}",
            type=_swept(value),
            metavar="A,B,…|LOW:HIGH",
            help=f"values to try (default {getattr(cfg.TRAIN, name)}); a range needs --random",
        )
    p.add_argument(
        "--random",
        type=POSITIVE,
        metavar="N",
        help="draw N settings from the ranges and lists (seeded by --seed)",
    )


def _add_label_smoothing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--label-smoothing",
        type=LABEL_SMOOTHING,
        default=cfg.TRAIN.label_smoothing,
        help="smooth the loss's targets by this fraction (default: none)",
    )


def _add_finetune(commands) -> None:
    f = cfg.FINETUNE
    p = commands.add_parser("finetune", help="fine-tune a finished head run with the backbone unfrozen")
    p.add_argument("--from", dest="parent", type=int, required=True, metavar="ID", help="the head run")
    p.add_argument("--epochs", type=POSITIVE, default=f.epochs)
    p.add_argument("--lr", type=LEARNING_RATE, default=f.lr)
    p.add_argument(
        "--unfreeze", type=_unfreeze, default=f.unfreeze, metavar="N|all", help="backbone layers to unfreeze"
    )
    p.add_argument("--batch-size", type=POSITIVE, default=f.batch_size, help="default: the head run's")
    _add_patience(p, f.patience)
    p.add_argument("--seed", type=SEED, default=f.seed)
    p.add_argument(
        "--no-feature-cache",
        dest="feature_cache",
        action="store_false",
        help="with --unfreeze N: run the frozen lower backbone every epoch instead of once (cached)",
    )


def _add_run_commands(commands) -> None:
    """The commands that act on one run: resume, evaluate, predict."""
    p = commands.add_parser("resume", help="continue a failed run from its last finished epoch")
    p.add_argument("--run", type=int, required=True, metavar="ID")
    p = commands.add_parser("evaluate", help="evaluate a run on the test split")
    p.add_argument("--run", type=int, required=True, metavar="ID")
    p = commands.add_parser(
        "predict", help="top-k breeds for image files, or (--csv) every photo of a folder or zip"
    )
    p.add_argument("--run", type=int, required=True, metavar="ID")
    p.add_argument("--top", type=POSITIVE, default=5, metavar="K")
    p.add_argument(
        "--csv", metavar="FILE", help="with one folder or zip: write file, class_1, prob_1, … per photo"
    )
    p.add_argument("images", nargs="+", metavar="IMAGE")


def _add_export(commands) -> None:
    p = commands.add_parser("export", help="export a finished run's model for serving or for devices")
    p.add_argument("--run", type=int, required=True, metavar="ID")
    p.add_argument(
        "--format",
        required=True,
        choices=EXPORT_FORMATS,
        help="keras (a copy), savedmodel (TF Serving) or tflite (phones, edge devices)",
    )
    p.add_argument(
        "--quantize", action="store_true", help="tflite only: dynamic-range quantized, about 4x smaller"
    )


def _add_lite_copy(commands) -> None:
    p = commands.add_parser(
        "lite-copy",
        help="write finished runs' LiteRT copies (the dashboard's first answers) where they are missing",
    )
    p.add_argument(
        "--run",
        type=int,
        action="append",
        metavar="ID",
        help="this run (repeat for more); default: every finished run without a current copy",
    )


def _add_housekeeping(commands) -> None:
    """The commands about the registry and the queue: runs, cancel, worker."""
    p = commands.add_parser("runs", help="list runs")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p = commands.add_parser("cancel", help="ask a running or queued run to stop")
    p.add_argument("run", type=int, metavar="ID")
    p = commands.add_parser("worker", help="execute queued runs one at a time (the dashboard starts this)")
    p.add_argument(
        "--linger",
        type=SECONDS,
        default=0.0,
        metavar="SECONDS",
        help="once the queue is empty, wait this long for new runs before exiting (default 0)",
    )
    commands.add_parser("device", help="print the device runs train on (and note it for the dashboard)")
