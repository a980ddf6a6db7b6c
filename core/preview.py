"""What an augmentation spec does to an image, for the dashboard's preview grid."""

from __future__ import annotations

import numpy as np

from core.augment import build_augmentation
from core.images import resize_image


def preview_augmentations(
    image: np.ndarray, spec: str, count: int, seed: int, size: int = 224
) -> list[np.ndarray]:
    """`count` augmented versions of an HxWx3 uint8 image, resized to size×size as in training.

    The same (image, spec, seed) always gives the same pictures; another seed gives others.
    Raises BadInputError for a bad spec.
    """
    square = resize_image(np.asarray(image, dtype=np.uint8), size)
    augmentation = build_augmentation(spec, seed=seed)
    if augmentation is None:
        return [square.copy() for _ in range(count)]
    batch = np.repeat(square[None].astype(np.float32), count, axis=0)
    augmented = np.asarray(augmentation(batch, training=True))
    return [np.clip(a, 0, 255).round().astype(np.uint8) for a in augmented]
