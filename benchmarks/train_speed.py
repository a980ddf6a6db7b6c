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

Usage:
    python benchmarks/train_speed.py [--path FOLDER] [--weights none|imagenet|FILE]
        [--backbone resnet50v2] [--image-size 224] [--epochs 25] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from core import config as cfg  # noqa: E402
from core.data.images import IMAGE_EXTENSIONS, load_image  # noqa: E402
from core.errors import PetLabError  # noqa: E402
from core.inference.predict import Predictor  # noqa: E402
from core.runs.requests import queue_finetune_run, queue_head_run  # noqa: E402
from core.runs.store import RunStore  # noqa: E402
from core.training.datasets import load_split_arrays  # noqa: E402
from core.training.worker import run_queue  # noqa: E402

DEFAULT_PATH = REPO.parent / "shared" / "pets-sample" / "images"
SOURCE = "oxford-files"
SECOND_LR = 3e-4  # the second head run's learning rate (the first uses the reference 1e-3)
THIRD_LR = 2e-3  # the head run in a new process
TOP_LAYERS = 36  # fine-tuning the top N layers: ResNet50V2's conv5 stack, cached below its input
LATENCY_REPEATS = 30
LATENCY_WARMUP = 5
RSS_INTERVAL_S = 0.05
NOISE = 0.05  # "no slower" allows this fraction of run-to-run noise

TARGET_HEAD = 10.0
TARGET_HEAD_REPEAT = 50.0
TARGET_FINETUNE = 1.0
TARGET_LATENCY = 1.5


# -- memory ---------------------------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident set size (VmRSS) in MB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Phase:
    """One measured phase: wall time and memory."""

    name: str
    seconds: float = 0.0
    cpu_s: float = 0.0  # CPU time of the whole process (all threads) during the phase
    load: float = 0.0  # 1-minute load average at the end: other processes competing for the cores
    start_mb: float = 0.0
    peak_mb: float = 0.0


