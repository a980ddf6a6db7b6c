"""Training and prediction speed of PetLab against the reference pipeline, in one process.

What it measures, on the same images (Oxford pet files, `--path`):

1. Head training, 25 epochs with early stopping off (patience 0): the reference
   pipeline (`TrainConfig(feature_cache=False)`: the frozen backbone runs over
   every image every epoch) against ours (`feature_cache=True`, cold feature
   cache, so the figure includes extracting the features of both views).
2. A second head run with another learning rate: ours on the now warm feature
   cache against the reference, whose second run costs what its first did (it is
   run again, or with `--quick` its first figure is reused). Also a third one in a
   new process (`python -m core train`), as a user of the command line sees it.
3. One fine-tuning epoch (all backbone layers unfrozen, lr 1e-5) from each head
   run, twice each in the order reference, ours, ours, reference. Both go through
   the same code path: with every layer training there is nothing to cache.
3b. Fine-tuning only the top 36 backbone layers for the reference 5 epochs: the
   frozen lower backbone run every epoch (`feature_cache=False`) against ours,
   which caches its outputs (cold), and a second such run on the warm cache.
4. Single-photo latency: `Predictor.predict_image` on a JPEG against a bare
   forward pass `model(x, training=False)` on a prepared tensor (medians after
   warm-up), plus the old `model.predict(x)`.
5. Peak resident memory (VmRSS from /proc/self/status, sampled by a background
   thread) during each phase.

How: the reference and ours each get their own temporary workspace, so no cache
leaks from one to the other; only ours keeps its feature cache between its two
head runs, which is the point of item 2. Before anything is timed, the decoded-image
cache of both workspaces is built (`load_split_arrays`), so the head and
fine-tuning figures measure training, not JPEG decoding. Runs go through the real
queue (`queue_head_run` / `queue_finetune_run` + `run_queue`); a run's wall time
is from queueing to done, including model building, saving `model.keras` and the
test-set evaluation; "fit" is the sum of the epoch times the registry records.
Ours runs first in each pair, so one-time TensorFlow warm-up counts against it.

The results go to stdout, progress to stderr; the script writes no file (benchmarks/RESULTS.md
is written by hand from its output). This file holds the command line and the phases;
`measure.py` the measuring any benchmark can reuse, `workloads.py` the runs it times and
`report.py` the targets, tables and notes.

Usage:
    python benchmarks/train_speed.py [--path FOLDER] [--weights none|imagenet|FILE]
        [--backbone resnet50v2] [--image-size 224] [--epochs 25] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Run as `python benchmarks/train_speed.py`: the repo root goes first on the path so that `core` and
# `benchmarks` import (Python only puts this file's own folder there).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from benchmarks import REPO
from benchmarks.measure import (
    TIMED_ROUNDS,
    WARMUP_CALLS,
    PhaseLog,
    RunTiming,
    log,
    machine_line,
    mean_timing,
    started_now,
)
from benchmarks.report import AllLayersFinetune, HeadRuns, Latency, Results, TopFinetune, render
from benchmarks.workloads import (
    cli_head_run,
    finetune_run,
    first_photo,
    head_run,
    latencies,
    warm_image_cache,
)
from core import config as cfg
from core.errors import PetLabError
from core.inference.predict import Predictor
from core.runs.store import RunStore

DEFAULT_PATH = REPO.parent / "shared" / "pets-sample" / "images"
SOURCE = "oxford-files"
SECOND_LR = 3e-4  # the second head run's learning rate (the first uses the reference 1e-3)
THIRD_LR = 2e-3  # the head run in a new process
TOP_LAYERS = 36  # fine-tuning the top N layers: ResNet50V2's conv5 stack, cached below its input
TOP_AGAIN_LR = 3e-5  # ours' second top-layers run, on the warm lower-backbone cache


@dataclass(frozen=True)
class Bench:
    """What every phase needs: the command line, both recipes, both workspaces and the phase log."""

    args: argparse.Namespace
    data: cfg.DataConfig
    train: cfg.TrainConfig  # ours: feature cache on
    reference_train: cfg.TrainConfig  # the reference: the frozen backbone runs every epoch
    ours: RunStore
    reference: RunStore
    phases: PhaseLog

    @classmethod
    def of(cls, args: argparse.Namespace, reference_ws: Path, ours_ws: Path) -> Bench:
        train = cfg.TrainConfig(
            backbone=args.backbone,
            weights=args.weights,
            image_size=args.image_size,
            epochs=args.epochs,
            patience=0,  # early stopping off: every run trains all epochs
        )
        return cls(
            args=args,
            data=cfg.DataConfig(source=SOURCE, path=str(args.path)),
            train=train,
            reference_train=dataclasses.replace(train, feature_cache=False),
            ours=RunStore(ours_ws),
            reference=RunStore(reference_ws),
            phases=PhaseLog(),
        )


def header(args: argparse.Namespace, sizes: dict[str, int], started: str) -> list[str]:
    """The report's first lines: the recipe, the data and the machine."""
    split_text = ", ".join(f"{n} {split}" for split, n in sizes.items())
    versions = {"TensorFlow": tf.__version__, "Keras": keras.__version__}
    return [
        f"PetLab training speed: {args.backbone}, {args.image_size} px, weights {args.weights}, "
        f"batch {cfg.TRAIN.batch_size}, {args.epochs} epoch(s), early stopping off",
        f"data: {SOURCE} {args.path} ({split_text})",
        machine_line(started, versions),
    ]


# -- the phases, in the order they run ------------------------------------------------------------


