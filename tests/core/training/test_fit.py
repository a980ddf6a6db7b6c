"""The fit every run goes through: its frozen parts run in inference mode, whatever Keras passes down.

In Keras 3 a Functional model hands `training=True` to every layer inside it during fit(),
nested models included. A frozen Dropout (EfficientNetV2B0's stochastic depth) must not drop
then: `fit` trains core.model.frozen.training_copy(model) and copies its weights back.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from core.runs.store import RunStore
from core.training.fit import FitData, FitPlan, TrainingRun, fit


def _model() -> keras.Model:
    """A frozen part holding a Dropout, called with training=False as build_model calls a backbone."""
    keras.utils.set_random_seed(0)
    frozen = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dropout(0.5)],
        name="frozen",
    )
    frozen.trainable = False
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, activation="softmax")(frozen(inputs, training=False))
    return keras.Model(inputs, outputs)


def _datasets(first_epoch: int) -> FitData:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = keras.utils.to_categorical(np.arange(32) % 3, 3)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    return FitData(batches, batches, (4, 4))


def _fit(store: RunStore, model: keras.Model, lr: float) -> list[float]:
    """Fit `model` for 3 epochs as a run; returns each epoch's training loss."""
    run_id = store.create("head", {"data": {}, "train": {}}, status="running")
    run = TrainingRun(store, store.get(run_id), lambda line: None, lambda *progress: None)
    plan = FitPlan(augment="none", lr=lr, batch_size=8, seed=0, epochs=3, patience=0)
    status, _ = fit(run, model, _datasets, plan)
    assert status == "done"
    return [row["loss"] for row in store.history(run_id)]


def test_fit_runs_a_frozen_dropout_in_inference_mode_and_keeps_what_it_trained(tmp_path) -> None:
    """Catches a frozen Dropout that drops during fit() (the loss then changes at learning rate 0)."""
    store = RunStore(tmp_path / "ws")
    model = _model()
    losses = _fit(store, model, lr=0.0)
    np.testing.assert_allclose(losses, losses[0], rtol=1e-6)  # nothing trains, nothing drops
    before = [w.copy() for w in model.get_weights()]
    _fit(store, model, lr=1e-2)
    changed = [not np.array_equal(a, b) for a, b in zip(model.get_weights(), before, strict=True)]
    assert changed == [False, False, True, True]  # the model holds the trained head, the frozen part as was


def test_fine_tuning_keeps_the_heads_label_smoothing() -> None:
    from core import config as cfg
    from core.training.finetune import finetune_plan

    train = cfg.TrainConfig(label_smoothing=0.1)
    assert finetune_plan(train, cfg.FinetuneConfig()).label_smoothing == 0.1
