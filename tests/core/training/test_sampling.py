"""How training batches are drawn: from (seed, epoch) alone, the same on the image and the cached paths.

A resumed fit starts its datasets at the epoch after its backup (`Sampling.first_epoch`); what
it draws from there must be what the uninterrupted fit drew. Under a MirroredStrategy each
epoch leaves out a few images so batches split evenly over the replicas: a different few
each epoch.
"""

from __future__ import annotations

import numpy as np

from core.training.datasets import Sampling, image_dataset
from core.training.feature_cache import feature_dataset, flip_views

COUNT, SIZE, BATCH = 10, 8, 4


def _images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (COUNT, SIZE, SIZE, 3), dtype=np.uint8), np.arange(COUNT) % 3


def _epochs(dataset, steps: int, epochs: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The batches of the first `epochs` epochs of an endless dataset, as numpy."""
    batches = iter(dataset)
    return [[tuple(np.asarray(t) for t in next(batches)) for _ in range(steps)] for _ in range(epochs)]


def _same(a: list, b: list) -> bool:
    """Whether two epochs hold the same batches."""
    return all(np.array_equal(x, y) for pa, pb in zip(a, b, strict=True) for x, y in zip(pa, pb, strict=True))


def test_a_resumed_dataset_draws_what_the_uninterrupted_one_draws() -> None:
    """Catches a resumed run replaying epoch 1's order and flips instead of drawing epoch k+1's."""
    images, labels = _images()
    views = [images.astype(np.float32), flip_views(images).astype(np.float32)]
    for make in (
        lambda sampling: image_dataset(images, labels, 3, sampling, "flip"),
        lambda sampling: feature_dataset(views, labels, 3, sampling),
    ):
        dataset, steps = make(Sampling(BATCH, seed=5))
        uninterrupted = _epochs(dataset, steps, 3)
        resumed, _ = make(Sampling(BATCH, seed=5, first_epoch=2))
        assert _same(_epochs(resumed, steps, 1)[0], uninterrupted[2])
        assert not _same(uninterrupted[0], uninterrupted[2])  # epochs do differ


def test_the_image_path_and_the_cache_draw_the_same_batches() -> None:
    """Catches the two paths shuffling or flipping differently for the same seed."""
    images, labels = _images()
    views = [images.astype(np.float32), flip_views(images).astype(np.float32)]
    sampling = Sampling(BATCH, seed=3)
    from_images, steps = image_dataset(images, labels, 3, sampling, "flip")
    from_cache, cached_steps = feature_dataset(views, labels, 3, sampling)
    assert steps == cached_steps == 3
    image_epochs, cache_epochs = _epochs(from_images, steps, 3), _epochs(from_cache, steps, 3)
    assert all(_same(a, b) for a, b in zip(image_epochs, cache_epochs, strict=True))
    mirrored = [
        not any(np.array_equal(x, original) for original in views[0])
        for epoch in image_epochs
        for batch, _ in epoch
        for x in batch
    ]
    assert 0 < sum(mirrored) < len(mirrored)  # some images were drawn mirrored, some not


def test_replicas_leave_out_a_different_few_images_each_epoch() -> None:
    """Catches an even split over replicas that drops the same training images for good."""
    sampling = Sampling(4, seed=0, replicas=2)
    epochs = [sampling.epoch(epoch, 21)[0] for epoch in range(6)]
    assert all(len(rows) == 20 and len(set(rows)) == 20 for rows in epochs)
    left_out = {int(np.setdiff1d(np.arange(21), rows)[0]) for rows in epochs}
    assert len(left_out) > 1
    assert sampling.steps(21) == 5
    validation = Sampling(4, replicas=2)  # no seed: the same pass every epoch, in stored order
    assert list(validation.epoch(0, 21)[0]) == list(range(20)) == list(validation.epoch(3, 21)[0])
