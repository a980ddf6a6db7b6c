"""Which device trains, and how it is set up.

On an NVIDIA GPU: memory growth on (so the dashboard and a training process can
share it), mixed precision when the GPU has tensor cores (compute capability 7.0
or newer; the softmax output stays float32), and MirroredStrategy when there are
several GPUs. On a CPU nothing changes.

PETLAB_DEVICES="/cpu:0,/cpu:1" (or GPU names) mirrors training over exactly those
devices. CPU devices beyond the first are made by splitting the CPU into logical
devices when this module is imported (it must happen before TensorFlow initialises
its devices), so the several-GPU code path runs, and is tested, on a machine
without GPUs.

Several machines (TF_CONFIG with more than one worker) are refused with a clear
error: Keras 3's model.fit does not work under MultiWorkerMirroredStrategy (see
docs/multi-gpu.md).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Sequence

import keras
import tensorflow as tf

from core.errors import BadInputError

MIXED_PRECISION_ENV = "PETLAB_MIXED_PRECISION"  # "0" turns it off on a GPU
DEVICES_ENV = "PETLAB_DEVICES"  # e.g. "/cpu:0,/cpu:1" or "/gpu:0,/gpu:2"
MULTI_WORKER_ISSUE = "https://github.com/keras-team/keras/issues/20585"


def gpu_names() -> list[str]:
    """Human names of the visible GPUs (empty on a CPU-only machine)."""
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return names


def requested_devices() -> list[str]:
    """The devices PETLAB_DEVICES names, in order (empty when it is unset)."""
    return [name.strip() for name in os.environ.get(DEVICES_ENV, "").split(",") if name.strip()]


def describe_device() -> str:
    """One line naming the device the next run will use."""
    names = gpu_names()
    if not names:
        text = f"CPU ({os.cpu_count()} cores)"
    elif len(names) == 1:
        text = f"GPU: {names[0]}"
    else:
        text = f"{len(names)} GPUs: {', '.join(names)}"
    if names and wants_mixed_precision(tf.config.list_physical_devices("GPU")[0]):
        text += ", mixed precision"
    if devices := requested_devices():
        text += f", mirrored over {', '.join(devices)}"
    return text


def configure_device() -> None:
    """Memory growth on every GPU, and mixed precision where it pays off."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # already initialised
            tf.config.experimental.set_memory_growth(gpu, True)
    if gpus and wants_mixed_precision(gpus[0]):
        keras.mixed_precision.set_global_policy("mixed_float16")


def split_cpu_as_requested() -> None:
    """Make the logical CPU devices PETLAB_DEVICES names (called on import, before TensorFlow initialises)."""
    cpus = [spec.device_index or 0 for spec in map(_spec, requested_devices()) if spec.device_type == "CPU"]
    if cpus and max(cpus) > 0:
        split_cpu(max(cpus) + 1)


def split_cpu(count: int) -> bool:
    """Split the CPU into `count` logical devices; False when TensorFlow has already initialised them."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        return False
    return True


def wants_mixed_precision(gpu) -> bool:
    """Mixed precision pays off on tensor cores (compute capability 7.0+), unless PETLAB_MIXED_PRECISION=0."""
    capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
    tensor_cores = bool(capability) and tuple(capability) >= (7, 0)
    return tensor_cores and os.environ.get(MIXED_PRECISION_ENV, "1") != "0"


def distribution_strategy(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """The strategy to build, compile and fit under; the same instance for every call in a process.

    MirroredStrategy over `devices` (default: PETLAB_DEVICES) when given, else over all GPUs when
    there are several, else the default strategy.
    """
    workers = cluster_size()
    if workers > 1:
        raise BadInputError(
            f"TF_CONFIG describes a cluster of {workers} machines, but PetLab trains on one machine only "
            f"(Keras 3 model.fit does not run under MultiWorkerMirroredStrategy, {MULTI_WORKER_ISSUE}); "
            "unset TF_CONFIG to train on this machine's devices."
        )
    names = requested_devices() if devices is None else list(devices)
    if names:
        return _mirrored(_known_devices(names))
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return _mirrored(())
    return tf.distribute.get_strategy()


# Under MirroredStrategy, Keras 3 fails in fit/evaluate when the first batch does not split evenly over
# the replicas (AddN shape error, keras-team/keras#19246), and a replica that gets no example trains
# BatchNormalization into NaN (tensorflow/tensorflow#41657). Batches whose size is a multiple of the
# replica count avoid both: every batch is, and each epoch leaves out `count % replicas` images, a
# different few each training epoch (core.training.datasets.Sampling).


def replica_batch_size(batch_size: int, replicas: int) -> int:
    """`batch_size` rounded up to a multiple of `replicas`: the global batch, split equally among them."""
    return -(-batch_size // replicas) * replicas


def cluster_size() -> int:
    """How many machines (chief and workers) TF_CONFIG describes; 0 when it is unset."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    except (ValueError, AttributeError):
        raise BadInputError("TF_CONFIG is not a JSON object; unset it or fix it.") from None
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def _known_devices(names: list[str]) -> tuple[str, ...]:
    """Canonical names of `names`, each checked against the devices this process has."""
    available = {device.name for device in tf.config.list_logical_devices()}
    canonical = tuple(_spec(name).to_string() for name in names)
    missing = [name for name, full in zip(names, canonical, strict=True) if full not in available]
    if missing:
        raise BadInputError(
            f"{DEVICES_ENV} names {', '.join(missing)}, which this process does not have "
            f"(it has {', '.join(sorted(available))}); name devices it has, or set {DEVICES_ENV} "
            "before PetLab starts (extra CPU devices must be made before TensorFlow initialises)."
        )
    return canonical


def _spec(name: str) -> tf.DeviceSpec:
    try:
        return tf.DeviceSpec.from_string(name)
    except ValueError:
        raise BadInputError(
            f"{DEVICES_ENV}: {name!r} is not a device name; write e.g. /gpu:0,/gpu:1."
        ) from None


@functools.cache
def _mirrored(devices: tuple[str, ...]) -> tf.distribute.MirroredStrategy:
    # One instance per device list: variables made under one MirroredStrategy cannot be used under
    # another, and train.py shares the head's layers between the full model and the feature model.
    return tf.distribute.MirroredStrategy(list(devices) or None)


with contextlib.suppress(BadInputError):  # a bad name is reported by distribution_strategy()
    split_cpu_as_requested()
