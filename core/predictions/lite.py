"""A run's model through LiteRT: the dashboard's answers before TensorFlow is loaded.

Importing TensorFlow and loading a Keras model take seconds; LiteRT (ai-edge-litert) imports in
a tenth of a second and runs the float32 copy of the model that every finished run leaves beside
its model.keras (`RunPaths.lite_model`, written by core.inference.export.write_lite_model). So a
server's first photo is answered at once, while the Keras model loads in the background for
Grad-CAM and for every photo after it. The copy computes the same function with LiteRT's kernels
(XNNPACK): probabilities agree with Keras's to about 1e-4, the order of the top classes too
unless two are closer than that (tests/core/predictions/test_lite.py).

`lite_predictor` gives None when it cannot help: LiteRT is not installed (it has no wheel for
every platform TensorFlow has), the run has no copy (trained before PetLab wrote one, or the
conversion failed), or the copy is older than the model.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from core.predictions.answers import PhotoPredictor
from core.runs.layout import RunPaths
from core.workspace import read_json


def litert_installed() -> bool:
    """True when LiteRT's interpreter can be imported (ai-edge-litert)."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def lite_model_current(paths: RunPaths) -> bool:
    """True when the run's LiteRT copy exists and was written after its model.keras."""
    try:
        return paths.lite_model.stat().st_mtime_ns >= paths.model.stat().st_mtime_ns
    except OSError:
        return False


class LitePredictor(PhotoPredictor):
    """A run's LiteRT copy and class names, ready for photos (one batch at a time: a lock guards it)."""

    def __init__(self, paths: RunPaths) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.class_names = [str(name) for name in read_json(paths.class_names)]
        self._interpreter = Interpreter(model_path=str(paths.lite_model), num_threads=os.cpu_count() or 1)
        (self._input,) = self._interpreter.get_input_details()
        (self._output,) = self._interpreter.get_output_details()
        self.image_size = int(self._input["shape"][1])
        self._batch = 0  # the batch size the tensors are allocated for
        self._lock = threading.Lock()

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        batch = np.asarray(images, dtype=np.float32)
        with self._lock:
            if len(batch) != self._batch:
                self._interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
                self._interpreter.allocate_tensors()
                self._batch = len(batch)
            self._interpreter.set_tensor(self._input["index"], batch)
            self._interpreter.invoke()
            return np.array(self._interpreter.get_tensor(self._output["index"]))


def lite_predictor(paths: RunPaths) -> LitePredictor | None:
    """The run's LitePredictor, or None when LiteRT or a current copy of the model is missing."""
    if not (lite_model_current(paths) and litert_installed()):
        return None
    return LitePredictor(paths)
