"""What the training-speed benchmark (train_speed.py) times: PetLab runs, as a user starts them.

Runs go through the real queue (`queue_head_run` / `queue_finetune_run` + `run_queue`) in this process,
or through `python -m core train` in a new one; single-photo latency compares `Predictor.predict_image`
with bare forward passes of the same model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from benchmarks import REPO
from benchmarks.measure import RunTiming, interleaved_medians, log
from core import config as cfg
from core.data.images import IMAGE_EXTENSIONS, load_image
from core.inference.predict import Predictor
from core.runs.requests import queue_finetune_run, queue_head_run
from core.runs.store import RunStore
from core.training.datasets import load_split_arrays
from core.training.worker import run_queue

# One fine-tuning epoch of every layer: the settings finetune_run starts from.
ONE_EPOCH_ALL_LAYERS = {"epochs": 1, "lr": 1e-5, "unfreeze": "all", "patience": 0}


def feature_files(workspace: Path) -> int:
    """How many feature arrays the workspace's feature cache holds."""
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
        run_id=run_id,
        wall_s=wall,
        cpu_s=cpu,
        fit_s=sum(entry["seconds"] for entry in history),
        train_s=saved,
        epochs=len(history),
        new_feature_files=feature_files(store.workspace) - before,
    )


def head_run(store: RunStore, data: cfg.DataConfig, train: cfg.TrainConfig) -> RunTiming:
    """Queue a head-training run and time it to the end."""
    return run_to_end(store, queue_head_run(store, data, train))


def finetune_run(store: RunStore, parent: int, **settings: Any) -> RunTiming:
    """Queue fine-tuning of run `parent` (ONE_EPOCH_ALL_LAYERS, changed by `settings`) and time it."""
    finetune = cfg.FinetuneConfig(**(ONE_EPOCH_ALL_LAYERS | settings))
    return run_to_end(store, queue_finetune_run(store, parent, finetune))


def cli_head_run(workspace: Path, data: cfg.DataConfig, train: cfg.TrainConfig) -> float:
    """Wall time of `python -m core train` in a new process (importing TensorFlow, building the backbone)."""
    recipe = {
        "--workspace": workspace,
        "--source": data.source,
        "--path": data.path,
        "--backbone": train.backbone,
        "--weights": train.weights,
        "--image-size": train.image_size,
        "--epochs": train.epochs,
        "--patience": train.patience,
        "--lr": train.lr,
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
    """The folder's first JPEG by name, or else its first image anywhere below it."""
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not photos:
        photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    return photos[0]
