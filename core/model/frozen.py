"""Training mode for a PetLab model: its frozen parts run in inference mode, whatever `training` Keras passes.

In Keras 3 a Functional model hands its `training` flag to every layer it holds, nested models
included, overriding the `training=False` the backbone was called with when the model was built.
A frozen BatchNormalization copes by itself: with trainable=False it runs in inference mode (its
moving statistics fixed). A Dropout does not: it has no weights, so `trainable` changes nothing
for it, and EfficientNetV2B0's stochastic-depth Dropout layers (`blockXX_drop`) would keep dropping
inside a frozen backbone during fit() while the feature cache serves clean features.

`training_copy` gives fit() a model whose frozen Dropout layers are `FreezableDropout`, a Dropout
that, like BatchNormalization, runs in inference mode while frozen, and whose trainable
BatchNormalization (the head's) is synchronized over the replicas of a MirroredStrategy, as one
device normalizes over the whole batch. The copy exists only while training: saved models keep
Keras' own Dropout, so they load anywhere with plain `keras.saving.load_model`.

`reseed_dropout` makes every trainable Dropout's masks a function of (seed, epoch), so a resumed
epoch drops what the uninterrupted run dropped, and the full model and the part above a cache,
which hold the same trainable Dropout layers in the same order, draw the same masks.
"""

from __future__ import annotations

import keras
import numpy as np

from core.model.classifier import nested_layers


@keras.saving.register_keras_serializable(package="PetLab")
class FreezableDropout(keras.layers.Dropout):
    """Dropout that runs in inference mode while frozen (trainable=False), as BatchNormalization does."""

    def call(self, inputs, training=False):
        return super().call(inputs, training=self.trainable and training)


def frozen_dropout(model: keras.Model) -> list[keras.layers.Dropout]:
    """The Keras Dropout layers of `model` (nested ones included) that are frozen but would still drop."""
    return [
        layer
        for layer in nested_layers(model)
        if type(layer) is keras.layers.Dropout and layer.rate > 0 and not layer.trainable
    ]


def training_copy(model: keras.Model, replicas: int = 1) -> keras.Model:
    """The model fit() trains in place of `model`: frozen parts in inference mode, BN synced over replicas.

    `model` itself when no frozen Dropout would drop; otherwise a copy with the same weights in
    which those are FreezableDropout (after training, `model.set_weights(copy.get_weights())`).
    Make it under the distribution strategy's scope, where its variables must live.
    """
    trainer = model
    if frozen_dropout(model):
        trainer = keras.models.clone_model(model, clone_function=_freezable, recursive=True)
        trainer.set_weights(model.get_weights())
    for layer in nested_layers(trainer):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            layer.synchronized = replicas > 1  # read when fit() traces its training step
    return trainer


def _freezable(layer: keras.Operation) -> keras.Operation:
    """A new copy of one operation of a model, a Keras Dropout becoming a FreezableDropout."""
    config = layer.get_config()
    if type(layer) is keras.layers.Dropout:
        return FreezableDropout.from_config(config)
    return layer.__class__.from_config(config)  # what keras.models.clone_model does by default


def reseed_dropout(model: keras.Model, seed: int, epoch: int) -> None:
    """Restart the random stream of every trainable Dropout of `model` from (seed, epoch, its rank)."""
    trainable = [
        layer
        for layer in nested_layers(model)
        if isinstance(layer, keras.layers.Dropout) and layer.rate > 0 and layer.trainable
    ]
    for rank, layer in enumerate(trainable):
        generator = layer.seed_generator
        start = np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]
        generator.state.assign(keras.ops.convert_to_tensor([start, 0], dtype=generator.state.dtype))
