"""The backbone catalogue: names, labels, native image sizes and input ranges, without TensorFlow.

ResNet50V2 and MobileNetV2 want pixels scaled to [-1, 1] (what their `preprocess_input`
does), so PetLab puts a Rescaling layer in front of them; EfficientNetV2, ConvNeXt and
MobileNetV3 take raw 0-255 pixels and rescale inside the network. Either way the
finished model takes raw 0-255 RGB. `core.model.backbones` builds them with Keras.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import BadInputError


@dataclass(frozen=True)
class Backbone:
    """One entry of the backbone catalogue; `keras_name` is its class in `keras.applications`."""

    name: str
    label: str
    keras_name: str
    image_size: int
    scaling: str  # "minus_one_to_one": we rescale in front; "raw": the network rescales inside

    @property
    def input_range(self) -> tuple[float, float]:
        """The value range of the tensor the backbone's own layers receive."""
        return (-1.0, 1.0) if self.scaling == "minus_one_to_one" else (0.0, 255.0)


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("resnet50v2", "ResNet50V2", "ResNet50V2", 224, "minus_one_to_one"),
        Backbone("mobilenetv2", "MobileNetV2", "MobileNetV2", 224, "minus_one_to_one"),
        Backbone("mobilenetv3small", "MobileNetV3Small", "MobileNetV3Small", 224, "raw"),
        Backbone("mobilenetv3large", "MobileNetV3Large", "MobileNetV3Large", 224, "raw"),
        Backbone("efficientnetv2b0", "EfficientNetV2B0", "EfficientNetV2B0", 224, "raw"),
        Backbone("convnexttiny", "ConvNeXtTiny", "ConvNeXtTiny", 224, "raw"),
    )
}


def get_backbone(name: str) -> Backbone:
    """Look up a backbone by name (case-insensitive)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in BACKBONES:
        raise BadInputError(f"Unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}.")
    return BACKBONES[key]


def default_image_size(backbone: str, image_size: int | None = None) -> int:
    """The image size a run uses: the one asked for, else the backbone's native size."""
    return int(image_size or get_backbone(backbone).image_size)
