"""Device set-up: MirroredStrategy over two logical CPUs, mixed precision, the device line, TF_CONFIG.

Splitting the CPU into logical devices must happen before TensorFlow initialises, so the
MirroredStrategy test trains in a fresh subprocess with PETLAB_DEVICES set, the way a person would.
Several machines (MultiWorkerMirroredStrategy) do not work with Keras 3 (docs/multi-gpu.md): PetLab
refuses TF_CONFIG clusters with a clear error, which is what is tested here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.catalog.backbones import get_backbone
from core.errors import BadInputError
from core.model.classifier import backbone_of, build_model, compile_model
from core.training import device as device
from tests.conftest import REPO

ROOT = REPO

# Runs in a subprocess with PETLAB_DEVICES=/cpu:0,/cpu:1; prints one JSON line of facts to check.
MIRRORED_SCRIPT = """
import json
import keras
import numpy as np
import tensorflow as tf
from core.catalog.backbones import get_backbone
from core.model.frozen import training_copy
from core.training.datasets import Sampling
from core.training.device import configure_device, describe_device, distribution_strategy
from core.training.device import replica_batch_size
from core.training.feature_cache import feature_dataset, head_model
from core.model.classifier import build_model, compile_model
from tests.conftest import REPO

configure_device()
strategy = distribution_strategy()
with strategy.scope():
    model = build_model(get_backbone("mobilenetv3small"), 3, 32, weights=None)
    compile_model(model, 1e-2)
# As fit() does on cached features: the layers above the cache (shared with the model), trained
# through training_copy, under the same strategy.
replicas = strategy.num_replicas_in_sync
with distribution_strategy().scope():
    head = training_copy(head_model(model), replicas)
    compile_model(head, 1e-2)
norm = head.get_layer("head_bn")
# One global batch of 8, 4 per replica, the second half shifted by 10: only a BatchNorm that
# normalizes over the global batch sees its whole variance.
rng = np.random.default_rng(0)
labels = keras.utils.to_categorical(np.arange(16) % 3, 3)
width = head.input_shape[-1]
shifted = rng.standard_normal((8, width)) + np.repeat([0.0, 10.0], 4)[:, None]
variance_before = norm.moving_variance.numpy().copy()
head.fit(tf.data.Dataset.from_tensors((shifted, labels[:8])), epochs=1, verbose=0)
global_variance = norm.momentum * variance_before + (1 - norm.momentum) * shifted.var(axis=0)
per_replica = [v.numpy() for v in strategy.experimental_local_results(norm.moving_variance.value)]

kernel = model.get_layer("predictions").kernel
before = kernel.numpy().copy()
images = rng.integers(0, 256, (16, 32, 32, 3)).astype("float32")
images_fit = model.fit(
    tf.data.Dataset.from_tensor_slices((images, labels)).batch(8), epochs=2, verbose=0
).history["loss"]
after_images = kernel.numpy().copy()

# 21 examples in batches of 31 would split unevenly over 2 replicas: batches of 32, epochs of 20.
features = rng.standard_normal((21, width)).astype("float32")
feature_labels = np.arange(21) % 3
sampling = Sampling(replica_batch_size(31, replicas), seed=0, replicas=replicas)
train, steps = feature_dataset([features], feature_labels, 3, sampling)
validation, val_steps = feature_dataset([features], feature_labels, 3, Sampling(32, replicas=replicas))
head_fit = head.fit(
    train,
    validation_data=validation,
    steps_per_epoch=steps,
    validation_steps=val_steps,
    epochs=2,
    verbose=0,
).history

# A whole head run through the worker: cached features, Dropout reseeded each epoch, 2 replicas.
import tempfile
from pathlib import Path
from core import config as cfg
from core.runs.requests import queue_head_run
from core.runs.store import RunStore
from core.training.worker import run_queue
from tests.conftest import write_pets

folder = Path(tempfile.mkdtemp())
store = RunStore(folder / "ws")
data = cfg.DataConfig(source="folder", path=str(write_pets(folder / "pets")))
train = cfg.TrainConfig(backbone="mobilenetv3small", weights="none", image_size=32, epochs=2, batch_size=7)
run_id = queue_head_run(store, data, train)
run_queue(store, say=lambda line: None)
run = store.get(run_id)
from core.predictions.lite import lite_model_current

