"""The fast paths train exactly what the image path trains, for every backbone of the catalogue.

The feature cache (head training on pooled backbone features) and the lower-backbone cache
(fine-tuning the top N layers on cached outputs of the frozen part below them) promise to change
the cost, never the result. For each backbone, with the reference head (dropout 0.2), the cached
path and the image path give the same features, the same loss for the same batch and Dropout
masks, and the same weights after one training step, each path trained as fit() trains it: on
`training_copy(model)`, with the trainable Dropout layers reseeded from (seed, epoch).

Steps run eagerly (`run_eagerly`): the same train_step as a compiled fit, without tracing a
graph per backbone. Tiny random backbones (32 px, weights=None) with BatchNormalization
calibrated on the batch (tests.tiny_models) keep activations at a useful scale.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.catalog.backbones import BACKBONES
from core.model.classifier import (
    backbone_of,
    batchnorm_layers,
    build_model,
    compile_model,
    frozen_boundary,
    unfreeze_model,
)
from core.model.frozen import reseed_dropout, training_copy
from core.training.feature_cache import feature_extractor, head_model
from tests.tiny_models import calibrate_batchnorm, colour_images

SIZE = 32
CLASSES = 3
# Backbone layers opened for fine-tuning: each leaves a frozen part with weights below the cut,
# and for EfficientNetV2B0 both frozen stochastic-depth Dropout below the cut and unfrozen above it.
TOP = {
    "resnet50v2": 36,
    "mobilenetv2": 20,
    "mobilenetv3small": 30,
    "mobilenetv3large": 30,
    "efficientnetv2b0": 20,
    "convnexttiny": 20,
}
# The paths do the same float32 arithmetic in another grouping, so they agree to rounding:
FEATURES_RTOL = 1e-4  # of the largest feature
LOSS_RTOL = 1e-4
# One Adam step moves a weight by about its learning rate (1e-3) whatever the gradient's size;
# 1e-4 is a tenth of a step, far above rounding and far below a step taken another way.
WEIGHTS_ATOL = 1e-4


def _batch() -> tuple[np.ndarray, np.ndarray]:
    images, labels = colour_images(6, SIZE, seed=1)
    return images, keras.utils.to_categorical(labels, CLASSES)


def _features_in_fit(trainer: keras.Model, images: np.ndarray, at: int | None) -> np.ndarray:
    """What the image path feeds the part above the cut during fit(): the frozen part in training mode."""
    return keras.ops.convert_to_numpy(feature_extractor(trainer, at)(images, training=True))


def _cached(model: keras.Model, images: np.ndarray, at: int | None) -> np.ndarray:
    """What the cache holds: the frozen part in inference mode (FeatureCache's extractor, uncompiled)."""
    return keras.ops.convert_to_numpy(feature_extractor(model, at)(images, training=False))


def _train_step(
    model: keras.Model, x: np.ndarray, y: np.ndarray, trainer: keras.Model | None = None
) -> float:
    """One training step of `model` as fit() takes it (epoch 0, seed 7) on `training_copy(model)`
    (or on `trainer`, already made); returns its loss."""
    trainer = trainer or training_copy(model)
    compile_model(trainer, 1e-3)
    trainer.run_eagerly = True
    reseed_dropout(trainer, seed=7, epoch=0)
    loss = trainer.train_on_batch(x, y, return_dict=True)["loss"]
    if trainer is not model:
        model.set_weights(trainer.get_weights())
    return float(loss)


def _assert_paths_agree(model: keras.Model, at: int | None) -> None:
    """The image path and the path on cached outputs of the frozen part below `at` train alike."""
    images, targets = _batch()
    trainer = training_copy(model)  # what fit() trains on images
    cached = _cached(model, images, at)
    in_fit = _features_in_fit(trainer, images, at)
    assert np.abs(cached).max() > 0
    np.testing.assert_allclose(in_fit, cached, rtol=0, atol=FEATURES_RTOL * np.abs(cached).max())

    start = model.get_weights()
    statistics = _backbone_statistics(model)
    image_loss = _train_step(model, images, targets, trainer)
    image_step = model.get_weights()
    for before, after in zip(statistics, _backbone_statistics(model), strict=True):
        np.testing.assert_array_equal(after, before)  # the backbone's BatchNorm stays fixed
    model.set_weights(start)
    cached_loss = _train_step(head_model(model, at), cached, targets)  # shares the model's layers
    assert cached_loss == pytest.approx(image_loss, rel=LOSS_RTOL)
    moved = 0
    for name, a, b, before in zip(_names(model), image_step, model.get_weights(), start, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=WEIGHTS_ATOL, err_msg=name)
        moved += int(not np.allclose(a, before))
    assert moved > 0  # the step trained something


def _backbone_statistics(model: keras.Model) -> list[np.ndarray]:
    layers = batchnorm_layers(backbone_of(model))
    return [np.array(v) for layer in layers for v in (layer.moving_mean, layer.moving_variance)]


def _names(model: keras.Model) -> list[str]:
    return [weight.path for weight in model.weights]


@pytest.mark.parametrize("name", list(BACKBONES))
def test_cached_paths_train_what_the_image_path_trains(name: str) -> None:
    """Catches a frozen part that trains in training mode on one path only (EfficientNetV2B0's Dropout)."""
    keras.utils.set_random_seed(0)
    model = build_model(BACKBONES[name], CLASSES, SIZE, weights=None, dropout=0.2)
    calibrate_batchnorm(model, _batch()[0])
    _assert_paths_agree(model, None)  # head training on pooled features

    unfreeze_model(model, TOP[name])
    at = frozen_boundary(model)
    assert at is not None
    _assert_paths_agree(model, at)  # fine-tuning the top N on the lower backbone's outputs
