"""The PetLab command line: every product action without a screen.

Commands: data, train, finetune, resume, evaluate, predict, export, runs, cancel, worker.
Exit 0 on success; 2 on bad input (a usage error, a value out of range, an unknown
run, backbone or file: a BadInputError) and 1 on any other failure (a run that
failed or was cancelled, a full disk, no network), each with one clear line on
stderr and no traceback. Defaults come from core.config.

Importing this module loads no TensorFlow: each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import config as cfg
from core.errors import BadInputError, PetLabError
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


POSITIVE = _checked(int, "a whole number of at least 1", lambda value: value >= 1)
NON_NEGATIVE = _checked(int, "a whole number, 0 or more", lambda value: value >= 0)
SEED = _checked(int, f"a whole number from 0 to {MAX_SEED}", lambda value: 0 <= value <= MAX_SEED)
LEARNING_RATE = _checked(float, "a number above 0", lambda value: 0 < value < math.inf)
DROPOUT = _checked(float, "a fraction from 0 up to (not including) 1", lambda value: 0 <= value < 1)
SECONDS = _checked(float, "a number of seconds, 0 or more", lambda value: value >= 0)


# -- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all commands."""
    parser = _Parser(prog="python -m core", description="PetLab: transfer learning for pet breeds.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_data, _add_train, _add_finetune, _add_run_commands, _add_export, _add_housekeeping):
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


def _add_train(commands) -> None:
    t = cfg.TRAIN
    p = commands.add_parser("train", help="train a classification head on a frozen backbone")
    _add_source(p)
    p.add_argument("--backbone", default=t.backbone, help=f"backbone name (default {t.backbone})")
    p.add_argument("--weights", default=t.weights, help="imagenet, none, or a Keras weights file (no top)")
    p.add_argument("--image-size", type=int, default=t.image_size, help="pixels (default: the backbone's)")
    p.add_argument("--epochs", type=POSITIVE, default=t.epochs)
    p.add_argument("--lr", type=LEARNING_RATE, default=t.lr, help="learning rate")
    p.add_argument("--batch-size", type=POSITIVE, default=t.batch_size)
    p.add_argument(
        "--patience", type=NON_NEGATIVE, default=t.patience, help="early-stopping patience; 0 = off"
    )
    p.add_argument("--dropout", type=DROPOUT, default=t.dropout)
    p.add_argument(
        "--augment", default=t.augment, metavar="SPEC", help="e.g. flip,rotation=0.1,zoom=0.1 or none"
    )
    p.add_argument("--seed", type=SEED, default=t.seed)
    p.add_argument(
        "--no-feature-cache",
        dest="feature_cache",
        action="store_false",
        help="run the frozen backbone on every image in every epoch (the reference pipeline)",
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
    p.add_argument("--patience", type=NON_NEGATIVE, default=f.patience)
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
    p = commands.add_parser("predict", help="top-k breeds for image files")
    p.add_argument("--run", type=int, required=True, metavar="ID")
    p.add_argument("--top", type=POSITIVE, default=5, metavar="K")
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


# -- running a command ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (a usage error exits 2 from the parser)."""
    args = build_parser().parse_args(argv)
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


def _store(args):
    from core.runs.store import RunStore
    from core.workspace import resolve_workspace

    return RunStore(resolve_workspace(args.workspace))


def cmd_data(args) -> int:
    from core.data import open_source
    from core.progress import TerminalProgress
    from core.workspace import resolve_workspace

    data = cfg.DataConfig(source=args.source, path=args.path)
    source = open_source(
        data.source,
        data.path,
        workspace=resolve_workspace(args.workspace),
        data_config=data,
        progress=TerminalProgress(),
    )
    print(f"classes: {len(source.class_names)}")
    for split in cfg.SPLITS:
        print(f"{split}: {source.split_size(split)}")
    return EXIT_OK


def _run_to_end(store, run_id: int) -> int:
    """Train queued run `run_id` in this process (after any run ahead of it) and report how it ended."""
    from core.progress import TerminalProgress
    from core.training.worker import run_queue

    print(f"queued: run {run_id}", flush=True)
    run_queue(store, until=run_id, say=lambda line: print(line, flush=True), progress=TerminalProgress())
    record = store.get(run_id)
    if record.status != "done":  # ended by another process: failed there, or cancelled
        reason = record.error or f"Run {run_id} was {record.status} before it finished."
        print(f"error: {reason}", file=sys.stderr)
        return EXIT_FAILED
    metrics = record.metrics
    if metrics.get("test_accuracy") is not None:
        print(f"test accuracy: {metrics['test_accuracy']:.4f}  top-5: {metrics['test_top5_accuracy']:.4f}")
    print(f"run: {run_id}")
    return EXIT_OK


def cmd_train(args) -> int:
    from core.runs.requests import queue_head_run

    store = _store(args)
    data = cfg.DataConfig(source=args.source, path=str(Path(args.path).resolve()) if args.path else None)
    train = cfg.TrainConfig(
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        patience=args.patience,
        dropout=args.dropout,
        augment=args.augment,
        seed=args.seed,
        feature_cache=args.feature_cache,
    )
    return _run_to_end(store, queue_head_run(store, data, train))


def cmd_finetune(args) -> int:
    from core.runs.requests import queue_finetune_run

    store = _store(args)
    finetune = cfg.FinetuneConfig(
        epochs=args.epochs,
        lr=args.lr,
        unfreeze=str(args.unfreeze),
        batch_size=args.batch_size,
        patience=args.patience,
        seed=args.seed,
        feature_cache=args.feature_cache,
    )
    return _run_to_end(store, queue_finetune_run(store, args.parent, finetune))


def cmd_resume(args) -> int:
    from core.runs.requests import resume_run

    store = _store(args)
    done = resume_run(store, args.run)
    print(f"resuming: run {args.run} after epoch {done}", flush=True)
    return _run_to_end(store, args.run)


def cmd_evaluate(args) -> int:
    from core.inference.evaluate import evaluate_run
    from core.progress import TerminalProgress

    report = evaluate_run(_store(args), args.run, progress=TerminalProgress())
    print(f"test loss: {report['loss']:.4f}")
    print(f"test accuracy: {report['accuracy']:.4f}")
    print(f"test top-5 accuracy: {report['top5_accuracy']:.4f}")
    return EXIT_OK


def cmd_predict(args) -> int:
    from core.inference.predict import Predictor

    predictor = Predictor.for_run(_store(args), args.run)
    results = [predictor.predict_image(path, args.top) for path in args.images]  # BadImageError -> exit 2
    for path, result in zip(args.images, results, strict=True):
        if len(args.images) > 1:
            print(f"{path}:")
        for name, probability in result.top:
            print(f"{name} {probability:.4f}")
    return EXIT_OK


def cmd_export(args) -> int:
    from core.inference.export import export_run
    from core.progress import TerminalProgress

    store = _store(args)
    path = export_run(store, args.run, args.format, args.quantize, progress=TerminalProgress())
    print(f"model: {path}")
    print(f"labels: {store.paths(args.run).export_labels}")
    return EXIT_OK


def cmd_runs(args) -> int:
    records = _store(args).list()
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2, default=str))
        return EXIT_OK
    header = (
        f"{'id':>4}  {'kind':8}  {'parent':>6}  {'status':9}  {'backbone':16}  {'best val':>8}  {'test':>6}"
    )
    print(header)
    for r in records:
        best_val, test = _pct(r.metrics.get("best_val_accuracy")), _pct(r.metrics.get("test_accuracy"))
        print(
            f"{r.id:>4}  {r.kind:8}  {r.parent or '':>6}  {r.shown_status:9}  {r.train.backbone:16}  "
            f"{best_val:>8}  {test:>6}"
        )
    for r in records:
        if r.broken:
            print(r.broken)
    return EXIT_OK


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def cmd_cancel(args) -> int:
    store = _store(args)
    record = store.get(args.run)
    if record.status not in ("queued", "running"):
        raise BadInputError(
            f"Run {args.run} is {record.status}; only queued or running runs can be cancelled."
        )
    store.request_cancel(args.run)
    print(f"cancel requested: run {args.run}")
    return EXIT_OK


def cmd_worker(args) -> int:
    from core.training.worker import run_queue

    _note_device(args)
    run_queue(_store(args), say=lambda line: print(line, flush=True), poll_s=0.5, linger_s=args.linger)
    return EXIT_OK


def cmd_device(args) -> int:
    print(_note_device(args))
    return EXIT_OK


def _note_device(args) -> str:
    """Describe the device runs train on here, and note it in the workspace for the dashboard."""
    from core.runs.worker_process import record_device
    from core.training.device import describe_device
    from core.workspace import resolve_workspace

    description = describe_device()
    record_device(resolve_workspace(args.workspace), description)
    return description


COMMANDS = {
    "data": cmd_data,
    "train": cmd_train,
    "finetune": cmd_finetune,
    "resume": cmd_resume,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "export": cmd_export,
    "runs": cmd_runs,
    "cancel": cmd_cancel,
    "worker": cmd_worker,
    "device": cmd_device,
}
