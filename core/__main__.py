"""`python -m core`: the PetLab command line."""

import contextlib
import os
import sys

from core.cli import TENSORFLOW_FREE_COMMANDS, main

# Quiet TensorFlow's C++ logs before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def _native_stderr_silenced():
    """TensorFlow's native start-up lines ignore TF_CPP_MIN_LOG_LEVEL; keep them off the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _load_tensorflow_quietly(command: str) -> None:
    """Import TensorFlow now, its start-up lines silenced, unless `command` does without it."""
    if command in TENSORFLOW_FREE_COMMANDS or os.environ.get("PETLAB_TF_STARTUP_LOGS") == "1":
        return
    with _native_stderr_silenced():
        import tensorflow

        tensorflow.config.list_physical_devices("GPU")  # CUDA probing logs its own errors on a CPU machine


# The arguments are read before TensorFlow loads: a typo or `runs` answers at once, not seconds later.
sys.exit(main(before=_load_tensorflow_quietly))
