"""Grad-CAM: where in a photo the classifier looked for a class.

A PetLab model is a chain: raw 0-255 image -> optional Rescaling -> a nested
keras.applications backbone -> avg_pool -> head_bn -> head_dropout -> predictions.
The backbone's last convolutional feature map is inside the nested model, which
Keras cannot expose as an output of the outer model, so `GradCam` rebuilds the
same forward pass from parts: the layers before the backbone, a sub-model of the
backbone that returns [feature map, backbone output], then the head layers. The
gradient of the class's pre-softmax score with respect to that feature map gives
one weight per channel; their weighted sum, through a ReLU and normalised to
[0, 1], is the heatmap, resized to the photo's own size.

`overlay` paints a heatmap over the photo with a jet-like colour map computed in
numpy, so no plotting library is needed.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from core.data.images import resize_image
from core.errors import BadInputError
from core.model.classifier import backbone_of


def last_conv_layer(backbone: keras.Model) -> keras.layers.Layer:
    """The last layer of `backbone` with a 4-D (batch, height, width, channels) output.

    For ConvNeXt, EfficientNetV2 and MobileNetV3 that is a normalization or
    activation layer after the last convolution, which is what Grad-CAM wants:
    the feature map exactly as the head receives it.
    """
    for layer in reversed(backbone.layers):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # a shared layer has no single output
            continue
        if len(shape) == 4:
            return layer
    raise BadInputError(f"Backbone {backbone.name} has no convolutional feature map to explain.")


def _logits(layer: keras.layers.Layer, x: tf.Tensor) -> tf.Tensor:
    """The pre-softmax scores of the final layer (its output itself if it is not a softmax Dense)."""
    if isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.softmax:
        # Gradients of softmax probabilities vanish once a class saturates; the logits' do not.
        x = tf.cast(x, layer.kernel.dtype)
        logits = tf.matmul(x, layer.kernel)
        return logits + layer.bias if layer.use_bias else logits
    return tf.cast(layer(x, training=False), tf.float32)


class GradCam:
    """Grad-CAM for one PetLab model; build it once and call it for many photos."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        backbone = backbone_of(model)
        self.layer = last_conv_layer(backbone)
        self._features = keras.Model(
            backbone.inputs, [self.layer.output, backbone.output], name=f"{backbone.name}_gradcam"
        )
        position = model.layers.index(backbone)
        self._before = [
            layer for layer in model.layers[:position] if not isinstance(layer, keras.layers.InputLayer)
        ]
        self._head = model.layers[position + 1 : -1]
        self._last = model.layers[-1]
        self.input_size = int(model.input_shape[1])
        self.num_classes = int(model.output_shape[-1])
        self._traced_map = tf.function(self._map, reduce_retracing=True)

    def forward(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(feature map, logits) for a float32 batch of raw 0-255 images: the model's own pass."""
        x = images
        for layer in self._before:
            x = layer(x, training=False)
        features, x = self._features(x, training=False)
        for layer in self._head:
            x = layer(x, training=False)
        return features, _logits(self._last, x)

    def class_activation_map(self, images: tf.Tensor, class_index: int = -1) -> tuple[tf.Tensor, int]:
        """The raw map (feature-map resolution, after the ReLU, not normalised) of the first image.

        `images` is a float32 batch of raw 0-255 images at the model's input size;
        `class_index` -1 explains the predicted class. Returns (map, class explained).
        """
        cam, index = self._traced_map(
            tf.convert_to_tensor(images, tf.float32), tf.constant(class_index, tf.int32)
        )
        return cam, int(index)

    def _map(self, images: tf.Tensor, class_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            # The backbone is frozen, so its variables are not watched; watching the input
            # records every operation, the feature map included.
            tape.watch(images)
            features, logits = self.forward(images)
            predicted = tf.argmax(logits[0], output_type=tf.int32)
            index = tf.where(class_index < 0, predicted, class_index)
            score = tf.gather(logits[0], index)
        grads = tf.cast(tape.gradient(score, features), tf.float32)  # float16 under mixed precision
        channel_weights = tf.reduce_mean(grads[0], axis=(0, 1))
        cam = tf.nn.relu(tf.reduce_sum(tf.cast(features[0], tf.float32) * channel_weights, axis=-1))
        return cam, index

    def __call__(self, image: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int]:
        """(heatmap HxW float32 in [0, 1] at the image's size, class explained) for one HxWx3 photo."""
        pixels = _as_rgb_uint8(image)
        if class_index is not None and not 0 <= class_index < self.num_classes:
            raise BadInputError(
                f"Class index {class_index} is out of range; the model has {self.num_classes} classes."
            )
        batch = resize_image(pixels, self.input_size)[None].astype(np.float32)
        cam, index = self.class_activation_map(batch, -1 if class_index is None else int(class_index))
        return resize_heatmap(normalize(cam.numpy()), pixels.shape[:2]), index


def grad_cam(model: keras.Model, image: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int]:
    """Grad-CAM heatmap (HxW float32 in [0, 1]) of `class_index` (default: the predicted class).

    Returns the heatmap at the image's own size and the class index it explains.
    For many photos of one model, build a `GradCam` once instead.
    """
    return GradCam(model)(image, class_index)


def normalize(cam: np.ndarray) -> np.ndarray:
    """Scale a non-negative map to [0, 1]; an all-zero (or non-finite) map stays all zero."""
    cam = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    cam = np.maximum(cam, 0.0)
    peak = float(cam.max()) if cam.size else 0.0
    return cam / peak if peak > 0 else np.zeros_like(cam)


def resize_heatmap(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a [0, 1] map to (height, width), kept in [0, 1]."""
    height, width = int(size[0]), int(size[1])
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.shape != (height, width):
        resized = Image.fromarray(heatmap).resize((width, height), Image.Resampling.BILINEAR)
        heatmap = np.asarray(resized, dtype=np.float32)
    return np.clip(heatmap, 0.0, 1.0)


def jet(heatmap: np.ndarray) -> np.ndarray:
    """A jet-like colour map: [0, 1] values -> HxWx3 uint8 RGB (blue, cyan, yellow, red)."""
    v = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)[..., None]
    centres = np.array([3.0, 2.0, 1.0], dtype=np.float32)  # where red, green and blue peak, in quarters
    rgb = np.clip(1.5 - np.abs(4.0 * v - centres), 0.0, 1.0)
    return np.round(255.0 * rgb).astype(np.uint8)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """The photo with the heatmap painted over it: HxWx3 uint8 RGB, `alpha` the heatmap's weight."""
    if not 0.0 <= alpha <= 1.0:
        raise BadInputError(f"The overlay opacity must be between 0 and 1, not {alpha}.")
    pixels = _as_rgb_uint8(image)
    colors = jet(resize_heatmap(heatmap, pixels.shape[:2])).astype(np.float32)
    blended = (1.0 - alpha) * pixels.astype(np.float32) + alpha * colors
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """The image as HxWx3 uint8, or a BadInputError naming what was wrong."""
    pixels = np.asarray(image)
    if pixels.ndim != 3 or pixels.shape[-1] != 3 or min(pixels.shape[:2]) < 1:
        raise BadInputError(f"Expected an HxWx3 RGB image, got an array of shape {pixels.shape}.")
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    return pixels
