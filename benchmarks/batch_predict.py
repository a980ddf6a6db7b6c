"""Batch prediction throughput: `python benchmarks/batch_predict.py` (issue 13's benchmark).

Images per second of `predict_folder` on the 370-photo sample (listing, decoding, resizing, the
forward passes and the top-k) against the bare compiled forward pass of the same model at the
same batch size (MAX_BATCH) on the same images already decoded, and the decoding alone. The
model is the reference recipe's (ResNet50V2 at 224 px, 37 classes) with random weights
(`weights=None`: no network here), which costs the same as ImageNet's. Each figure is the median
of interleaved rounds, after one untimed round. Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` and `core` import

import numpy as np
import tensorflow as tf

from benchmarks import REPO
from benchmarks.measure import log, machine_line, started_now
from core.catalog.backbones import default_image_size, get_backbone
from core.config import TrainConfig
from core.data.folder import class_images
from core.data.images import load_image
from core.inference.batch import predict_folder
from core.inference.predict import Predictor
from core.model.classifier import build_model, compiled_forward
from core.predictions.answers import MAX_BATCH
from core.runs.store import RunStore
from core.workspace import atomic_write_json

SAMPLE = REPO.parent / "shared" / "pets-sample" / "images"
CLASSES = 37


def saved_predictor(workspace: Path, backbone: str, size: int | None) -> Predictor:
    """A finished run of a random-weight model, registered and saved like a trained one, loaded back."""
    model = build_model(get_backbone(backbone), CLASSES, default_image_size(backbone, size), weights=None)
    store = RunStore(workspace)
    run_id = store.create(
        "head", {"data": {"source": "folder"}, "train": {"backbone": backbone}}, status="done"
    )
    paths = store.paths(run_id)
    paths.create()
    model.save(paths.model)
    atomic_write_json(paths.class_names, [f"class_{n}" for n in range(CLASSES)])
    predictor = Predictor.for_run(store, run_id)
    predictor.warm_up()
    return predictor


def medians(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each call over `rounds` interleaved rounds, after one untimed round."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_number in range(rounds + 1):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if round_number:
                times[name].append(time.perf_counter() - start)
            log(f"round {round_number}: {name} {time.perf_counter() - start:.1f} s")
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=TrainConfig().backbone)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    started = started_now()
    files = class_images(SAMPLE)
    with tempfile.TemporaryDirectory() as tmp:
        predictor = saved_predictor(Path(tmp), args.backbone, args.image_size)
        size = predictor.image_size
        decoded = np.stack([load_image(path, size) for path in files])
        batches = [
            tf.convert_to_tensor(decoded[i : i + MAX_BATCH], tf.float32)
            for i in range(0, len(files), MAX_BATCH)
        ]
        forward = compiled_forward(predictor.model)
        result = medians(
            {
                "predict_folder": lambda: predict_folder(predictor, SAMPLE, top_k=5),
                "bare compiled forward": lambda: [np.asarray(forward(batch)) for batch in batches],
                "decode + resize only": lambda: [load_image(path, size) for path in files],
            },
            args.rounds,
        )
    n = len(files)
    print(machine_line(started, {"tensorflow": tf.__version__}))
    print(
        f"\n{n} photos, {args.backbone} at {size} px (random weights), batch {MAX_BATCH} "
        f"({math.ceil(n / MAX_BATCH)} passes), median of {args.rounds} rounds\n"
    )
    print("| measure | seconds | images/s | vs bare forward |")
    print("|---|---:|---:|---:|")
    bare = result["bare compiled forward"]
    for name, seconds in result.items():
        print(f"| {name} | {seconds:.2f} | {n / seconds:.1f} | {bare / seconds:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
