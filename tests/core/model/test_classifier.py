"""The model: input ranges per backbone, fine-tuning semantics, frozen backbone BatchNorm, save/load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.catalog.backbones import BACKBONES, get_backbone
from core.errors import BadInputError, OfflineError
from core.model.backbones import build_backbone
from core.model.classifier import (
    backbone_of,
    batchnorm_layers,
    build_model,
    compile_model,
    load_model,
    unfreeze_model,
)
from tests.tiny_models import calibrate_batchnorm

SIZE = 32

# What each backbone's own Keras module says its inputs must be prepared with.
PREPROCESS = {
    "resnet50v2": keras.applications.resnet_v2.preprocess_input,
    "mobilenetv2": keras.applications.mobilenet_v2.preprocess_input,
    "mobilenetv3small": keras.applications.mobilenet_v3.preprocess_input,
    "mobilenetv3large": keras.applications.mobilenet_v3.preprocess_input,
    "efficientnetv2b0": keras.applications.efficientnet_v2.preprocess_input,
    "convnexttiny": keras.applications.convnext.preprocess_input,
}


def _fed_to_backbone(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The tensor the backbone receives when the full model gets `images`."""
    base = backbone_of(model)
    x = keras.ops.convert_to_tensor(images)
    for layer in model.layers[1 : model.layers.index(base)]:
        x = layer(x)
    return keras.ops.convert_to_numpy(x)


def _backbone_internal_scaling(base: keras.Model, images: np.ndarray) -> np.ndarray:
    """Run the backbone's own leading Rescaling/Normalization layers, if it has any."""
    x = keras.ops.convert_to_tensor(images)
    for layer in base.layers[1:]:
        if not isinstance(layer, keras.layers.Rescaling | keras.layers.Normalization):
            break
        x = layer(x)
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_backbone_gets_the_input_range_it_expects(name: str) -> None:
    backbone = BACKBONES[name]
    model = build_model(backbone, num_classes=3, image_size=SIZE, weights=None)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, SIZE, SIZE, 3)).astype("float32")
    images[0] = 0.0
    images[1, 0, 0] = 255.0

    fed = _fed_to_backbone(model, images)
    expected = PREPROCESS[name](images.copy())
    np.testing.assert_allclose(fed, expected, atol=1e-5)

    low, high = backbone.input_range
    assert fed.min() >= low - 1e-5 and fed.max() <= high + 1e-5
    assert fed.min() == pytest.approx(low, abs=1e-5) and fed.max() == pytest.approx(high, abs=1e-5)
    if backbone.scaling == "raw":
        # The network rescales raw pixels itself: after its leading layers values are small.
        inner = _backbone_internal_scaling(backbone_of(model), images)
        assert np.abs(inner).max() < 3.0 and inner.max() - inner.min() > 1.0


def test_model_has_reference_head_and_frozen_backbone() -> None:
    model = build_model(get_backbone("mobilenetv2"), 7, SIZE, weights=None)
    names = [layer.name for layer in model.layers]
    assert names[-4:] == ["avg_pool", "head_bn", "head_dropout", "predictions"]
    assert model.get_layer("head_dropout").rate == pytest.approx(0.2)
    assert model.output_shape == (None, 7)
    assert not backbone_of(model).trainable
    assert all(not w.trainable for w in backbone_of(model).weights)
    assert len(model.trainable_weights) == 4  # BN gamma/beta and the Dense kernel/bias


def test_unfreeze_top_n_counts_backbone_layers_not_model_layers() -> None:
    model = build_model(get_backbone("mobilenetv2"), 3, SIZE, weights=None)
    base = backbone_of(model)
    unfreeze_model(model, 20)
    top = base.layers[-20:]
    assert all(layer.trainable for layer in top if not isinstance(layer, keras.layers.BatchNormalization))
    assert not any(layer.trainable for layer in base.layers[:-20])
    assert all(not layer.trainable for layer in batchnorm_layers(base))
    assert model.get_layer("head_bn").trainable  # the head's BatchNorm keeps learning
    assert model.get_layer("predictions").trainable
    assert any(layer.trainable and layer.weights for layer in top)


def test_unfreeze_rejects_bad_counts() -> None:
    model = build_model(get_backbone("mobilenetv2"), 3, SIZE, weights=None)
    with pytest.raises(BadInputError):
        unfreeze_model(model, 0)
    with pytest.raises(BadInputError):
        unfreeze_model(model, "some")


