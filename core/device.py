"""Which device trains, and how it is set up.

On an NVIDIA GPU: memory growth on (so the dashboard and a training process can
share it), mixed precision when the GPU has tensor cores (compute capability 7.0
or newer; the softmax output stays float32), and MirroredStrategy when there are
several GPUs. On a CPU nothing changes.
"""

from __future__ import annotations

import contextlib
import os

import keras
import tensorflow as tf

MIXED_PRECISION_ENV = "PETLAB_MIXED_PRECISION"  # "0" turns it off on a GPU


def gpu_names() -> list[str]:
    """Human names of the visible GPUs (empty on a CPU-only machine)."""
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return names


def describe_device() -> str:
    """One line naming the device the next run will use."""
    names = gpu_names()
    if not names:
        return f"CPU ({os.cpu_count()} cores)"
    if len(names) == 1:
        return f"GPU: {names[0]}"
    return f"{len(names)} GPUs: {', '.join(names)}"


def configure_device() -> None:
    """Memory growth on every GPU, and mixed precision where it pays off."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # already initialised
            tf.config.experimental.set_memory_growth(gpu, True)
    if gpus and os.environ.get(MIXED_PRECISION_ENV, "1") != "0" and _has_tensor_cores(gpus[0]):
        keras.mixed_precision.set_global_policy("mixed_float16")


def _has_tensor_cores(gpu) -> bool:
    capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
    return bool(capability) and tuple(capability) >= (7, 0)


def distribution_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over several GPUs, otherwise the default strategy."""
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
