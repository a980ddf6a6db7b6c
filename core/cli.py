"""The PetLab command line: every product action without a screen.

Commands: data, train, finetune, resume, evaluate, predict, export, runs, cancel, worker.
Exit 0 on success; 2 on bad input and 1 on any other failure, each with one
clear line on stderr and no traceback. Defaults come from core.config.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core import config as cfg
from core.errors import BadInputError, PetLabError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXPORT_FORMATS = (
    "keras",
    "savedmodel",
    "tflite",
)  # core.inference.export.FORMATS, named without importing TensorFlow


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see --help)\n")


def _add_workspace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace", metavar="DIR", help="workspace folder (default: $PETLAB_WORKSPACE or ./workspace)"
    )


def _add_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", choices=cfg.SOURCES, default=cfg.DATA.source, help="where the images come from"
    )
    parser.add_argument("--path", metavar="P", help="folder or archive for oxford-files / folder sources")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all commands."""
    t, f = cfg.TRAIN, cfg.FINETUNE
    parser = _Parser(prog="python -m core", description="PetLab: transfer learning for pet breeds.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = commands.add_parser("data", help="prepare a dataset and show its classes and split sizes")
    _add_source(p)
    _add_workspace(p)

    p = commands.add_parser("train", help="train a classification head on a frozen backbone")
    _add_source(p)
    p.add_argument("--backbone", default=t.backbone, help=f"backbone name (default {t.backbone})")
    p.add_argument("--weights", default=t.weights, help="imagenet, none, or a Keras weights file (no top)")
    p.add_argument("--image-size", type=int, default=t.image_size, help="pixels (default: the backbone's)")
    p.add_argument("--epochs", type=int, default=t.epochs)
    p.add_argument("--lr", type=float, default=t.lr, help="learning rate")
    p.add_argument("--batch-size", type=int, default=t.batch_size)
    p.add_argument("--patience", type=int, default=t.patience, help="early-stopping patience; 0 = off")
    p.add_argument("--dropout", type=float, default=t.dropout)
    p.add_argument(
        "--augment", default=t.augment, metavar="SPEC", help="e.g. flip,rotation=0.1,zoom=0.1 or none"
    )
    p.add_argument("--seed", type=int, default=t.seed)
    p.add_argument(
        "--no-feature-cache", dest="feature_cache", action="store_false",
        help="run the frozen backbone on every image in every epoch (the reference pipeline)",
    )  # fmt: skip
    _add_workspace(p)

    p = commands.add_parser("finetune", help="fine-tune a finished head run with the backbone unfrozen")
    p.add_argument("--from", dest="parent", type=int, required=True, metavar="ID", help="the head run")
    p.add_argument("--epochs", type=int, default=f.epochs)
    p.add_argument("--lr", type=float, default=f.lr)
    p.add_argument(
        "--unfreeze", default=f.unfreeze, metavar="N|all", help="backbone layers to unfreeze, from the top"
    )
    p.add_argument("--batch-size", type=int, default=f.batch_size)
    p.add_argument("--patience", type=int, default=f.patience)
    p.add_argument("--seed", type=int, default=f.seed)
    p.add_argument(
        "--no-feature-cache", dest="feature_cache", action="store_false",
        help="with --unfreeze N: run the frozen lower backbone every epoch instead of once (cached)",
    )  # fmt: skip
    _add_workspace(p)

    p = commands.add_parser("resume", help="continue a failed run from its last finished epoch")
    p.add_argument("--run", type=int, required=True, metavar="ID")
    _add_workspace(p)

    p = commands.add_parser("evaluate", help="evaluate a run on the test split")
    p.add_argument("--run", type=int, required=True, metavar="ID")
    _add_workspace(p)

    p = commands.add_parser("predict", help="top-k breeds for image files")
    p.add_argument("--run", type=int, required=True, metavar="ID")
    p.add_argument("--top", type=int, default=5, metavar="K")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    _add_workspace(p)

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
    _add_workspace(p)

    p = commands.add_parser("runs", help="list runs")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    _add_workspace(p)

    p = commands.add_parser("cancel", help="ask a running or queued run to stop")
    p.add_argument("run", type=int, metavar="ID")
    _add_workspace(p)

    p = commands.add_parser("worker", help="execute queued runs one at a time (the dashboard starts this)")
    p.add_argument(
        "--linger",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="once the queue is empty, wait this long for new runs before exiting (default 0)",
    )
    _add_workspace(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code."""
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
        data.source, data.path, workspace=resolve_workspace(args.workspace), data_config=data,
        progress=TerminalProgress(),
    )  # fmt: skip
    print(f"classes: {len(source.class_names)}")
    for split in cfg.SPLITS:
        print(f"{split}: {source.split_size(split)}")
    return EXIT_OK


def _run_to_end(store, run_id: int) -> int:
    from core.progress import TerminalProgress
    from core.training.worker import run_queue

    print(f"queued: run {run_id}", flush=True)
    run_queue(store, until=run_id, say=lambda line: print(line, flush=True), progress=TerminalProgress())
    record = store.get(run_id)
    if record.status == "failed":
        print(f"error: {record.error}", file=sys.stderr)
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
        backbone=args.backbone, weights=args.weights, image_size=args.image_size, epochs=args.epochs,
        lr=args.lr, batch_size=args.batch_size, patience=args.patience, dropout=args.dropout,
        augment=args.augment, seed=args.seed, feature_cache=args.feature_cache,
    )  # fmt: skip
    return _run_to_end(store, queue_head_run(store, data, train))


def cmd_finetune(args) -> int:
    from core.runs.requests import queue_finetune_run

    store = _store(args)
    finetune = cfg.FinetuneConfig(
        epochs=args.epochs, lr=args.lr, unfreeze=str(args.unfreeze), batch_size=args.batch_size,
        patience=args.patience, seed=args.seed, feature_cache=args.feature_cache,
    )  # fmt: skip
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

    if args.top < 1:
        raise BadInputError("--top must be at least 1.")
    predictor = Predictor.for_run(_store(args), args.run)
    results = [predictor.predict_image(path, args.top) for path in args.images]  # BadImageError -> exit 2
    for path, result in zip(args.images, results, strict=True):
        if len(args.images) > 1:
            print(f"{path}:")
        for name, probability in result.top:
            print(f"{name} {probability:.4f}")
    return EXIT_OK


def cmd_export(args) -> int:
    from core.inference.export import LABELS_FILE, export_run
    from core.progress import TerminalProgress

    path = export_run(_store(args), args.run, args.format, args.quantize, progress=TerminalProgress())
    print(f"model: {path}")
    print(f"labels: {path.parent / LABELS_FILE}")
    return EXIT_OK


def cmd_runs(args) -> int:
    records = _store(args).list()
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2, default=str))
        return EXIT_OK
    print(
        f"{'id':>4}  {'kind':8}  {'parent':>6}  {'status':9}  {'backbone':16}  {'best val':>8}  {'test':>6}"
    )
    for r in records:
        j = r.to_json()
        print(
            f"{r.id:>4}  {r.kind:8}  {r.parent or '':>6}  {r.shown_status:9}  "
            f"{r.config.get('train', {}).get('backbone', ''):16}  "
            f"{_pct(j['best_val_accuracy']):>8}  {_pct(j['test_accuracy']):>6}"
        )
    for r in records:
        if r.broken:
            print(r.broken)
    return EXIT_OK


def _pct(value) -> str:
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

    run_queue(_store(args), say=lambda line: print(line, flush=True), poll_s=0.5, linger_s=args.linger)
    return EXIT_OK


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
}
