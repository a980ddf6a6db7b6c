"""One data set's cached backbone features, loaded once, for experiments that train many heads.

The learning-rate finder (core.training.lr_finder) and sweeps (core.training.sweep) train head
after head on the same pooled features. `load_head_features` gets them through the feature cache
(core.training.feature_cache: computed once with progress, read from disk afterwards) and keeps them
in memory; `HeadFeatures.new_model` builds each new head the way head training does (the reference
model on this process's warm backbone, core.training.head), so every head of an experiment starts
from the same initial weights and shares one backbone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from core import config as cfg
from core.catalog.augmentations import is_flip_only
from core.catalog.backbones import default_image_size, get_backbone
from core.curation.marks import Curation
from core.errors import BadInputError
from core.inference.evaluate import classification_report
from core.progress import ProgressCallback, no_progress
from core.training.datasets import load_training_arrays
from core.training.device import distribution_strategy
from core.training.feature_cache import FeatureCache, FrozenPart, feature_dataset
from core.training.fit import Datasets, FitData, FitPlan, RunData, cacheable
from core.training.head import _warm_backbone


@dataclass(frozen=True, eq=False)
class HeadFeatures:
    """The pooled backbone features of every split a head trains or is chosen on, in memory.

    `config` and `train` are the data and head-training configs they were computed for (the
    image size resolved); `views` the training images' features (and their mirror images' with
    the flip); `part` the model they came from, whose backbone every new head shares; `curation`
    the label marks applied to the training and validation rows (None: labels as given).
    """

    config: cfg.DataConfig
    train: cfg.TrainConfig
    data: RunData
    cache: FeatureCache
    part: FrozenPart
    views: tuple[np.ndarray, ...]
    validation: np.ndarray
    curation: Curation | None = None

    @property
    def num_classes(self) -> int:
        return len(self.data.class_names)

    def new_model(self, dropout: float) -> keras.Model:
        """A reference model with a new head (seeded as head training seeds it) on the shared backbone."""
        return _reference_model(self.train, self.num_classes, dropout)[0]

    def datasets(self, plan: FitPlan) -> Datasets:
        """Training and validation batches of features for `fit`, drawn as head training draws them.

        The targets are one-hot: label smoothing is the loss's (`plan.label_smoothing`).
        """
        labels = self.data.arrays["train"][1], self.data.arrays["validation"][1]

        def datasets(first_epoch: int) -> FitData:
            train, train_steps = feature_dataset(
                list(self.views), labels[0], self.num_classes, plan.sampling(first_epoch)
            )
            validation, val_steps = feature_dataset(
                [self.validation], labels[1], self.num_classes, plan.sampling(training=False)
            )
            return FitData(train, validation, (train_steps, val_steps))

        return datasets

    def test_report(self, head: keras.Model, progress: ProgressCallback = no_progress) -> dict:
        """The evaluation report of a head trained on these features, on the test split's features."""
        images, labels = self.data.arrays["test"]
        features = self.cache.get(self.part, images, self.data.fingerprint, "test", progress=progress)
        probabilities = np.asarray(head.predict(features, batch_size=256, verbose=0))
        return classification_report(probabilities, labels, self.data.class_names)


def _reference_model(
    train: cfg.TrainConfig, num_classes: int, dropout: float | None = None
) -> tuple[keras.Model, str]:
    """The reference model on this process's warm backbone (as head training builds it), and its digest."""
    with distribution_strategy().scope():
        return _warm_backbone.model(
            get_backbone(train.backbone),
            num_classes,
            train.image_size,
            train.weights,
            train.dropout if dropout is None else dropout,
            train.seed,
        )


def load_head_features(
    data_config: cfg.DataConfig,
    train: cfg.TrainConfig,
    workspace: Path,
    progress: ProgressCallback = no_progress,
) -> HeadFeatures:
    """Decode the data and get the training and validation features (computed once, then cached).

    BadInputError when the augmentation cannot be cached (only none or the reference flip can).
    """
    backbone = get_backbone(train.backbone)  # an unknown name fails before any image is decoded
    if not cacheable(train.augment):
        raise BadInputError(
            f"Experiments on cached features need augmentation 'none' or 'flip', not {train.augment!r}; "
            "change the augmentation or train single runs instead.",
        )
    train = dataclasses.replace(train, image_size=default_image_size(backbone.name, train.image_size))
    keras.utils.set_random_seed(train.seed)
    source, arrays, curation = load_training_arrays(data_config, workspace, train.image_size, progress)
    data = RunData(source, arrays)  # curated (DataConfig.curation): the features are the kept rows
    part = FrozenPart(*_reference_model(train, len(data.class_names)))
    cache = FeatureCache(workspace)

    def features(split: str, view: str = "original") -> np.ndarray:
        images = data.arrays[split][0]
        return np.asarray(cache.get(part, images, data.fingerprint, split, view, progress=progress))

    views = (features("train"),) + ((features("train", "flipped"),) if is_flip_only(train.augment) else ())
    return HeadFeatures(data_config, train, data, cache, part, views, features("validation"), curation)