def _moving_stats(model: keras.Model) -> list[np.ndarray]:
    return [
        np.array(v) for layer in batchnorm_layers(model) for v in (layer.moving_mean, layer.moving_variance)
    ]


def _values(layer: keras.layers.Layer) -> list[np.ndarray]:
    return [np.array(w) for w in layer.weights]


def _images() -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, size=(16, SIZE, SIZE, 3)).astype("float32")


def _fit_a_little(model: keras.Model, lr: float = 1e-3) -> None:
    classes = model.output_shape[-1]
    x = _images()
    y = keras.utils.to_categorical(np.random.default_rng(2).integers(0, classes, 16), classes)
    compile_model(model, lr)
    # Eagerly: the same train_step as a compiled fit (training=True handed to every layer), without
    # tracing a graph of the whole backbone's gradients for four steps.
    model.run_eagerly = True
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)


def test_finetuning_keeps_backbone_batchnorm_and_trains_the_heads() -> None:
    """Catches fine-tuning that freezes the head's BatchNorm too (the reference recipe trains it)."""
    keras.utils.set_random_seed(0)
    model = build_model(get_backbone("mobilenetv2"), 3, SIZE, weights=None)
    calibrate_batchnorm(model, _images())  # features of a useful size, as with ImageNet weights
    _fit_a_little(model)  # head training (backbone frozen)
    base, head_bn = backbone_of(model), model.get_layer("head_bn")
    before, head_before = _moving_stats(base), _values(head_bn)
    unfreeze_model(model, "all")
    kernels = [w for w in base.trainable_weights if "kernel" in w.path]
    kernels_before = [np.array(w) for w in kernels]
    assert kernels  # something really is being fine-tuned
    _fit_a_little(model, lr=1e-2)
    after = _moving_stats(base)
    assert len(before) == 2 * len(batchnorm_layers(base)) > 0
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    # ...while the unfrozen convolution weights did move, and so did every weight of the head's
    # BatchNorm: gamma and beta (trained) and its moving statistics.
    assert any(not np.array_equal(np.array(w), b) for w, b in zip(kernels, kernels_before, strict=True))
    assert [w.path.rsplit("/", 1)[-1] for w in head_bn.weights][:2] == ["gamma", "beta"]
    for weight, b in zip(head_bn.weights, head_before, strict=True):
        assert not np.allclose(np.array(weight), b), weight.path


def test_naive_unfreezing_would_change_statistics() -> None:
    """Control for the test above: the check is sensitive, plain `trainable = True` moves the stats."""
    keras.utils.set_random_seed(0)
    model = build_model(get_backbone("mobilenetv2"), 3, SIZE, weights=None)
    before = _moving_stats(model)
    model.trainable = True
    _fit_a_little(model)
    after = _moving_stats(model)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_save_load_gives_identical_predictions(tmp_path) -> None:
    keras.utils.set_random_seed(0)
    model = build_model(get_backbone("mobilenetv3small"), 4, SIZE, weights=None)
    _fit_a_little(model)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    x = np.random.default_rng(2).uniform(0, 255, size=(5, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)


def test_unknown_backbone_and_missing_weights_file_are_clear(tmp_path) -> None:
    with pytest.raises(BadInputError, match="Unknown backbone"):
        get_backbone("vgg99")
    with pytest.raises(BadInputError, match="does not exist"):
        build_backbone(get_backbone("mobilenetv2"), SIZE, str(tmp_path / "missing.h5"))


def test_weights_file_round_trip(tmp_path) -> None:
    backbone = get_backbone("mobilenetv2")
    source = build_backbone(backbone, SIZE, None)
    path = tmp_path / "mobilenetv2_notop.weights.h5"
    source.save_weights(path)
    loaded = build_backbone(backbone, SIZE, str(path))
    for a, b in zip(source.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))


def test_imagenet_weights_offline_fail_fast_and_clearly(tmp_path, monkeypatch) -> None:
    import socket

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))

    def no_network(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", _get_file_in(tmp_path), raising=False)
    with pytest.raises(OfflineError) as info:
        build_backbone(get_backbone("mobilenetv2"), 96, "imagenet")
    message = str(info.value)
    assert "--weights none" in message and "weights file" in message and "\n" not in message


def _get_file_in(tmp_path):
    """keras get_file, but caching under tmp_path so a real cached file on this machine is not used."""
    original = keras.src.utils.file_utils.get_file

    def get_file(*args, **kwargs):
        kwargs["cache_dir"] = str(tmp_path / "cache")
        return original(*args, **kwargs)

    return get_file
