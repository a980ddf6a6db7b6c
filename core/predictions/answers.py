"""Top-k answers for photos, whatever runs the model: the part every predictor shares.

A `PhotoPredictor` knows a model's class names and input size and gives class
probabilities for a batch of images; from that it answers one photo or several
in batches, each unreadable file with its one-sentence error. The Keras predictor
(core.inference.predict) and the LiteRT one (core.predictions.lite) are both one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.images import ImageInput, load_image
from core.errors import BadImageError, in_dashboard_words

# Photos per forward pass: more are answered in several passes, so memory stays bounded.
MAX_BATCH = 32


@dataclass(frozen=True)
class Prediction:
    """The answer for one photo: (class name, probability) pairs, most likely first."""

    name: str
    top: list[tuple[str, float]]
    error: str | None = None


class PhotoPredictor:
    """A model's class names and input size, and `probabilities` for a batch of its images."""

    class_names: list[str]
    image_size: int

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of size×size×3 uint8 images."""
        raise NotImplementedError

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
