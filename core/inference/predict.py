"""Prediction: top-k breeds with probabilities for photos.

A `Predictor` loads a finished run's model once (safe mode) and answers photos
with one compiled forward pass: several photos at once go through it as one
batch (core.predictions.answers, which the LiteRT predictor shares). The
dashboard keeps one per run, loaded in the background (ui.engine). Photos are
decoded by `core.data.images`, exactly as the training images were.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from core.errors import BadInputError, NotFoundError, PetLabError
from core.model.classifier import compiled_forward, load_model
from core.predictions.answers import PhotoPredictor
from core.runs.layout import RunPaths
from core.runs.store import RunStore
from core.workspace import read_json


def load_run_model(paths: RunPaths) -> tuple[keras.Model, list[str]]:
    """A run's saved model and class names; BadInputError (one sentence) when they are damaged."""
    run_id = paths.folder.name
    if not paths.model.is_file():
        raise NotFoundError(f"Run {run_id} has no saved model; train it first or pick another run.")
    try:
        return load_model(paths.model), list(read_json(paths.class_names))
    except PetLabError:
        raise
    except Exception as exc:  # damaged by hand in a way the cheap check of the listing cannot see
        raise BadInputError(
            f"Run {run_id}'s saved model cannot be read ({type(exc).__name__}); it may be damaged, "
            "so pick another run or train a new one."
        ) from None


class Predictor(PhotoPredictor):
    """A loaded Keras model and its class names, ready for photos."""

    def __init__(self, paths: RunPaths) -> None:
        self.model, self.class_names = load_run_model(paths)
        self.image_size = int(self.model.input_shape[1])
        self._forward = compiled_forward(self.model)

    @classmethod
    def for_run(cls, store: RunStore, run_id: int) -> Predictor:
        """The predictor of a registered run."""
        record = store.get(run_id)  # a clear error for an unknown id
        if record.broken:
            raise BadInputError(record.broken)
        return cls(store.paths(run_id))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of size×size×3 uint8 images."""
        return np.asarray(self._forward(tf.convert_to_tensor(images, tf.float32)))

    def warm_up(self) -> None:
        """Trace the forward pass once (on a blank image), so the first photo does not pay for it."""
        self.probabilities(np.zeros((1, self.image_size, self.image_size, 3), np.uint8))
