"""Reading images robustly: one decoder for training data, uploads and prediction.

Every image PetLab sees goes through `decode_image`, so a photo is treated the
same way whether it is a training example or an upload: EXIF orientation applied,
any colour mode converted to RGB (16-bit scaled to 8-bit), transparency composited
on white, the first frame of an animation taken. Anything else raises BadImageError
with one sentence naming the file by its base name, never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from core.errors import BadImageError

# Refuse images that would decode to more than this many pixels (decompression bombs).
MAX_PIXELS = 64_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")

ImageInput = bytes | str | os.PathLike[str]

# Only these Pillow decoders ever see a file (JPEG also covers MPO, the multi-picture JPEG
# cameras write). Fewer parsers of untrusted uploads, and no Ghostscript for EPS.
# AVIF only where this Pillow build has libavif (Pillow 11.2 and later).
_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
if "avif" in features.modules and features.check_module("avif"):
    _FORMATS += ("AVIF",)
# Starts of files in those formats: if Pillow cannot open one, the file is damaged, not foreign.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright RGB version of a PIL image, transparency composited on white."""
    image.load()
    # Broken EXIF must not make a good photo unreadable: it is then used as stored.
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        # Map the full 16-bit range onto 0-255 (65535 -> 255); Pillow's own conversion clips at 255.
        values = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        image = Image.fromarray(((values + 128) // 257).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB")


def decode_image(data: ImageInput, name: str | None = None) -> np.ndarray:
    """Decode an image file or its bytes to an upright HxWx3 uint8 RGB array."""
    name = _display_name(data, name)
    if isinstance(data, bytes):
        return _decode(io.BytesIO(data), name)
    try:
        with open(data, "rb") as stream:
            return _decode(stream, name)
    except FileNotFoundError:
        raise BadImageError(f"{name} does not exist; check the file name and try again.") from None
    except IsADirectoryError:
        raise BadImageError(f"{name} is a folder, not an image file; choose a photo inside it.") from None
    except OSError:
        raise BadImageError(f"{name} cannot be opened; check that the file is readable.") from None


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an HxWx3 uint8 image to size×size (stretched, as the reference does)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    pil = Image.fromarray(image)
    return np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def load_image(data: ImageInput, size: int, name: str | None = None) -> np.ndarray:
    """Decode and resize in one step: a size×size×3 uint8 array."""
    return resize_image(decode_image(data, name), size)


def _display_name(data: ImageInput, name: str | None) -> str:
    """The file's base name: messages never show a server path."""
    if name is None and not isinstance(data, bytes):
        name = os.fspath(data)
    base = re.split(r"[\\/]", (name or "").rstrip("\\/"))[-1]
    return base or ("The uploaded file" if isinstance(data, bytes) else "The file")


def _decode(stream: IO[bytes], name: str) -> np.ndarray:
    head = stream.read(1024)
    if not head:
        raise BadImageError(f"{name} is empty (0 bytes); choose a photo file.")
    stream.seek(0)
    with warnings.catch_warnings():
        # Pillow warns about oversized or odd files; PetLab reports them as BadImageError instead.
        warnings.simplefilter("ignore")
        try:
            with Image.open(stream, formats=_FORMATS) as image:
                # The header gives the size; check it before load() allocates any pixels.
                if image.width * image.height > MAX_PIXELS:
                    raise _too_large(name)
                image.load()
                return np.array(to_rgb(image), dtype=np.uint8)
        except BadImageError:
            raise
        except UnidentifiedImageError:
            raise _not_readable(head, name) from None
        except Image.DecompressionBombError:
            raise _too_large(name) from None
        except Exception as exc:  # Pillow raises many exception types on malformed files.
            raise _damaged(name) from exc


def _damaged(name: str) -> BadImageError:
    return BadImageError(f"{name} is damaged or truncated and cannot be read; try another copy of the photo.")


def _too_large(name: str) -> BadImageError:
    return BadImageError(
        f"{name} is larger than {MAX_PIXELS // 1_000_000} megapixels, more than PetLab reads; "
        "resize it and try again."
    )


def _not_readable(head: bytes, name: str) -> BadImageError:
    """Say what a file Pillow could not identify is: not an image, or an image format PetLab lacks."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")) and b"<svg" in text:
        return BadImageError(
            f"{name} is an SVG drawing, not a photo; export it as PNG or JPEG and try again."
        )
    if text.startswith((b"<!doctype html", b"<html")):
        return BadImageError(f"{name} is a web page (HTML), not an image; save the picture itself instead.")
    image_format = _other_image_format(head)
    if head.startswith(_SIGNATURES) or head[8:12] == b"WEBP" or image_format in _FORMATS:
        return _damaged(name)
    if image_format:
        return BadImageError(
            f"{name} is in the {image_format} format, which PetLab cannot read; "
            "convert it to JPEG or PNG and try again."
        )
    if not any(byte < 32 and byte not in b"\t\n\r\f" for byte in head):
        return BadImageError(f"{name} is a text file, not an image; choose a photo (JPEG, PNG or WebP).")
    return BadImageError(
        f"{name} is not an image file PetLab recognises; use a JPEG, PNG, WebP, GIF, BMP or TIFF photo."
    )


def _other_image_format(head: bytes) -> str | None:
    """Name image formats Pillow cannot read here, from their magic bytes."""
    if head[4:8] == b"ftyp":  # ISO media file: the brands say HEIC, AVIF or a video
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        brands = {head[i : i + 4] for i in range(8, box_end, 4)}
        if brands & {b"avif", b"avis"}:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIC"
    if head.startswith(b"\xff\x0a") or head[4:12] == b"JXL \r\n\x87\n":
        return "JPEG XL"
    if head.startswith(b"8BPS"):
        return "Photoshop (PSD)"
    return None
