"""The command line's commands about data, single runs and the registry.

Each command imports what it needs when it runs, so importing this module loads no TensorFlow.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core import config as cfg
from core.cli.parser import EXIT_FAILED, EXIT_OK
from core.errors import BadInputError


def store_of(args):
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


def data_config(args) -> cfg.DataConfig:
    """The data config of a command's --source and --path (a path made absolute for the registry)."""
    return cfg.DataConfig(source=args.source, path=str(Path(args.path).resolve()) if args.path else None)


def train_config(args) -> cfg.TrainConfig:
    """The head-training config of a command's options; the reference value for any it does not take."""
    fields = cfg.to_dict(cfg.TRAIN)
    return cfg.TrainConfig(**{name: getattr(args, name, value) for name, value in fields.items()})


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

    store = store_of(args)
    run_id = queue_head_run(store, data_config(args), train_config(args), curation=args.curation)
    return _run_to_end(store, run_id)


def cmd_finetune(args) -> int:
    from core.runs.requests import queue_finetune_run

    store = store_of(args)
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

    store = store_of(args)
    done = resume_run(store, args.run)
    print(f"resuming: run {args.run} after epoch {done}", flush=True)
    return _run_to_end(store, args.run)


def cmd_evaluate(args) -> int:
    from core.inference.evaluate import evaluate_run
    from core.progress import TerminalProgress

    report = evaluate_run(store_of(args), args.run, progress=TerminalProgress())
    print(f"test loss: {report['loss']:.4f}")
    print(f"test accuracy: {report['accuracy']:.4f}")
    print(f"test top-5 accuracy: {report['top5_accuracy']:.4f}")
    return EXIT_OK


def cmd_predict(args) -> int:
    if args.csv:
        return _predict_csv(args)
    from core.inference.predict import Predictor

    predictor = Predictor.for_run(store_of(args), args.run)
    results = [predictor.predict_image(path, args.top) for path in args.images]  # BadImageError -> exit 2
    for path, result in zip(args.images, results, strict=True):
        if len(args.images) > 1:
            print(f"{path}:")
        for name, probability in result.top:
            print(f"{name} {probability:.4f}")
    return EXIT_OK


def _predict_csv(args) -> int:
    """`predict --csv FILE DIR|ZIP`: every photo's top-k into the CSV; 1 when none could be predicted."""
    from core.inference.batch import write_predictions_csv

    if len(args.images) != 1:
        raise BadInputError("predict --csv takes one folder or zip of photos; give just one.")
    source = args.images[0]
    if write_predictions_csv(store_of(args), args.run, source, args.csv, args.top, say=print) == 0:
        print(
            f"No photo in {source} could be predicted, so {args.csv} was not written; check the photos.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def cmd_export(args) -> int:
    from core.inference.export import export_run
    from core.progress import TerminalProgress

    store = store_of(args)
    path = export_run(store, args.run, args.format, args.quantize, progress=TerminalProgress())
    print(f"model: {path}")
    print(f"labels: {store.paths(args.run).export_labels}")
    return EXIT_OK


def cmd_lite_copy(args) -> int:
    from core.inference.export import runs_without_lite_copy, write_run_lite_model

    store = store_of(args)
    run_ids = args.run or runs_without_lite_copy(store)
    if not run_ids:
        print("Every finished run has its LiteRT copy.")
    for run_id in run_ids:
        print(f"run {run_id}: converting its model for LiteRT…", flush=True)
        path = write_run_lite_model(store, run_id)
        print(f"run {run_id}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return EXIT_OK


def cmd_runs(args) -> int:
    records = store_of(args).list()
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
    store = store_of(args)
    record = store.get(args.run)
    if record.status not in ("queued", "running"):
        raise BadInputError(
            f"Run {args.run} is {record.status}; only queued or running runs can be cancelled."
        )
    store.request_cancel(args.run)
    print(f"cancel requested: run {args.run}")
    return EXIT_OK


def _say(line: str) -> None:
    print(line, flush=True)


def cmd_worker(args) -> int:
    from core.training.worker import run_queue

    _note_device(args)
    if run_queue(store_of(args), say=_say, poll_s=0.5, linger_s=args.linger, fresh_after_finetune=True):
        from core.runs.worker_process import restart_this_process

        _say("worker: starting afresh after a fine-tuning run, to free the memory it left behind")
        restart_this_process()
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
