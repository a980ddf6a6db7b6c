"""The classifier: a backbone with the reference head, and how to fine-tune it.

`build_model` gives the reference architecture: raw 0-255 RGB in, the scaling the
backbone expects, the frozen backbone, then GlobalAveragePooling -> BatchNorm ->
Dropout -> Dense softmax. `unfreeze_model` opens the top layers *of the backbone*
for fine-tuning while every BatchNormalization layer of the backbone stays frozen, so
its moving statistics never change (in Keras 3 a BatchNormalization layer with
trainable=False runs in inference mode inside fit(), which `training=False` on the
backbone call alone does not guarantee); the head's BatchNormalization keeps learning.
Frozen Dropout layers need more than trainable=False: see core.model.frozen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from core.catalog.backbones import Backbone
from core.config import parse_unfreeze
from core.errors import BadInputError
from core.model.backbones import build_backbone

HEAD_LAYERS = ("avg_pool", "head_bn", "head_dropout", "predictions")


def build_model(
    backbone: Backbone,
    num_classes: int,
    image_size: int,
    weights: str | None = "imagenet",
    dropout: float = 0.2,
    base: keras.Model | None = None,
) -> keras.Model:
    """The reference classifier for `num_classes` classes, with a frozen backbone.

    `base`: an already built backbone to put under a new head (see core.training.feature_cache.WarmBackbone).
    """
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    if backbone.scaling == "minus_one_to_one":
        # Same arithmetic as resnet_v2/mobilenet_v2 preprocess_input, as a safe-mode-loadable layer.
        x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_minus_one_to_one")(x)
    base = base or build_backbone(backbone, image_size, weights)
    base.trainable = False
    x = base(x, training=False)
    outputs = apply_head(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name=f"petlab_{backbone.name}")


def apply_head(x, num_classes: int, dropout: float):
    """GAP -> BatchNorm -> Dropout -> Dense softmax (kept float32 under mixed precision)."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)


def backbone_of(model: keras.Model) -> keras.Model:
    """The backbone nested inside a PetLab model."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise BadInputError(f"Model {model.name} has no nested backbone; it was not built by PetLab.")


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer in the model, nested ones included."""
    return [layer for layer in nested_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


def nested_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of `model` and of the models nested in it, once each."""
    found: dict[int, keras.layers.Layer] = {}
    pending = list(model.layers)
    while pending:
        layer = pending.pop(0)
        if id(layer) not in found:
            found[id(layer)] = layer
            if isinstance(layer, keras.Model):
                pending = list(layer.layers) + pending
    return list(found.values())


def unfreeze_model(model: keras.Model, unfreeze: str | int = "all") -> int:
    """Make the top `unfreeze` backbone layers (or all) trainable; the backbone's BatchNorm stays frozen.

    The head (head_bn included) trains as in head training. Returns the number of backbone
    layers with weights that became trainable.
    """
    base = backbone_of(model)
    base.trainable = True
    layers = base.layers
    count = parse_unfreeze(unfreeze) or len(layers)
    cutoff = max(len(layers) - count, 0)
    opened = 0
    for index, layer in enumerate(layers):
        layer.trainable = index >= cutoff and not isinstance(layer, keras.layers.BatchNormalization)
        opened += int(layer.trainable and bool(layer.weights))
    for layer in batchnorm_layers(base):
        layer.trainable = False
    return opened


def frozen_boundary(model: keras.Model) -> int | None:
    """Where the frozen lower backbone of a model prepared by `unfreeze_model` ends.

    The index in `backbone.operations` of the highest operation below every layer that trains
    (trainable weights, or an unfrozen Dropout that drops in training) whose output is the only
    tensor the operations above it read: the place where the lower part's output can be
    computed once, in inference mode, and cached. None when no layer with weights is frozen
    below the trainable ones (every layer trains, say).
    """
    operations = backbone_of(model).operations
    trainable = [i for i, op in enumerate(operations) if _trains(op)]
    if not trainable:
        return None
    # A functional model hands each operation's output tensors, as objects, to the operations reading them.
    producer = {id(t): i for i, op in enumerate(operations) for t in keras.tree.flatten(op.output)}
    last_reader = list(range(len(operations)))  # the highest operation that reads each one's output
    for i, op in enumerate(operations):
        for tensor in _inputs_of(op):
            j = producer.get(id(tensor))
            if j is not None:
                last_reader[j] = max(last_reader[j], i)
    boundary, reach = None, 0
    for cut in range(1, trainable[0]):
        reach = max(reach, last_reader[cut - 1])
        if reach <= cut:
            boundary = cut
    if boundary is None or not any(op.weights for op in operations[: boundary + 1]):
        return None  # nothing worth caching below: only input, padding or scaling
    return boundary


def _trains(operation: keras.Operation) -> bool:
    """Whether an operation acts differently in fit(): it has trainable weights, or is an unfrozen Dropout."""
    if not isinstance(operation, keras.layers.Layer):
        return False
    drops = isinstance(operation, keras.layers.Dropout) and operation.rate > 0 and operation.trainable
    return bool(operation.trainable_weights) or drops


def _inputs_of(operation: keras.Operation) -> list:
    """The tensors an operation of a functional model reads (an input layer reads none)."""
    if isinstance(operation, keras.layers.InputLayer):
        return []
    return keras.tree.flatten(operation.input)


def compile_model(
    model: keras.Model,
    lr: float | keras.optimizers.schedules.LearningRateSchedule,
    label_smoothing: float = 0.0,
) -> None:
    """Adam, categorical cross-entropy, accuracy and top-5 accuracy, as in the reference.

    `lr` is a rate or a Keras schedule. With `label_smoothing` ε the loss compares the
    predictions with the targets y(1 - ε) + ε/K (training and validation alike); accuracy
    still counts the true class.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"),
        ],
    )


def compiled_forward(model: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    """`model(x, training=False)` as one graph, traced once for any batch size of float32 input."""
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])


def load_model(path) -> keras.Model:
    """Load a saved PetLab model in Keras safe mode: a model that would run Python code is refused."""
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as exc:
        if "safe_mode" not in str(exc):
            raise
        raise BadInputError(
            f"{Path(path).name} holds Python code (such as a Lambda layer) that PetLab never runs; "
            "load only models that PetLab trained."
        ) from None