print(json.dumps({
    "run": [run.status, run.error, [row["loss"] for row in store.history(run_id)]],
    "lite_copy": lite_model_current(store.paths(run_id)),
    "strategy": type(strategy).__name__,
    "same_instance": distribution_strategy() is strategy,
    "replicas": replicas,
    "devices": list(strategy.extended.worker_devices),
    "variable": type(kernel.value).__name__,
    "images_loss": images_fit,
    "images_changed": float(np.abs(after_images - before).max()),
    "synchronized": bool(norm.synchronized),
    "global_variance_error": max(float(np.abs(v - global_variance).max()) for v in per_replica),
    "variance_moved": float(np.abs(global_variance - variance_before).max()),
    "head_loss": head_fit["loss"] + head_fit["val_loss"],
    "head_changed": float(np.abs(kernel.numpy() - after_images).max()),
    "describe": describe_device(),
}))
"""


def test_mirrored_strategy_trains_a_petlab_model_on_two_logical_cpus() -> None:
    """Also catches a head BatchNorm that normalizes per replica instead of over the global batch."""
    env = os.environ | {device.DEVICES_ENV: "/cpu:0,/cpu:1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PETLAB_LITE_COPY"] = "1"  # the run's end converts a model whose variables are mirrored
    env.pop("TF_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["strategy"] == "MirroredStrategy" and facts["same_instance"]
    assert facts["replicas"] == 2
    assert [d.rsplit("/", 1)[-1] for d in facts["devices"]] == ["device:CPU:0", "device:CPU:1"]
    assert facts["variable"] == "MirroredVariable"
    assert all(np.isfinite(facts["images_loss"])) and facts["images_changed"] > 0
    # The head's BatchNorm took the statistics of the whole global batch (a variance near 26, where
    # each replica's half has about 1): its moving variance moved by about 0.25 and exactly as computed.
    assert facts["synchronized"]
    assert facts["variance_moved"] > 0.2 and facts["global_variance_error"] < 1e-3
    # The feature-cache head (shared layers, 21 -> 20 examples an epoch, batch 31 -> 32) trains without NaN.
    assert all(np.isfinite(facts["head_loss"])) and facts["head_changed"] > 0
    status, error, losses = facts["run"]  # a real head run, batch 7 -> 8
    assert status == "done", error
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert facts["lite_copy"]
    assert facts["describe"] == f"CPU ({os.cpu_count()} cores), mirrored over /cpu:0, /cpu:1"


def test_even_batches_for_replicas() -> None:
    assert [device.replica_batch_size(b, 2) for b in (1, 31, 32)] == [2, 32, 32]
    assert device.replica_batch_size(32, 3) == 33 and device.replica_batch_size(32, 1) == 32


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_keeps_the_softmax_in_float32(mixed_float16) -> None:
    model = build_model(get_backbone("mobilenetv3small"), 3, 32, weights=None)
    assert backbone_of(model).compute_dtype == "float16"
    assert backbone_of(model).variable_dtype == "float32"
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert model.output.dtype == "float32"
    compile_model(model, 1e-3)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # Keras wraps it itself
    probabilities = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_cpu_gets_no_mixed_precision_and_the_device_line(monkeypatch) -> None:
    monkeypatch.delenv(device.DEVICES_ENV, raising=False)
    device.configure_device()
    assert keras.mixed_precision.global_policy().name == "float32"
    assert device.describe_device() == f"CPU ({os.cpu_count()} cores)"
    assert device.distribution_strategy() is tf.distribute.get_strategy()
    assert device.distribution_strategy().num_replicas_in_sync == 1


def test_mixed_precision_needs_tensor_cores_and_can_be_turned_off(monkeypatch) -> None:
    capability = {"compute_capability": (7, 5)}
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda gpu: capability)
    monkeypatch.delenv(device.MIXED_PRECISION_ENV, raising=False)
    assert device.wants_mixed_precision("gpu")
    monkeypatch.setenv(device.MIXED_PRECISION_ENV, "0")
    assert not device.wants_mixed_precision("gpu")
    monkeypatch.delenv(device.MIXED_PRECISION_ENV)
    capability["compute_capability"] = (6, 1)  # Pascal: no tensor cores
    assert not device.wants_mixed_precision("gpu")


def test_devices_this_process_does_not_have_are_refused(monkeypatch) -> None:
    monkeypatch.setenv(device.DEVICES_ENV, "/cpu:0,/gpu:3")
    with pytest.raises(BadInputError, match="/gpu:3"):
        device.distribution_strategy()
    monkeypatch.setenv(device.DEVICES_ENV, "graphics-card")
    with pytest.raises(BadInputError, match="not a device name"):
        device.distribution_strategy()


def _tf_config(workers: int, index: int = 0) -> str:
    cluster = {"worker": [f"127.0.0.1:{20000 + i}" for i in range(workers)]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def test_several_machines_are_refused_with_the_upstream_reason(monkeypatch) -> None:
    monkeypatch.delenv(device.DEVICES_ENV, raising=False)
    monkeypatch.setenv("TF_CONFIG", _tf_config(2))
    with pytest.raises(BadInputError, match=r"2 machines.*keras-team/keras/issues/20585"):
        device.distribution_strategy()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(BadInputError, match="TF_CONFIG"):
        device.distribution_strategy()
    monkeypatch.setenv("TF_CONFIG", _tf_config(1))  # one machine: trains here as usual
    assert device.distribution_strategy().num_replicas_in_sync == 1
