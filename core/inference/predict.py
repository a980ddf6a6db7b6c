"""Prediction: top-k breeds with probabilities for photos.

A `Predictor` loads a finished run's model once (safe mode) and answers each
photo with one compiled forward pass; the dashboard keeps one per run in
`st.cache_resource`. Photos are decoded by `core.data.images`, exactly as the
training images were.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from core.data.images import ImageInput, load_image
from core.errors import BadImageError, BadInputError, NotFoundError, PetLabError
from core.model.classifier import compiled_forward, load_model
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


@dataclass(frozen=True)
class Prediction:
    """The answer for one photo: (class name, probability) pairs, most likely first."""

    name: str
    top: list[tuple[str, float]]
    error: str | None = None


class Predictor:
    """A loaded model and its class names, ready for photos."""

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

    def predict_image(self, data: ImageInput, top_k: int = 5, name: str | None = None) -> Prediction:
        """Top-k classes for one photo (file path or bytes); raises BadImageError for a bad file."""
        image = load_image(data, self.image_size, name)
        probs = self.probabilities(image[None])[0]
        order = np.argsort(-probs)[: max(1, min(top_k, len(probs)))]
        label = name or (Path(data).name if not isinstance(data, bytes) else "photo")
        return Prediction(label, [(self.class_names[i], float(probs[i])) for i in order])

    def predict_many(self, items: list[tuple[str, ImageInput]], top_k: int = 5) -> list[Prediction]:
        """Predictions for several (name, data) photos; a bad file gets its error, the rest still answer."""
        results = []
        for name, data in items:
            try:
                results.append(self.predict_image(data, top_k, name))
            except BadImageError as exc:
                results.append(Prediction(name, [], str(exc)))
        return results
