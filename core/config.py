"""The reference recipe: every default PetLab uses, in one place.

The command line, the dashboard sidebar and the tests read their defaults from
here. The values are those of the published tutorial PetLab starts from:
ResNet50V2 with ImageNet weights, frozen; 224 px; random horizontal flip;
GAP -> BatchNorm -> Dropout(0.2) -> Dense softmax; Adam 1e-3; batch 32;
25 epochs with early stopping on val_loss (patience 5, best weights restored);
train[:90%] / train[90%:] / test; fine-tuning at 1e-5 for 5 epochs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from core.errors import BadInputError

SPLITS = ("train", "validation", "test")
SOURCES = ("tfds", "oxford-files", "folder")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split."""

    source: str = "tfds"
    path: str | None = None
    validation_fraction: float = 0.1
    test_fraction: float = 0.2  # only for sources without an official test split
    seed: int = 42
    # The label curation a run trains on: the digest of the relabel / exclude marks applied to its
    # train and validation splits (core.curation), snapshotted when the run was queued; None: as given.
    curation: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    """Head training on a frozen backbone."""

    backbone: str = "resnet50v2"
    weights: str = "imagenet"  # "imagenet", "none", or a path to a weights file
    image_size: int | None = None  # None: the backbone's own size (224 for ResNet50V2)
    epochs: int = 25
    lr: float = 1e-3
    batch_size: int = 32
    patience: int = 5  # early stopping on val_loss; 0 turns it off
    dropout: float = 0.2
    label_smoothing: float = 0.0  # not in the reference recipe: none (hard targets)
    augment: str = "flip"
    seed: int = 42
    # Train the head on cached backbone features when the augmentation allows it (none or flip):
    # the same model and data distribution as the reference, without recomputing the frozen backbone.
    feature_cache: bool = True


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning a finished head run with the top of the backbone unfrozen."""

    epochs: int = 5
    lr: float = 1e-5
    unfreeze: str = "all"  # "all" or a number of backbone layers, counted from the top
    batch_size: int | None = None  # None: the parent run's batch size
    patience: int = 5
    seed: int = 42
    # With the top N layers unfrozen and flip-only augmentation, run the frozen layers below them
    # once per image and view (cached) instead of every epoch: the same training, less computing.
    feature_cache: bool = True


def parse_unfreeze(unfreeze: str | int) -> int | None:
    """A fine-tuning `unfreeze` value as a number of backbone layers from the top, or None for all.

    BadInputError when it is neither "all" nor a positive whole number.
    """
    text = str(unfreeze).strip().lower()
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        rule = f"takes a number of layers (at least 1) or 'all', not {unfreeze!r}."
        raise BadInputError(f"--unfreeze {rule}", dashboard=f"Unfreeze {rule}")
    return int(text)


DATA = DataConfig()
TRAIN = TrainConfig()
FINETUNE = FinetuneConfig()


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as a plain dict (for JSON and the registry)."""
    return dataclasses.asdict(config)


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Build a config dataclass from a dict, ignoring unknown keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})
