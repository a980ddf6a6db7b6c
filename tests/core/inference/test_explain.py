"""Grad-CAM heatmaps for every backbone, and the overlay shown to a person."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.catalog.backbones import BACKBONES
from core.data.images import resize_image
from core.errors import BadInputError
from core.inference.explain import GradCam, grad_cam, jet, last_conv_layer, overlay
from core.model.classifier import backbone_of, build_model
from tests.tiny_models import COLORS, colour_images, tiny_trained_model

SIZE = 64


def photo(height: int = 48, width: int = 80) -> np.ndarray:
    """A non-square uint8 photo: red on the left, blue on the right, a little noise."""
    rng = np.random.default_rng(3)
    pixels = np.empty((height, width, 3), dtype=np.float32)
    pixels[:, : width // 2] = COLORS[0]
    pixels[:, width // 2 :] = COLORS[2]
    return np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def trained() -> keras.Model:
    return tiny_trained_model("mobilenetv2", SIZE, epochs=4)


@pytest.fixture(scope="module")
def explainer(trained) -> GradCam:
    return GradCam(trained)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_gives_a_unit_range_heatmap_at_the_image_size(name) -> None:
    keras.utils.set_random_seed(0)
    model = build_model(BACKBONES[name], 3, SIZE, weights=None)
    explainer = GradCam(model)
    assert len(explainer.layer.output.shape) == 4
    assert explainer.layer is last_conv_layer(backbone_of(model))

    heatmap, index = explainer(photo())
    assert heatmap.shape == (48, 80) and heatmap.dtype == np.float32
    assert np.isfinite(heatmap).all() and heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    assert 0 <= index < 3

    # The rebuilt forward pass is the model's own: softmax of its scores is the model's output.
    images = tf.constant(colour_images(2, SIZE)[0])
    _, logits = explainer.forward(images)
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), model(images).numpy(), atol=1e-5)


def test_heatmaps_of_two_classes_differ_on_a_trained_model(explainer) -> None:
    image = photo(SIZE, SIZE)
    predicted_map, predicted = explainer(image)
    other = (predicted + 1) % 3
    other_map, explained = explainer(image, other)
    assert explained == other
    assert predicted_map.max() == pytest.approx(1.0)
    assert np.abs(predicted_map - other_map).max() > 0.05


def test_the_map_is_the_class_weighted_sum_of_the_features(trained, explainer) -> None:
    # GAP -> BatchNorm (inference) -> Dense is linear, so a class score's gradient is the same at
    # every position: d score / d A_k = W[k, c] * gamma_k / sqrt(variance_k + epsilon) / (h * w).
    batch = tf.constant(photo(SIZE, SIZE)[None], tf.float32)
    features, _ = explainer.forward(batch)
    norm, dense = trained.get_layer("head_bn"), trained.get_layer("predictions")
    scale = norm.gamma / tf.sqrt(norm.moving_variance + norm.epsilon)
    height, width = features.shape[1:3]
    for class_index in range(3):
        weights = dense.kernel[:, class_index] * scale / (height * width)
        expected = tf.nn.relu(tf.reduce_sum(features[0] * weights, axis=-1)).numpy()
        cam, explained = explainer.class_activation_map(batch, class_index)
        assert explained == class_index
        np.testing.assert_allclose(cam.numpy(), expected, rtol=1e-4, atol=1e-7)


def test_default_class_is_the_prediction_and_results_are_repeatable(trained, explainer) -> None:
    image = photo()
    probabilities = trained(tf.constant(resize_image(image, SIZE)[None], tf.float32)).numpy()[0]
    heatmap, index = grad_cam(trained, image)
    assert index == int(probabilities.argmax())
    again, same = explainer(image, index)
    assert same == index
    np.testing.assert_allclose(again, heatmap, atol=1e-6)


def test_bad_class_index_or_image_is_a_clear_error(trained) -> None:
    with pytest.raises(BadInputError, match="Class index 3 is out of range; the model has 3 classes"):
        grad_cam(trained, photo(), 3)
    with pytest.raises(BadInputError, match="HxWx3"):
        grad_cam(trained, np.zeros((32, 32), dtype=np.uint8))


def test_overlay_is_an_rgb_image_of_the_photo_size() -> None:
    image = photo()
    heatmap = np.linspace(0, 1, 48 * 80, dtype=np.float32).reshape(48, 80)
    painted = overlay(image, heatmap)
    assert painted.shape == image.shape and painted.dtype == np.uint8
    np.testing.assert_array_equal(overlay(image, heatmap, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, heatmap, alpha=1.0), jet(heatmap))
    small = overlay(image, np.ones((3, 5), dtype=np.float32))  # a coarse map is stretched to the photo
    assert small.shape == image.shape
    with pytest.raises(BadInputError, match="between 0 and 1"):
        overlay(image, heatmap, alpha=1.5)


def test_jet_runs_from_blue_through_green_to_red() -> None:
    low, middle, high = jet(np.array([0.0, 0.5, 1.0]))
    assert low.argmax() == 2 and middle.argmax() == 1 and high.argmax() == 0
    assert jet(np.zeros((4, 6))).shape == (4, 6, 3)
