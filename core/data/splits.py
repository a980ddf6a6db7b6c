"""How examples are split into train, validation and test.

Sources with an official split (tensorflow-datasets, the Oxford annotation
files) use the reference rule: `train[:90%]` / `train[90%:]` / `test`, where the
percentages cut the official training list in tfds's stored order
(`tfds_order`), so the Oxford files split exactly as tfds does. Sources without one (a folder of
images) use `stratified_split`: per class, `test_fraction` goes to test, then
`validation_fraction` of the rest to validation. Both rules live here so that
every source splits the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from core.config import SPLITS, DataConfig
from core.errors import BadInputError


def check_fractions(config: DataConfig) -> None:
    """Raise BadInputError unless both split fractions are at least 0 and below 1."""
    for name, value in (("validation", config.validation_fraction), ("test", config.test_fraction)):
        if not 0.0 <= value < 1.0:
            raise BadInputError(
                f"The {name} fraction must be at least 0 and below 1, not {value}; choose for example 0.1."
            )


def check_split(split: str) -> None:
    """Raise BadInputError unless `split` is one of config.SPLITS."""
    if split not in SPLITS:
        raise BadInputError(f"There is no split called {split!r}; use one of {', '.join(SPLITS)}.")


def _class_rng(seed: int, label: int) -> np.random.Generator:
    # One generator per class, so adding or removing a class leaves the others' splits unchanged.
    return np.random.default_rng([seed, label])


def stratified_split(
    labels: Sequence[int] | np.ndarray, validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Split example indices per class: test first, then validation from the rest, train the remainder.

    Returns sorted int64 index arrays for every name in config.SPLITS; together they
    cover each index exactly once, and the result depends only on the labels, the
    fractions and the seed.
    """
    labels = np.asarray(labels, dtype=np.int64)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        shuffled = _class_rng(seed, int(label)).permutation(members)
        n_test = round(len(shuffled) * test_fraction)
        n_validation = round((len(shuffled) - n_test) * validation_fraction)
        parts["test"].append(shuffled[:n_test])
        parts["validation"].append(shuffled[n_test : n_test + n_validation])
        parts["train"].append(shuffled[n_test + n_validation :])
    return {
        name: np.sort(np.concatenate(chunks or [np.empty(0, np.int64)])) for name, chunks in parts.items()
    }


def tfds_order(keys: Sequence[str], split_name: str) -> list[int]:
    """Indices of `keys` in the order tensorflow-datasets stores them in the split `split_name`.

    tfds writes a split sorted by md5(split name + example key), so slices such as
    `train[90%:]` are a pseudo-random, reproducible subset rather than the end of the
    source list. The Oxford-IIIT Pet key is the image file name (`Abyssinian_100.jpg`).
    """
    salt = hashlib.md5(split_name.encode("utf-8"))

    def position(index: int) -> int:
        hasher = salt.copy()
        hasher.update(keys[index].replace("\\", "/").encode("utf-8"))
        return int(hasher.hexdigest(), 16)

    return sorted(range(len(keys)), key=position)


def reference_percent(validation_fraction: float) -> float:
    """The percentage of the official training list that stays in train (90.0 for the default 0.1)."""
    return round(100.0 - 100.0 * validation_fraction, 6)


def reference_train_count(n_official_train: int, validation_fraction: float) -> int:
    """How many of the official training examples stay in train, rounded exactly as tfds's `train[:90%]`."""
    return round(reference_percent(validation_fraction) * n_official_train / 100.0)


def stratified_rule(config: DataConfig) -> dict[str, object]:
    """The settings that define a stratified split (part of a source's fingerprint)."""
    return {
        "rule": "stratified",
        "validation_fraction": config.validation_fraction,
        "test_fraction": config.test_fraction,
        "seed": config.seed,
    }
