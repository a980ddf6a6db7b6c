"""The flip as training draws it: `mirror` is what RandomFlip does to an image it flips."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.model.augmentation import mirror, split_flip


@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_mirror_is_what_random_flip_does_to_a_flipped_image(mode: str) -> None:
    """Catches the image path mirroring along another axis than the reference RandomFlip."""
    images = np.random.default_rng(0).integers(0, 256, (16, 6, 6, 3)).astype("float32")
    flipped = keras.ops.convert_to_numpy(keras.layers.RandomFlip(mode, seed=1)(images, training=True))
    mirrored = mirror(images, mode)
    changed = [not np.array_equal(out, image) for out, image in zip(flipped, images, strict=True)]
    assert any(changed)
    for out, image, expected, was_flipped in zip(flipped, images, mirrored, changed, strict=True):
        np.testing.assert_array_equal(out, expected if was_flipped else image)


def test_split_flip_takes_the_flip_out_of_a_spec() -> None:
    """Catches a flip applied twice (drawn with the epoch and again as a layer) or lost."""
    assert split_flip("flip") == ("horizontal", "none")
    assert split_flip("rotation=0.2,flip=vertical,zoom") == ("vertical", "rotation=0.2,zoom")
    assert split_flip("none") == (None, "none")
    assert split_flip("contrast=0.3") == (None, "contrast=0.3")
