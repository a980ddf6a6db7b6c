"""Tiny trained PetLab models for tests: random backbone weights, a head fitted to coloured images.

With random weights and every BatchNormalization at its initial statistics
(mean 0, variance 1), a frozen backbone's activations shrink layer after layer
(to about 1e-12 in MobileNet), so every image gets the same prediction.
`calibrate_batchnorm` gives each BatchNormalization the statistics of the data,
as pretrained weights would have, so predictions depend on the image.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from core.catalog.backbones import get_backbone
from core.model.classifier import backbone_of, batchnorm_layers, build_model, compile_model
from core.runs.store import RunStore
from core.workspace import atomic_write_json

CLASS_NAMES = ["Abyssinian", "beagle", "Bengal"]
COLORS = np.array([(200, 40, 40), (40, 200, 40), (40, 40, 200)], dtype=np.float32)


def colour_images(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(float32 count×size×size×3 raw 0-255 images, int labels): class i is a noisy COLORS[i]."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(COLORS)
    noise = rng.normal(0.0, 8.0, (count, size, size, 3))
    images = np.clip(COLORS[labels][:, None, None, :] + noise, 0, 255).astype(np.float32)
    return images, labels


def calibrate_batchnorm(model: keras.Model, images: np.ndarray) -> None:
    """One training-mode pass with momentum 0: every BatchNormalization takes the data's statistics."""
    layers = batchnorm_layers(model)
    momenta = [layer.momentum for layer in layers]
    base = backbone_of(model)
    position = model.layers.index(base)
    x = images
    for layer in model.layers[1:position]:  # the scaling in front of the backbone, if any
        x = layer(x)
    for layer in layers:
        layer.momentum = 0.0
    base.trainable = True  # a frozen BatchNormalization ignores training=True
    try:
        features = base(x, training=True)
        model.get_layer("head_bn")(model.get_layer("avg_pool")(features), training=True)
    finally:
        base.trainable = False
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


def tiny_trained_model(backbone: str = "mobilenetv2", size: int = 32, epochs: int = 6) -> keras.Model:
    """A 3-class PetLab model (random backbone weights) whose head was fitted to `colour_images`."""
    keras.utils.set_random_seed(0)
    model = build_model(get_backbone(backbone), len(CLASS_NAMES), size, weights=None)
    images, labels = colour_images(96, size)
    calibrate_batchnorm(model, images)
    compile_model(model, lr=0.03)
    targets = keras.utils.to_categorical(labels, len(CLASS_NAMES))
    model.fit(images, targets, batch_size=16, epochs=epochs, verbose=0)
    return model


def in_a_fresh_process(code: str) -> None:
    """Run `code` (Python; the checkout importable) in a new interpreter; fail with its stderr if it fails.

    Models that tests compare numbers on, or need to tell classes apart, are made this way: built
    in-process after other tests, the same seed has given another model (a random backbone's
    calibration, a head fitted at a high learning rate, amplify whatever state and float32
    rounding earlier tests left), so such tests failed only in some orders on some xdist worker.
    """
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def saved_in_a_fresh_process(path: Path, maker: str, *args) -> Path:
    """`maker(*args)` (a function of this module that returns a model) run in a new interpreter
    (`in_a_fresh_process`), its model saved to `path` (.keras)."""
    in_a_fresh_process(f"from tests.tiny_models import {maker}\n{maker}(*{args!r}).save({str(path)!r})\n")
    return path


def calibrated_model(backbone: str, size: int) -> keras.Model:
    """A 3-class PetLab model, random weights, BatchNorm calibrated on `colour_images` (untrained head)."""
    keras.utils.set_random_seed(0)
    model = build_model(get_backbone(backbone), len(CLASS_NAMES), size, weights=None)
    calibrate_batchnorm(model, colour_images(48, size)[0])
    return model


def save_done_run(store: RunStore, model: keras.Model, class_names: list[str] = CLASS_NAMES) -> int:
    """Register `model` as a finished head run, with model.keras and class_names.json in its folder."""
    size = int(model.input_shape[1])
    config = {
        "data": {"source": "folder"},
        "train": {"backbone": model.name.removeprefix("petlab_"), "image_size": size},
    }
    run_id = store.create("head", config, status="done")
    paths = store.paths(run_id)
    paths.create()
    model.save(paths.model)
    atomic_write_json(paths.class_names, class_names)
    return run_id


