"""Augmentation layers from a spec (`core.catalog.augmentations`), for training data only.

Each name of a spec maps to a Keras preprocessing layer. The training pipeline applies
the result to training batches after the decoded-image cache, so augmented images are
never cached and validation/test images are never augmented. The dashboard's preview
grid uses the same layers.

In training, the flip is not a layer: which images of an epoch are mirrored is drawn with
the epoch's order from (seed, epoch) (core.training.datasets), so a resumed run mirrors
what an uninterrupted one would, and the image path mirrors exactly the images whose
mirrored view the feature cache serves. `mirror` is that flip, as RandomFlip does it.
Drawing the flip before the other layers changes nothing in distribution: every other
augmentation is symmetric (a rotation by a and by -a are equally likely) or acts per pixel.
"""

from __future__ import annotations

import keras
import numpy as np

from core.catalog.augmentations import format_spec, parse_spec
from core.data.images import resize_image

# The image axes each RandomFlip mode reverses (images are [batch, height, width, channels]).
FLIP_AXES = {"horizontal": (2,), "vertical": (1,), "horizontal_and_vertical": (1, 2)}


def build_augmentation(spec: str | None, seed: int | None = None) -> keras.Sequential | None:
    """The Keras layers for a spec, or None for `none`. Inputs are 0-255 float images."""
    parsed = parse_spec(spec)
    if not parsed:
        return None
    layers = []
    for name, value in parsed.items():
        if name == "flip":
            layers.append(keras.layers.RandomFlip(str(value), seed=seed))
        elif name == "rotation":
            layers.append(keras.layers.RandomRotation(value, fill_mode="reflect", seed=seed))
        elif name == "translation":
            layers.append(keras.layers.RandomTranslation(value, value, fill_mode="reflect", seed=seed))
        elif name == "zoom":
            layers.append(keras.layers.RandomZoom(value, value, fill_mode="reflect", seed=seed))
        elif name == "contrast":
            layers.append(keras.layers.RandomContrast(value, value_range=(0, 255), seed=seed))
        elif name == "brightness":
            layers.append(keras.layers.RandomBrightness(value, value_range=(0, 255), seed=seed))
    return keras.Sequential(layers, name="augmentation")


def split_flip(spec: str | None) -> tuple[str | None, str]:
    """(the spec's flip mode or None, the spec without its flip): how training applies a spec."""
    parsed = parse_spec(spec)
    mode = parsed.pop("flip", None)
    return (None if mode is None else str(mode)), format_spec(parsed)


def mirror(images: np.ndarray, mode: str = "horizontal") -> np.ndarray:
    """`images` [N, H, W, 3] mirrored as RandomFlip(mode) mirrors an image it flips."""
    return np.flip(images, axis=FLIP_AXES[mode])


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
