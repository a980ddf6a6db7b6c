"""The backbones PetLab can put under a classification head.

Each entry knows its Keras constructor, the image size it was trained at, and the
input range it expects. ResNet50V2 and MobileNetV2 want pixels scaled to [-1, 1]
(what `preprocess_input` does for them), so PetLab puts a Rescaling layer in
front of them; EfficientNetV2, ConvNeXt and MobileNetV3 take raw 0-255 pixels and
rescale inside the network. Either way the finished model takes raw 0-255 RGB,
so prediction and export need no separate preprocessing step.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras

from core.errors import BadInputError, OfflineError


@dataclass(frozen=True)
class Backbone:
    """One entry of the backbone registry."""

    name: str
    label: str
    constructor: Callable[..., keras.Model]
    image_size: int
    scaling: str  # "minus_one_to_one": we rescale in front; "raw": the network rescales inside

    @property
    def input_range(self) -> tuple[float, float]:
        """The value range of the tensor the backbone's own layers receive."""
        return (-1.0, 1.0) if self.scaling == "minus_one_to_one" else (0.0, 255.0)


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("resnet50v2", "ResNet50V2", keras.applications.ResNet50V2, 224, "minus_one_to_one"),
        Backbone("mobilenetv2", "MobileNetV2", keras.applications.MobileNetV2, 224, "minus_one_to_one"),
        Backbone("mobilenetv3small", "MobileNetV3Small", keras.applications.MobileNetV3Small, 224, "raw"),
        Backbone("mobilenetv3large", "MobileNetV3Large", keras.applications.MobileNetV3Large, 224, "raw"),
        Backbone("efficientnetv2b0", "EfficientNetV2B0", keras.applications.EfficientNetV2B0, 224, "raw"),
        Backbone("convnexttiny", "ConvNeXtTiny", keras.applications.ConvNeXtTiny, 224, "raw"),
    )
}

# Keras downloads ImageNet weights with urllib, which can hang on a network that
# drops packets; bound every socket operation while a backbone is built.
_DOWNLOAD_TIMEOUT_S = 10.0


def get_backbone(name: str) -> Backbone:
    """Look up a backbone by name (case-insensitive)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in BACKBONES:
        raise BadInputError(f"Unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}.")
    return BACKBONES[key]


def resolve_weights(weights: str | None) -> str | None:
    """Map the user's weights choice to what keras.applications accepts."""
    if weights is None or weights.lower() in ("none", "random", ""):
        return None
    if weights.lower() == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise BadInputError(
            f"Weights file {path.name} does not exist; pass --weights imagenet, --weights none, "
            "or the path of a Keras weights file for the backbone without its top."
        )
    return str(path.resolve())


def build_backbone(backbone: Backbone, image_size: int, weights: str | None) -> keras.Model:
    """Build the backbone without its classification top, for `image_size` inputs."""
    resolved = resolve_weights(weights)
    kwargs: dict = {"include_top": False, "weights": resolved, "input_shape": (image_size, image_size, 3)}
    if backbone.scaling == "raw":
        kwargs["include_preprocessing"] = True
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        return backbone.constructor(**kwargs)
    except Exception as exc:
        text = str(exc)
        if resolved == "imagenet" and ("URL fetch failure" in text or "urlopen" in text.lower()):
            raise OfflineError(
                f"The ImageNet weights for {backbone.label} are not cached on this machine and cannot be "
                "downloaded (no network); connect and try again, pass --weights <a local weights file>, "
                "or --weights none to start from random weights."
            ) from None
        if resolved not in (None, "imagenet"):
            raise BadInputError(
                f"The weights file {os.path.basename(resolved)} does not fit {backbone.label} without its "
                f"top at {image_size} px ({text.splitlines()[0][:160]}); use a file saved from the same "
                "backbone with include_top=False."
            ) from None
        if "input_shape" in text or "Input size" in text or "input size" in text:
            raise BadInputError(
                f"{backbone.label} cannot take {image_size} px images with these weights "
                f"({text.splitlines()[0][:160]}); choose another image size."
            ) from None
        raise
    finally:
        socket.setdefaulttimeout(previous_timeout)