TINY_RECIPE = {"backbone": "mobilenetv3small", "weights": "none", "image_size": 32}


def finished_head_run(workspace, data_folder) -> int:
    """Train one real head run (tiny backbone, 1 epoch) on a folder of class folders; returns its id."""
    from core.config import DataConfig, TrainConfig
    from core.runs.requests import queue_head_run
    from core.training.worker import run_queue

    store = RunStore(workspace)
    data = DataConfig(source="folder", path=str(data_folder))
    run_id = queue_head_run(store, data, TrainConfig(epochs=1, batch_size=16, **TINY_RECIPE))
    run_queue(store, say=lambda line: None)
    assert store.get(run_id).status == "done", store.get(run_id).error
    store.close()
    return run_id


# -- a data set a head can learn, and a random backbone that sees it (experiments: finder, sweeps) --

STRIPED_CLASSES = ("Abyssinian", "beagle", "Bengal")


def striped_images(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, labels): class i is COLORS[i] in stripes of direction i (rows, columns, diagonals).

    Each image has its own brightness and pixel noise: a random backbone's features of them
    (`calibrated_backbone_weights`) separate the classes, not perfectly, for a head to learn.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(STRIPED_CLASSES)
    rows, cols = np.mgrid[0:size, 0:size]
    images = np.empty((count, size, size, 3), np.float32)
    for index, label in enumerate(labels):
        stripes = 0.55 + 0.45 * ((rows, cols, rows + cols)[label] % 6 < 3)
        colour = COLORS[label] * rng.uniform(0.8, 1.05)
        images[index] = stripes[..., None] * colour + rng.normal(0.0, 12.0, (size, size, 3))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_striped_folders(root: Path, per_class: int, size: int = 32, seed: int = 0) -> Path:
    """`root/<class>/<n>.png` (lossless) of `striped_images`: a folder data source."""
    from PIL import Image

    images, labels = striped_images(per_class * len(STRIPED_CLASSES), size, seed)
    for number, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / STRIPED_CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{number:03d}.png")
    return root


def calibrated_backbone_weights(path: Path, backbone: str = "mobilenetv3small", size: int = 32) -> Path:
    """A weights file (Keras, no top) of a random backbone whose BatchNormalization saw `striped_images`.

    Made in a new interpreter (`in_a_fresh_process`), so it is the same file whichever tests ran before.
    """
    in_a_fresh_process(
        "from tests.tiny_models import save_calibrated_backbone\n"
        f"save_calibrated_backbone({str(path)!r}, {backbone!r}, {size})\n"
    )
    return path


def save_calibrated_backbone(path: str, backbone: str, size: int) -> None:
    """`calibrated_backbone_weights`' work, in the process that calls it."""
    keras.utils.set_random_seed(0)
    model = build_model(get_backbone(backbone), len(STRIPED_CLASSES), size, weights=None)
    calibrate_batchnorm(model, striped_images(96, size, seed=1)[0].astype(np.float32))
    backbone_of(model).save_weights(path)


def striped_experiment(folder: Path, per_class: int = 60):
    """(DataConfig, TrainConfig) of `striped_images` in class folders and a calibrated random backbone.

    Made once in `folder` (pass a session-wide folder to share them): 3 classes, the reference
    split fractions (about 130 training, 14 validation and 36 test images), MobileNetV3Small at
    32 px, batch 16, 3 epochs, patience 2.
    """
    from core import config as cfg

    data, weights = folder / "striped", folder / "calibrated.weights.h5"
    if not weights.is_file():
        write_striped_folders(data, per_class)
        calibrated_backbone_weights(weights)
    train = cfg.TrainConfig(
        backbone="mobilenetv3small", weights=str(weights), image_size=32, batch_size=16, epochs=3, patience=2
    )
    return cfg.DataConfig(source="folder", path=str(data)), train


@functools.cache
def striped_features(folder: Path):
    """The HeadFeatures of `striped_experiment(folder)`, in `folder / "workspace"`, loaded once per process.

    Tests that train heads on them share one feature extraction; each uses its own registry.
    """
    from core.training.head_features import load_head_features

    data, train = striped_experiment(folder)
    return load_head_features(data, train, folder / "workspace")
