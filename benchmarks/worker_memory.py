"""The dashboard worker's memory over fine-tuning runs in a row: `python -m benchmarks.worker_memory`.

The dashboard's worker (core.runs.worker_process) lingers between runs, so whatever a run leaves
behind adds up. This starts that very worker as the dashboard does, trains one head run and then N
fine-tuning runs of it back to back, and after each prints the worker's resident memory (VmRSS
of its process id, read from /proc) next to the first fine-tuning run's. The target: after five
fine-tuning runs the worker's memory is within 10% of what it was after the first.

Data: the 370-photo sample in ../shared/pets-sample/images when it is there, else generated
class folders. Weights are random (no network), which costs the same memory as ImageNet's.
Progress goes to stderr; the table to stdout. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` and `core` import

from benchmarks import REPO
from benchmarks.measure import log, machine_line, started_now
from core import config as cfg
from core.runs import worker_process as jobs
from core.runs.requests import queue_finetune_run, queue_head_run
from core.runs.store import RunStore

SAMPLE = REPO.parent / "shared" / "pets-sample" / "images"
TARGET_GROWTH = 0.10  # the bound: within 10% of the memory after the first fine-tuning run


def process_rss_mb(pid: int) -> float:
    """Another process's resident set size (VmRSS) in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def generated_folders(root: Path, classes: int = 4, per_class: int = 24) -> Path:
    """Class folders of small noisy images, for a machine without the sample photos."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        for i in range(per_class):
            pixels = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
            path = root / f"class{c}" / f"{i:03d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
    return root


def data_config(workspace: Path) -> cfg.DataConfig:
    if SAMPLE.is_dir():
        return cfg.DataConfig(source="oxford-files", path=str(SAMPLE))
    log(f"{SAMPLE} is missing: generated class folders instead")
    return cfg.DataConfig(source="folder", path=str(generated_folders(workspace / "generated")))


def wait_done(store: RunStore, run_id: int, timeout_s: float = 1800) -> None:
    """Wait until the run ended; fail with its error unless it is done."""
    deadline = time.monotonic() + timeout_s
    while store.get(run_id).status in ("queued", "running"):
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} did not end within {timeout_s:.0f} s")
        time.sleep(0.5)
    record = store.get(run_id)
    if record.status != "done":
        raise SystemExit(f"run {run_id} {record.status}: {record.error}\n{jobs.log_tail(store.workspace)}")


def measure(args: argparse.Namespace, workspace: Path) -> list[tuple[str, int, float]]:
    """(run, worker pid, worker RSS in MB) after the head run and after each fine-tuning run."""
    store = RunStore(workspace)
    train = cfg.TrainConfig(
        backbone=args.backbone, weights="none", image_size=args.image_size, epochs=1, batch_size=16
    )
    head = queue_head_run(store, data_config(workspace), train)
    pid = jobs.start_worker(workspace)
    wait_done(store, head)
    rows = [(f"head run {head}", pid, process_rss_mb(pid))]
    log(f"{rows[-1][0]}: worker {pid} at {rows[-1][2]:.0f} MB")
    tune = cfg.FinetuneConfig(epochs=1, unfreeze="all", patience=0)
    for n in range(1, args.runs + 1):
        run_id = queue_finetune_run(store, head, tune)
        if jobs.running_worker(workspace) is None:
            pid = jobs.start_worker(workspace)
        wait_done(store, run_id)
        time.sleep(1.0)  # let the worker settle back to waiting for the queue
        worker = jobs.running_worker(workspace)
        rows.append(
            (f"fine-tuning {n} (run {run_id})", worker or -1, process_rss_mb(worker) if worker else 0)
        )
        log(f"{rows[-1][0]}: worker {worker} at {rows[-1][2]:.0f} MB")
    return rows


def report(rows: list[tuple[str, int, float]], args: argparse.Namespace) -> None:
    first = rows[1][2]
    what = f"{args.backbone}, {args.image_size} px"
    print(f"# Worker memory over {args.runs} fine-tuning runs in a row ({what})\n")
    print(machine_line(started_now(), {}))
    print("\n| after | worker pid | worker RSS | vs. after the 1st fine-tuning |")
    print("|---|---|---|---|")
    for name, pid, mb in rows:
        print(f"| {name} | {pid} | {mb:.0f} MB | {100 * (mb / first - 1):+.1f}% |")
    growth = rows[-1][2] / first - 1
    verdict = "met" if growth <= TARGET_GROWTH else "missed"
    print(f"\nAfter {args.runs} fine-tuning runs: {100 * growth:+.1f}% (target ≤ +10%): **{verdict}**")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fine-tuning runs in a row")
    parser.add_argument("--backbone", default="resnet50v2")
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="petlab-worker-memory-") as folder:
        workspace = Path(folder)
        try:
            report(measure(args, workspace), args)
        finally:
            worker = jobs.running_worker(workspace)
            if worker is not None:
                os.kill(worker, signal.SIGTERM)


if __name__ == "__main__":
    main()
