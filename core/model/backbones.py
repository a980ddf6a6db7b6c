"""Building the catalogue's backbones with `keras.applications`, and resolving their weights.

The catalogue itself (names, sizes, input ranges) is `core.catalog.backbones`, which
needs no TensorFlow; this module is where Keras comes in.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import keras

from core.catalog.backbones import Backbone
from core.errors import BadInputError, OfflineError

# Keras downloads ImageNet weights with urllib, which can hang on a network that
# drops packets; bound every socket operation while a backbone is built.
_DOWNLOAD_TIMEOUT_S = 10.0


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
            "or the path of a Keras weights file for the backbone without its top.",
            dashboard=f"Weights file {path.name} does not exist; choose ImageNet or random weights instead.",
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
        return getattr(keras.applications, backbone.keras_name)(**kwargs)
    except Exception as exc:
        text = str(exc)
        if resolved == "imagenet" and ("URL fetch failure" in text or "urlopen" in text.lower()):
            offline = (
                f"The ImageNet weights for {backbone.label} are not cached on this machine and cannot be "
                "downloaded (no network); connect and try again"
            )
            raise OfflineError(
                f"{offline}, pass --weights <a local weights file>, or --weights none to start from random "
                "weights.",
                dashboard=f"{offline}, or choose random weights in the sidebar.",
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