@dataclass
class PhaseLog:
    """Every phase in the order it ran."""

    phases: list[Phase] = field(default_factory=list)

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[Phase]:
        """Time the block and sample VmRSS every RSS_INTERVAL_S in a background thread."""
        phase = Phase(name, start_mb=rss_mb())
        phase.peak_mb = phase.start_mb
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(RSS_INTERVAL_S):
                phase.peak_mb = max(phase.peak_mb, rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            yield phase
        finally:
            phase.seconds = time.perf_counter() - start
            phase.cpu_s = time.process_time() - start_cpu
            phase.load = os.getloadavg()[0]
            stop.set()
            sampler.join()
            phase.peak_mb = max(phase.peak_mb, rss_mb())
            self.phases.append(phase)
            log(
                f"{name}: {phase.seconds:.1f} s, CPU {phase.cpu_s:.1f} s, load {phase.load:.1f}, "
                f"peak {phase.peak_mb:.0f} MB"
            )


# -- runs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTiming:
    """What one training run cost."""

    run_id: int
    wall_s: float
    cpu_s: float  # process CPU time, less sensitive than wall time to other processes on the machine
    fit_s: float  # sum of epoch times recorded in the registry
    train_s: float  # queue to model.keras saved: the run without its test-set evaluation
    epochs: int
    new_feature_files: int  # feature arrays written by this run (0: the cache was warm)


def log(message: str) -> None:
    """Progress lines go to stderr so that stdout is only the results."""
    print(f"  {message}", file=sys.stderr, flush=True)


def feature_files(workspace: Path) -> int:
    return len(list((workspace / "cache" / "features").glob("*.npy")))


def run_to_end(store: RunStore, run_id: int) -> RunTiming:
    """Execute a queued run in this process and time it from queue to done."""
    before = feature_files(store.workspace)
    start, start_cpu, start_clock = time.perf_counter(), time.process_time(), time.time()
    run_queue(store, until=run_id, say=log)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    record = store.get(run_id)
    if record.status != "done":
        raise SystemExit(f"Run {run_id} ended {record.status}: {record.error}")
    history = store.history(run_id)
    saved = store.paths(run_id).model.stat().st_mtime - start_clock
    return RunTiming(
        run_id,
        wall,
        cpu,
        sum(entry["seconds"] for entry in history),
        saved,
        len(history),
        feature_files(store.workspace) - before,
    )


def mean_timing(runs: list[RunTiming]) -> RunTiming:
    """The mean of several timings of the same kind of run (figures only; the first run's id)."""
    values = [dataclasses.astuple(run) for run in runs]
    means = [statistics.fmean(column) for column in zip(*values, strict=True)]
    return RunTiming(runs[0].run_id, *means[1:5], int(means[5]), int(means[6]))


def head_run(store: RunStore, data: cfg.DataConfig, train: cfg.TrainConfig) -> RunTiming:
    return run_to_end(store, queue_head_run(store, data, train))


def finetune_run(store: RunStore, parent: int, **settings: Any) -> RunTiming:
    finetune = cfg.FinetuneConfig(**({"epochs": 1, "lr": 1e-5, "unfreeze": "all", "patience": 0} | settings))
    return run_to_end(store, queue_finetune_run(store, parent, finetune))


def cli_head_run(workspace: Path, args: argparse.Namespace, lr: float) -> float:
    """Wall time of `python -m core train` in a new process (importing TensorFlow, building the backbone)."""
    recipe = {
        "--workspace": workspace,
        "--source": SOURCE,
        "--path": args.path,
        "--backbone": args.backbone,
        "--weights": args.weights,
        "--image-size": args.image_size,
        "--epochs": args.epochs,
        "--patience": 0,
        "--lr": lr,
    }
    command = [sys.executable, "-m", "core", "train"]
    command += [str(part) for option in recipe.items() for part in option]
    env = os.environ | {"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"`python -m core train` failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def warm_image_cache(store: RunStore, data: cfg.DataConfig, image_size: int) -> dict[str, int]:
    """Decode and resize every split into the workspace's image cache; returns split sizes."""
    _, arrays = load_split_arrays(data, store.workspace, image_size)
    return {split: len(labels) for split, (_, labels) in arrays.items()}


# -- latency --------------------------------------------------------------------------------------


def interleaved_medians(
    calls: dict[str, Callable[[], Any]], repeats: int = LATENCY_REPEATS
) -> dict[str, float]:
    """Median wall time of each call after LATENCY_WARMUP untimed calls of each.

    The calls take turns, round after round, so that load from other processes on the
    machine falls on all of them alike instead of on whichever happened to run then.
    """
    for call in calls.values():
        for _ in range(LATENCY_WARMUP):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def latencies(predictor: Predictor, photo: Path) -> dict[str, float]:
    """Median seconds for predict_image on the JPEG, bare forward passes, and model.predict."""
    x = tf.convert_to_tensor(load_image(photo, predictor.image_size)[None], tf.float32)
    model = predictor.model
    compiled = tf.function(lambda t: model(t, training=False))
    return interleaved_medians(
        {
            "predict_image": lambda: predictor.predict_image(photo),
            "bare": lambda: np.asarray(model(x, training=False)),
            "bare compiled": lambda: np.asarray(compiled(x)),
            "model.predict": lambda: model.predict(x, verbose=0),
        }
    )


def first_photo(folder: Path) -> Path:
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not photos:
        photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    return photos[0]


# -- report ---------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def compare_row(
    label: str, ref_s: float, ours_s: float, minimum: float | None = None, target: str = ""
) -> str:
    """A table row of two durations; the ratio is reference / ours (a speed-up), met if ≥ minimum."""
    ratio = ref_s / ours_s
    met = "" if minimum is None else verdict(ratio >= minimum)
    return f"| {label} | {ref_s:.1f} s | {ours_s:.1f} s | {ratio:.1f}× | {target} | {met} |"


def training_table(results: dict[str, RunTiming]) -> list[str]:
    ref1, ours1 = results["ref_head"], results["ours_head"]
    ref2, ours2 = results["ref_head2"], results["ours_head2"]
    ref_ft, ours_ft = results["ref_ft"], results["ours_ft"]
    top_ref, top, top2 = results["ref_top"], results["ours_top"], results["ours_top2"]
    return [
        "| measure | reference | ours | ratio (ref / ours) | target | met |",
        "|---|---|---|---|---|---|",
        compare_row(
            f"1. head training, {ours1.epochs} epoch{'s' if ours1.epochs != 1 else ''} "
            "(ours: cold feature cache), queue → model saved",
            ref1.train_s,
            ours1.train_s,
            TARGET_HEAD,
            f"≥ {TARGET_HEAD:g}×",
        ),
        compare_row("   the whole run, with the test-set evaluation", ref1.wall_s, ours1.wall_s),
        compare_row("   CPU time of the whole run", ref1.cpu_s, ours1.cpu_s),
        compare_row("   fit only (sum of epoch times)", ref1.fit_s, ours1.fit_s),
        compare_row(
            f"2. second head training, lr {SECOND_LR:g} (ours: warm feature cache), queue → model saved",
            ref2.train_s,
            ours2.train_s,
            TARGET_HEAD_REPEAT,
            f"≥ {TARGET_HEAD_REPEAT:g}×",
        ),
        compare_row("   the whole run, with the test-set evaluation", ref2.wall_s, ours2.wall_s),
        compare_row("   CPU time of the whole run", ref2.cpu_s, ours2.cpu_s),
        compare_row("   fit only (sum of epoch times)", ref2.fit_s, ours2.fit_s),
        compare_row(
            f"   ours in a new process (`python -m core train --lr {THIRD_LR:g}`), whole run",
            ref2.wall_s,
            results["ours_head_cli"],
        ),
        compare_row(
            "3. fine-tuning, 1 epoch, all layers, lr 1e-5 (mean of 2 runs each)",
            ref_ft.wall_s,
            ours_ft.wall_s,
            TARGET_FINETUNE - NOISE,
            f"≥ {TARGET_FINETUNE:g}× (no slower; {NOISE:.0%} noise allowed)",
        ),
        compare_row("   CPU time", ref_ft.cpu_s, ours_ft.cpu_s),
        compare_row("   fit only (the epoch itself)", ref_ft.fit_s, ours_ft.fit_s),
        compare_row(
            f"3b. fine-tuning the top {TOP_LAYERS} layers, {top.epochs} epochs (ours: cold cache)",
            top_ref.wall_s,
            top.wall_s,
        ),
        compare_row("   CPU time", top_ref.cpu_s, top.cpu_s),
        compare_row("   fit only (sum of epoch times)", top_ref.fit_s, top.fit_s),
        compare_row("   again, lr 3e-5 (ours: warm lower-backbone cache)", top_ref.wall_s, top2.wall_s),
    ]


def latency_table(lat: dict[str, float]) -> list[str]:
    bare, compiled = lat["bare"], lat["bare compiled"]
    served, old = lat["predict_image"], lat["model.predict"]

    def row(label: str, seconds: float, target: str = "", met: str = "") -> str:
        ratios = f"{seconds / bare:.2f}× | {seconds / compiled:.2f}×"
        return f"| {label} | {seconds * 1000:.1f} | {ratios} | {target} | {met} |"

    return [
        f"| 4. single-photo latency (median of {LATENCY_REPEATS}) | ms | × bare forward "
        "| × bare compiled forward | target | met |",
        "|---|---|---|---|---|---|",
        row("bare forward `model(x, training=False)`, prepared tensor", bare),
        row("bare compiled forward `tf.function(model)(x)`, prepared tensor", compiled),
        row(
            "`Predictor.predict_image(jpeg)` (decode + resize + forward)",
            served,
            f"≤ {TARGET_LATENCY:g}× bare forward",
            f"{verdict(served / bare <= TARGET_LATENCY)} "
            f"(vs compiled: {verdict(served / compiled <= TARGET_LATENCY)})",
        ),
        row("old `model.predict(x)`, prepared tensor", old),
    ]


def memory_table(phases: PhaseLog) -> list[str]:
    lines = [
        "| 5. phase | wall | CPU | load avg at end | VmRSS at start | peak VmRSS | peak − start |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in phases.phases:
        lines.append(
            f"| {p.name} | {p.seconds:.1f} s | {p.cpu_s:.1f} s | {p.load:.1f} | {p.start_mb:.0f} MB "
            f"| {p.peak_mb:.0f} MB "
            f"| {p.peak_mb - p.start_mb:+.0f} MB |"
        )
    return lines


def header(args: argparse.Namespace, sizes: dict[str, int], started: str) -> list[str]:
    split_text = ", ".join(f"{n} {split}" for split, n in sizes.items())
    return [
        f"PetLab training speed: {args.backbone}, {args.image_size} px, weights {args.weights}, "
        f"batch {cfg.TRAIN.batch_size}, {args.epochs} epoch(s), early stopping off",
        f"data: {SOURCE} {args.path} ({split_text})",
        f"machine: {os.cpu_count()} CPU cores, {cpu_model()}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, Python {platform.python_version()}, "
        f"started {started}",
    ]


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


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


def benchmark(args: argparse.Namespace, ref_ws: Path, ours_ws: Path) -> None:
    data = cfg.DataConfig(source=SOURCE, path=str(args.path))
    train = cfg.TrainConfig(
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        epochs=args.epochs,
        patience=0,  # early stopping off: every run trains all epochs
    )
    reference = dataclasses.replace(train, feature_cache=False)
    ref, ours = RunStore(ref_ws), RunStore(ours_ws)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    phases = PhaseLog()
    results: dict[str, Any] = {}
    notes = [
        "The decoded-image cache of both workspaces was built before any timing (load_split_arrays), "
        "so the training figures measure training, not JPEG decoding.",
        "Reference and ours use separate temporary workspaces; only ours keeps its feature cache "
        "between its two head runs. Ours runs first in each pair (one-time TF warm-up counts against it).",
        "Head training is timed from queueing the run to its model.keras being saved (model build, "
        "feature extraction, fit, save); the whole run adds the test-set evaluation, which both sides "
        "pay once (the reference's evaluate pass, ours' test features): it is not training, and on the "
        "full data set its 3,669 test images would dominate ours' cold run. Fine-tuning rows are whole runs.",
    ]

    with phases.measure("warm decoded-image cache (reference)"):
        sizes = warm_image_cache(ref, data, args.image_size)
    with phases.measure("warm decoded-image cache (ours)"):
        warm_image_cache(ours, data, args.image_size)
    for line in header(args, sizes, started):
        log(line)

    with phases.measure("1. head run, ours (cold feature cache)"):
        results["ours_head"] = head_run(ours, data, train)
    with phases.measure("1. head run, reference"):
        results["ref_head"] = head_run(ref, data, reference)

    second, second_ref = (
        dataclasses.replace(train, lr=SECOND_LR),
        dataclasses.replace(reference, lr=SECOND_LR),
    )
    with phases.measure("2. second head run, ours (warm feature cache)"):
        results["ours_head2"] = head_run(ours, data, second)
    with phases.measure("2. head run in a new process, ours (warm feature cache)"):
        results["ours_head_cli"] = cli_head_run(ours_ws, args, THIRD_LR)
    notes.append(
        "The new-process head run pays what the in-process one does not: starting Python, importing "
        "TensorFlow and building the backbone; the dashboard's worker stays up 5 minutes between runs "
        "to spare its users that."
    )
    if args.quick:
        results["ref_head2"] = results["ref_head"]
        notes.append(
            "--quick: the reference's second head run was not run; its first run's figure is reused."
        )
    else:
        with phases.measure("2. second head run, reference"):
            results["ref_head2"] = head_run(ref, data, second_ref)
        notes.append("The reference's second head run was actually run (it has no cache to reuse).")

    # Reference, ours, ours, reference: a drift over time (memory, machine load) falls on both alike.
    timings: dict[str, list[RunTiming]] = {"ref": [], "ours": []}
    for side in ("ref", "ours", "ours", "ref"):
        store, parent = (ref, results["ref_head"]) if side == "ref" else (ours, results["ours_head"])
        with phases.measure(f"3. fine-tuning 1 epoch, {'reference' if side == 'ref' else 'ours'}"):
            timings[side].append(finetune_run(store, parent.run_id))
    results["ref_ft"], results["ours_ft"] = mean_timing(timings["ref"]), mean_timing(timings["ours"])
    notes.append(
        "Fine-tuning all layers: reference and ours run the same code (core.training.finetune.finetune); "
        "each figure is the mean of two runs, in the order reference, ours, ours, reference."
    )
    top = {"unfreeze": str(TOP_LAYERS), "epochs": cfg.FINETUNE.epochs}
    with phases.measure(f"3b. fine-tuning top {TOP_LAYERS}, reference (frozen part every epoch)"):
        results["ref_top"] = finetune_run(ref, results["ref_head"].run_id, **top, feature_cache=False)
    with phases.measure(f"3b. fine-tuning top {TOP_LAYERS}, ours (cold lower-backbone cache)"):
        results["ours_top"] = finetune_run(ours, results["ours_head"].run_id, **top)
    with phases.measure(f"3b. fine-tuning top {TOP_LAYERS} again, ours (warm lower-backbone cache)"):
        results["ours_top2"] = finetune_run(ours, results["ours_head"].run_id, **top, lr=3e-5)
    cached_below = ours.get(results["ours_top"].run_id).metrics.get("cached_below", "nothing (NOT cached)")
    notes.append(
        f"Fine-tuning the top {TOP_LAYERS} layers for the reference {cfg.FINETUNE.epochs} epochs: the "
        "reference runs the frozen lower backbone on every image every epoch; ours cached below "
        f"{cached_below} (wall includes extracting it for train ×2 views and validation in the cold run)."
    )

    photo = first_photo(args.path)
    with phases.measure("4. latency (load Predictor, 4 × (5 + 30) calls)"):
        predictor = Predictor.for_run(ours, results["ours_head"].run_id)
        results["latency"] = latencies(predictor, photo)
    notes.append(
        f"Latency photo: {photo.name}; {LATENCY_WARMUP} untimed warm-up calls of each, then "
        f"{LATENCY_REPEATS} rounds in which the four calls take turns."
    )

    cache_note = (
        f"Feature arrays written: ours run 1 {results['ours_head'].new_feature_files}, "
        f"ours run 2 {results['ours_head2'].new_feature_files} (0 means the warm cache was hit), "
        f"reference {results['ref_head'].new_feature_files}."
    )
    notes.append(cache_note)
    extraction = results["ours_head"].wall_s - results["ours_head2"].wall_s
    notes.append(
        f"Ours, cold minus warm head run: {extraction:.1f} s, roughly the cost of extracting the "
        "features (train ×2 views, validation, test)."
    )
    notes.append(
        "VmRSS is for the whole process: a later phase starts from what earlier phases left allocated."
    )
    notes.append(
        f"Targets are judged on wall time. CPU time is the process's own (all threads); with "
        f"{os.cpu_count()} cores, a load average above {os.cpu_count()} means other processes were "
        "competing and wall times are inflated by them."
    )
    lines = [
        *header(args, sizes, started),
        "",
        *training_table(results),
        "",
        *latency_table(results["latency"]),
        "",
        *memory_table(phases),
        "",
        *(f"- {note}" for note in notes),
    ]
    print("\n".join(lines), flush=True)


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