def warm_image_caches(bench: Bench) -> dict[str, int]:
    """Build both workspaces' decoded-image cache before anything is timed; returns split sizes."""
    with bench.phases.measure("warm decoded-image cache (reference)"):
        sizes = warm_image_cache(bench.reference, bench.data, bench.args.image_size)
    with bench.phases.measure("warm decoded-image cache (ours)"):
        warm_image_cache(bench.ours, bench.data, bench.args.image_size)
    return sizes


def head_phases(bench: Bench) -> HeadRuns:
    """Items 1 and 2: head runs on a cold then a warm feature cache, and one in a new process."""
    measure, again = bench.phases.measure, dataclasses.replace
    with measure("1. head run, ours (cold feature cache)"):
        ours = head_run(bench.ours, bench.data, bench.train)
    with measure("1. head run, reference"):
        reference = head_run(bench.reference, bench.data, bench.reference_train)
    with measure("2. second head run, ours (warm feature cache)"):
        ours_again = head_run(bench.ours, bench.data, again(bench.train, lr=SECOND_LR))
    with measure("2. head run in a new process, ours (warm feature cache)"):
        new_process_s = cli_head_run(bench.ours.workspace, bench.data, again(bench.train, lr=THIRD_LR))
    reference_again = reference  # with --quick: the reference has no cache, so its figure stands
    if not bench.args.quick:
        with measure("2. second head run, reference"):
            second = again(bench.reference_train, lr=SECOND_LR)
            reference_again = head_run(bench.reference, bench.data, second)
    return HeadRuns(
        ours=ours,
        reference=reference,
        ours_again=ours_again,
        reference_again=reference_again,
        ours_new_process_s=new_process_s,
        again_lr=SECOND_LR,
        new_process_lr=THIRD_LR,
        quick=bench.args.quick,
    )


def all_layers_phases(bench: Bench, heads: HeadRuns) -> AllLayersFinetune:
    """Item 3: one epoch fine-tuning every layer from each side's first head run, twice each."""
    timings: dict[str, list[RunTiming]] = {"ref": [], "ours": []}
    # Reference, ours, ours, reference: a drift over time (memory, machine load) falls on both alike.
    for side in ("ref", "ours", "ours", "ref"):
        store, parent = (bench.reference, heads.reference) if side == "ref" else (bench.ours, heads.ours)
        with bench.phases.measure(f"3. fine-tuning 1 epoch, {'reference' if side == 'ref' else 'ours'}"):
            timings[side].append(finetune_run(store, parent.run_id))
    return AllLayersFinetune(reference=mean_timing(timings["ref"]), ours=mean_timing(timings["ours"]))


def top_layers_phases(bench: Bench, heads: HeadRuns) -> TopFinetune:
    """Item 3b: fine-tuning the top layers for the reference epochs, ours on a cold then a warm cache."""
    measure = bench.phases.measure
    top = {"unfreeze": str(TOP_LAYERS), "epochs": cfg.FINETUNE.epochs}
    with measure(f"3b. fine-tuning top {TOP_LAYERS}, reference (frozen part every epoch)"):
        reference = finetune_run(bench.reference, heads.reference.run_id, **top, feature_cache=False)
    with measure(f"3b. fine-tuning top {TOP_LAYERS}, ours (cold lower-backbone cache)"):
        ours = finetune_run(bench.ours, heads.ours.run_id, **top)
    with measure(f"3b. fine-tuning top {TOP_LAYERS} again, ours (warm lower-backbone cache)"):
        ours_again = finetune_run(bench.ours, heads.ours.run_id, **top, lr=TOP_AGAIN_LR)
    metrics = bench.ours.get(ours.run_id).metrics
    return TopFinetune(
        reference=reference,
        ours=ours,
        ours_again=ours_again,
        layers=TOP_LAYERS,
        epochs=cfg.FINETUNE.epochs,
        again_lr=TOP_AGAIN_LR,
        cached_below=metrics.get("cached_below", "nothing (NOT cached)"),
    )


def latency_phase(bench: Bench, heads: HeadRuns) -> Latency:
    """Item 4: single-photo latency of ours' first head model, served and bare."""
    photo = first_photo(bench.args.path)
    with bench.phases.measure(f"4. latency (load Predictor, 4 × ({WARMUP_CALLS} + {TIMED_ROUNDS}) calls)"):
        predictor = Predictor.for_run(bench.ours, heads.ours.run_id)
        medians = latencies(predictor, photo)
    return Latency(medians=medians, photo=photo.name)


def benchmark(args: argparse.Namespace, ref_ws: Path, ours_ws: Path) -> None:
    """Run every phase, then print the report to stdout."""
    bench = Bench.of(args, ref_ws, ours_ws)
    started = started_now()
    lines = header(args, warm_image_caches(bench), started)
    for line in lines:
        log(line)
    heads = head_phases(bench)
    results = Results(
        heads=heads,
        all_layers=all_layers_phases(bench, heads),
        top=top_layers_phases(bench, heads),
        latency=latency_phase(bench, heads),
    )
    print(render(lines, results, bench.phases), flush=True)


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH, help="folder of Oxford pet images")
    parser.add_argument("--weights", default="imagenet", help="none, imagenet or a weights file")
    parser.add_argument("--backbone", default=cfg.TRAIN.backbone)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=cfg.TRAIN.epochs)
    parser.add_argument(
        "--quick", action="store_true", help="reuse the reference's first head run as its second"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.path = args.path.expanduser().resolve()
    if not args.path.is_dir():
        print(f"The image folder {args.path} does not exist; pass --path with a folder of Oxford pet images.")
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="petlab-bench-reference-") as ref_ws,
        tempfile.TemporaryDirectory(prefix="petlab-bench-ours-") as ours_ws,
    ):
        try:
            benchmark(args, Path(ref_ws), Path(ours_ws))
        except PetLabError as exc:
            print(f"Benchmark stopped: {exc}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
