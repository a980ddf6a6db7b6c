"""Reading images robustly: one decoder for training data, uploads and prediction.

Every image PetLab sees goes through `decode_image`, so a photo is treated the
same way whether it is a training example or an upload: EXIF orientation applied,
any colour mode converted to RGB, transparency composited on white, the first
frame of an animation taken. Anything that is not an image raises BadImageError
with one sentence, never a traceback.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import BadImageError

# Refuse images that would decode to more than this many pixels (decompression bombs).
MAX_PIXELS = 64_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")

ImageInput = bytes | str | os.PathLike[str]


def _open(data: ImageInput, name: str) -> Image.Image:
    stream = io.BytesIO(data) if isinstance(data, bytes) else open(data, "rb")  # noqa: SIM115
    try:
        image = Image.open(stream)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise BadImageError(
                f"{name} declares {width}×{height} pixels, more than PetLab reads; "
                "resize it below 64 megapixels and try again."
            )
        image.load()
    except BadImageError:
        stream.close()
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        stream.close()
        raise BadImageError(f"{name} is not an image PetLab can read; use a JPEG, PNG or WebP photo.") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        stream.close()
        raise BadImageError(f"{name} is damaged or truncated and cannot be read; try another copy of the photo.") from exc
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright RGB version of a PIL image, transparency composited on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / max(top, 255.0))).astype(np.uint8))
    return image.convert("RGB")


def decode_image(data: ImageInput, name: str | None = None) -> np.ndarray:
    """Decode an image file or its bytes to an upright HxWx3 uint8 RGB array."""
    if name is None:
        name = "the uploaded file" if isinstance(data, bytes) else Path(data).name
    if isinstance(data, bytes) and not data:
        raise BadImageError(f"{name} is empty (0 bytes); choose a photo file.")
    try:
        image = _open(data, name)
    except FileNotFoundError:
        raise BadImageError(f"{name} does not exist; check the path.") from None
    try:
        return np.asarray(to_rgb(image), dtype=np.uint8)
    finally:
        image.close()


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an HxWx3 uint8 image to size×size (stretched, as the reference does)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    pil = Image.fromarray(image)
    return np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def load_image(data: ImageInput, size: int, name: str | None = None) -> np.ndarray:
    """Decode and resize in one step: a size×size×3 uint8 array."""
    return resize_image(decode_image(data, name), size)
