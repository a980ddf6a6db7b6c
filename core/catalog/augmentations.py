"""Augmentation specs: what a person may type, parsed and checked without TensorFlow.

A spec is a short string a person can type and the dashboard can build:
`flip` (the reference), `none`, or comma-separated layers with parameters such as
`flip=horizontal,rotation=0.1,zoom=0.15,contrast=0.2,brightness=0.2,translation=0.1`.
Each name maps to a Keras preprocessing layer. The pipeline applies the result to
training batches after the decoded-image cache, so augmented images are never
cached and validation/test images are never augmented.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import BadInputError


@dataclass(frozen=True)
class AugmentationKind:
    """One augmentation a spec may name."""

    name: str
    help: str
    default: float | str
    minimum: float = 0.0
    maximum: float = 1.0


AUGMENTATIONS: dict[str, AugmentationKind] = {
    a.name: a
    for a in (
        AugmentationKind("flip", "mirror: horizontal, vertical or horizontal_and_vertical", "horizontal"),
        AugmentationKind("rotation", "max rotation, as a fraction of a full turn", 0.1, 0.0, 0.5),
        AugmentationKind("translation", "max shift, as a fraction of width and height", 0.1, 0.0, 0.5),
        AugmentationKind("zoom", "max zoom in or out, as a fraction", 0.1, 0.0, 0.9),
        AugmentationKind("contrast", "max contrast change, as a fraction", 0.2, 0.0, 1.0),
        AugmentationKind("brightness", "max brightness change, as a fraction of the range", 0.2, 0.0, 1.0),
    )
}
FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def parse_spec(spec: str | None) -> dict[str, float | str]:
    """Parse a spec string into {name: parameter}, in the order given."""
    spec = (spec or "none").strip()
    if spec.lower() in ("none", ""):
        return {}
    parsed: dict[str, float | str] = {}
    for part in spec.split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if name not in AUGMENTATIONS:
            raise BadInputError(
                f"Unknown augmentation {name!r} in {spec!r}; use none or any of: {', '.join(AUGMENTATIONS)}."
            )
        kind = AUGMENTATIONS[name]
        parsed[name] = _parse_value(kind, value.strip(), spec)
    return parsed


def _parse_value(kind: AugmentationKind, value: str, spec: str) -> float | str:
    if not value:
        return kind.default
    if kind.name == "flip":
        if value not in FLIP_MODES:
            raise BadInputError(f"flip takes one of {', '.join(FLIP_MODES)}, not {value!r}.")
        return value
    try:
        number = float(value)
    except ValueError:
        raise BadInputError(f"{kind.name} needs a number in {spec!r}, not {value!r}.") from None
    if not kind.minimum <= number <= kind.maximum:
        raise BadInputError(f"{kind.name} must be between {kind.minimum} and {kind.maximum}, not {number}.")
    return number


def format_spec(parsed: dict[str, float | str]) -> str:
    """The canonical spec string for a parsed spec ("none" when empty)."""
    if not parsed:
        return "none"
    parts = []
    for name, value in parsed.items():
        parts.append(name if value == AUGMENTATIONS[name].default else f"{name}={value}")
    return ",".join(parts)


def is_flip_only(spec: str | None) -> bool:
    """True for the reference augmentation: a horizontal flip and nothing else."""
    return parse_spec(spec) == {"flip": "horizontal"}
