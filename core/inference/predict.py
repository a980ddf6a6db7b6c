"""Prediction: top-k breeds with probabilities for photos.

A `Predictor` loads a finished run's model once (safe mode) and answers photos
with one compiled forward pass: several photos at once go through it as one
batch. The dashboard keeps one per run, loaded in the background (ui.engine).
Photos are decoded by `core.data.images`, exactly as the training images were.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from core.data.images import ImageInput, load_image
from core.errors import BadImageError, BadInputError, NotFoundError, PetLabError, in_dashboard_words
from core.model.classifier import compiled_forward, load_model
from core.runs.layout import RunPaths
from core.runs.store import RunStore
from core.workspace import read_json

# Photos per forward pass: more are answered in several passes, so memory stays bounded.
MAX_BATCH = 32


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

    def warm_up(self) -> None:
        """Trace the forward pass once (on a blank image), so the first photo does not pay for it."""
        self.probabilities(np.zeros((1, self.image_size, self.image_size, 3), np.uint8))

    def top(self, probs: np.ndarray, top_k: int) -> list[tuple[str, float]]:
        """The `top_k` (class name, probability) pairs of one probability vector, most likely first."""
        order = np.argsort(-probs)[: max(1, min(top_k, len(probs)))]
        return [(self.class_names[i], float(probs[i])) for i in order]

    def predict_image(self, data: ImageInput, top_k: int = 5, name: str | None = None) -> Prediction:
        """Top-k classes for one photo (file path or bytes); raises BadImageError for a bad file."""
        image = load_image(data, self.image_size, name)
        label = name or (Path(data).name if not isinstance(data, bytes) else "photo")
        return Prediction(label, self.top(self.probabilities(image[None])[0], top_k))

    def predict_many(self, items: list[tuple[str, ImageInput]], top_k: int = 5) -> list[Prediction]:
        """Predictions for several (name, data) photos in one batched forward pass (per MAX_BATCH).

        A file that cannot be read gets its one-sentence error; the others are still answered.
        """
        results: list[Prediction] = [Prediction(name, []) for name, _ in items]
        readable: list[tuple[int, np.ndarray]] = []
        for position, (name, data) in enumerate(items):
            try:
                readable.append((position, load_image(data, self.image_size, name)))
            except BadImageError as exc:
                results[position] = Prediction(name, [], in_dashboard_words(exc))
        for start in range(0, len(readable), MAX_BATCH):
            chunk = readable[start : start + MAX_BATCH]
            probs = self.probabilities(np.stack([image for _, image in chunk]))
            for (position, _), row in zip(chunk, probs, strict=True):
                results[position] = Prediction(items[position][0], self.top(row, top_k))
        return results
