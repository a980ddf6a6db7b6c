"""core.images: every case is generated here with Pillow and numpy, no outside files."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from core.data import images as images
from core.data.images import IMAGE_EXTENSIONS, MAX_PIXELS, decode_image, load_image, resize_image, to_rgb
from core.errors import BadImageError

# No warning (DecompressionBombWarning included) may escape from the decoder.
pytestmark = pytest.mark.filterwarnings("error")

RED, WHITE = (255, 0, 0), (255, 255, 255)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png(width: int, height: int, bit_depth: int, color_type: int, rows: list[bytes]) -> bytes:
    """A PNG written by hand, for layouts Pillow cannot save (48-bit RGB, lying headers)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rows))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def refusal(data: bytes | Path, name: str | None = None) -> str:
    with pytest.raises(BadImageError) as caught:
        decode_image(data, name)
    message = str(caught.value)
    assert "\n" not in message and message.endswith(".") and ". " not in message
    assert os.sep not in message and "Traceback" not in message
    return message


def photo(width: int = 40, height: int = 20) -> Image.Image:
    """White RGB image with a red block in its top-left corner: its orientation is visible."""
    image = Image.new("RGB", (width, height), WHITE)
    image.paste(RED, (0, 0, width // 4, height // 4))
    return image


def near(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(colour)) <= tolerance))


# -- not an image, or not one PetLab reads ---------------------------------------------------


def test_zero_bytes() -> None:
    assert "empty" in refusal(b"", "cat.jpg")


def test_empty_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "cat.jpg"
    path.write_bytes(b"")
    message = refusal(path)
    assert message.startswith("cat.jpg ") and "empty" in message and str(tmp_path) not in message


def test_text_renamed_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("Shopping list: cat food, litter.\n")
    message = refusal(path)
    assert message.startswith("notes.jpg is a text file")


def test_html_renamed_jpg() -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>Cute cat</title></head><body></body></html>"
    assert "web page" in refusal(page, "cat.jpg")


def test_binary_garbage() -> None:
    garbage = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert "not an image file PetLab recognises" in refusal(garbage, "cat.jpg")


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><rect width="9" height="9"/></svg>',
        b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>',
    ],
)
def test_svg_refused(svg: bytes) -> None:
    message = refusal(svg, "logo.svg")
    assert message.startswith("logo.svg is an SVG drawing, not a photo")


@pytest.mark.parametrize(
    ("head", "label"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heicmiaf", "HEIC"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
        (b"8BPS\x00\x01\x00\x00\x00\x00\x00\x00", "Photoshop (PSD)"),
    ],
)
def test_image_format_petlab_cannot_read(head: bytes, label: str) -> None:
    message = refusal(head + bytes(200), "IMG_0001.HEIC")
    assert f"in the {label} format, which PetLab cannot read" in message


def test_avif_named_when_pillow_cannot_read_it(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(photo(), "AVIF") if features.check("avif") else b"\x00\x00\x00\x1cftypavif" + bytes(200)
    monkeypatch.setattr(images, "_FORMATS", tuple(f for f in images._FORMATS if f != "AVIF"))
    assert "in the AVIF format, which PetLab cannot read" in refusal(data, "cat.avif")


def test_other_pillow_formats_not_decoded() -> None:
    # ICO is a format Pillow knows, but not one of PetLab's: it must not reach a decoder.
    assert "PetLab recognises" in refusal(encode(photo(), "ICO"), "favicon.ico")


# -- damaged files and decompression bombs ---------------------------------------------------


def test_truncated_jpeg_refused() -> None:
    noise = Image.effect_noise((128, 128), 60).convert("RGB")
    data = encode(noise, "JPEG")
    message = refusal(data[: len(data) // 2], "cat.jpg")
    assert "damaged or truncated" in message
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png_refused() -> None:
    data = encode(Image.effect_noise((128, 128), 60), "PNG")
    assert "damaged or truncated" in refusal(data[: len(data) // 2], "cat.png")


def test_jpeg_header_only_refused() -> None:
    assert "damaged or truncated" in refusal(encode(photo(), "JPEG")[:200], "cat.jpg")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "TIFF", "WEBP", "BMP", "AVIF"])
@pytest.mark.parametrize("keep", [40, 0.5])
def test_truncated_files_called_damaged_not_foreign(fmt: str, keep: float) -> None:
    if fmt not in images._FORMATS:
        pytest.skip(f"this Pillow cannot read {fmt}")
    data = encode(Image.effect_noise((64, 64), 60).convert("RGB"), fmt)
    cut = data[: int(keep if keep > 1 else len(data) * keep)]
    assert "damaged or truncated" in refusal(cut, f"cat.{fmt.lower()}")


@pytest.mark.parametrize(
    "side",
    [
        (9_000, 8_000),  # above MAX_PIXELS, below Pillow's own warning
        (10_000, 10_000),  # Pillow would warn (DecompressionBombWarning)
        (100_000, 100_000),  # Pillow raises DecompressionBombError
    ],
)
def test_decompression_bomb_refused_before_decoding(
    side: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    width, height = side
    assert width * height > MAX_PIXELS
    bomb = png(width, height, 1, 0, [b""])  # a few dozen bytes declaring a huge image
    loads: list[object] = []
    original_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self) or original_load(self))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        message = refusal(bomb, "bomb.png")
    assert "megapixels" in message and "resize it" in message
    assert loads == []  # refused from the header: no pixel buffer was ever allocated
    assert caught == []


# -- colour modes ----------------------------------------------------------------------------


def test_rgba_composited_on_white() -> None:
    image = Image.new("RGBA", (4, 2), (255, 0, 0, 255))
    image.putpixel((3, 1), (0, 0, 255, 0))  # fully transparent blue
    image.putpixel((2, 1), (0, 0, 0, 128))  # half-transparent black
    array = decode_image(encode(image, "PNG"), "a.png")
    assert array.shape == (2, 4, 3) and array.dtype == np.uint8
    assert tuple(array[0, 0]) == RED
    assert tuple(array[1, 3]) == WHITE
    assert near(array[1, 2], (127, 127, 127), 2)


def test_grayscale() -> None:
    array = decode_image(encode(Image.new("L", (3, 3), 90), "PNG"))
    assert array.shape == (3, 3, 3) and np.all(array == 90)


def test_grayscale_alpha() -> None:
    image = Image.new("LA", (2, 1), (90, 255))
    image.putpixel((1, 0), (0, 0))
    array = decode_image(encode(image, "PNG"))
    assert tuple(array[0, 0]) == (90, 90, 90) and tuple(array[0, 1]) == WHITE


@pytest.mark.parametrize("transparent", [False, True])
def test_palette(transparent: bool) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 0), 1)
    options = {"transparency": 1} if transparent else {}
    array = decode_image(encode(image, "PNG", **options))
    assert tuple(array[0, 0]) == RED
    assert tuple(array[0, 1]) == (WHITE if transparent else (0, 0, 255))


def test_cmyk_jpeg() -> None:
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG")
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    array = decode_image(data)
    assert array.shape == (16, 16, 3) and near(array[8, 8], RED)


def test_sixteen_bit_png_scaled_to_eight_bits() -> None:
    values = np.array([[0, 257, 32768, 65535], [1000, 65280, 128, 129]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    array = decode_image(data)
    # Linear map of 0..65535 onto 0..255 (v / 257, rounded), not clipped at 255, not stretched to the maximum.
    expected = np.array([[0, 1, 128, 255], [4, 254, 0, 1]], dtype=np.uint8)
    assert np.array_equal(array[..., 0], expected)
    assert np.array_equal(array[..., 0], array[..., 2])


def test_dark_sixteen_bit_image_stays_dark() -> None:
    data = encode(Image.fromarray(np.full((2, 2), 2570, dtype=np.uint16)), "PNG")
    assert np.all(decode_image(data) == 10)


def test_sixteen_bit_tiff_and_32_bit_integer_tiff() -> None:
    values = np.array([[0, 65535]], dtype=np.uint16)
    for source in (Image.fromarray(values), Image.fromarray(values.astype(np.int32))):
        assert source.mode in ("I;16", "I")
        assert decode_image(encode(source, "TIFF"))[0, :, 0].tolist() == [0, 255]


def test_48_bit_rgb_png() -> None:
    row = struct.pack(">6H", 65535, 32768, 0, 0, 0, 65535)
    array = decode_image(png(2, 1, 16, 2, [row]))
    assert tuple(array[0, 0]) == (255, 128, 0) and tuple(array[0, 1]) == (0, 0, 255)


def test_one_bit() -> None:
    image = Image.new("1", (2, 1), 0)
    image.putpixel((1, 0), 1)
    array = decode_image(encode(image, "PNG"))
    assert tuple(array[0, 0]) == (0, 0, 0) and tuple(array[0, 1]) == WHITE


def test_to_rgb_on_pil_image() -> None:
    result = to_rgb(Image.new("LA", (2, 2), (0, 0)))
    assert result.mode == "RGB" and result.getpixel((0, 0)) == WHITE


# -- EXIF orientation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "shape", "corner"),
    [
        # EXIF spec: where the stored top-left pixel appears once the photo is shown upright.
        (1, (20, 40), "top-left"),
        (3, (20, 40), "bottom-right"),  # 0th row is the visual bottom, 0th column the visual right
        (6, (40, 20), "top-right"),  # 0th row is the visual right, 0th column the visual top
        (8, (40, 20), "bottom-left"),  # 0th row is the visual left, 0th column the visual bottom
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation(orientation: int, shape: tuple[int, int], corner: str, fmt: str) -> None:
    stored = photo(40, 20)  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    array = decode_image(encode(stored, fmt, exif=exif.tobytes()))
    assert array.shape == (*shape, 3)
    height, width = shape
    corners = {
        "top-left": array[2, 2],
        "top-right": array[2, width - 3],
        "bottom-left": array[height - 3, 2],
        "bottom-right": array[height - 3, width - 3],
    }
    for name, pixel in corners.items():
        assert near(pixel, RED if name == corner else WHITE), (name, pixel)


def test_corrupt_exif_is_ignored_quietly() -> None:
    data = encode(photo(), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff garbage")
    array = decode_image(data)  # Pillow warns "Corrupt EXIF data"; the warning must not escape
    assert array.shape == (20, 40, 3) and near(array[2, 2], RED)


def test_unreadable_exif_keeps_the_photo_as_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(image: Image.Image) -> Image.Image:
        raise SyntaxError("bad EXIF")

    monkeypatch.setattr(images.ImageOps, "exif_transpose", broken)
    array = decode_image(encode(photo(), "PNG"))
    assert array.shape == (20, 40, 3) and tuple(array[0, 0]) == RED


# -- other formats and shapes ----------------------------------------------------------------


def test_animated_gif_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    array = decode_image(data)
    assert array.shape == (8, 8, 3) and np.all(array == RED)


def test_gif_transparency_on_white() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    array = decode_image(encode(image, "GIF", transparency=1))
    assert tuple(array[0, 0]) == RED and tuple(array[0, 1]) == WHITE


def test_multi_picture_jpeg_first_picture() -> None:
    second = Image.new("RGB", (64, 32), (0, 0, 255))
    array = decode_image(encode(photo(64, 32), "MPO", save_all=True, append_images=[second]))
    assert array.shape == (32, 64, 3) and near(array[4, 8], RED) and near(array[28, 60], WHITE)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("WEBP", {"lossless": True}), ("BMP", {}), ("TIFF", {}), ("PNG", {}), ("GIF", {})],
)
def test_lossless_formats_exact(fmt: str, options: dict[str, object]) -> None:
    image = photo()
    array = decode_image(encode(image, fmt, **options))
    assert np.array_equal(array, np.asarray(image))


def test_lossy_webp_and_jpeg() -> None:
    for fmt in ("WEBP", "JPEG"):
        array = decode_image(encode(photo(), fmt))
        assert array.shape == (20, 40, 3) and near(array[1, 1], RED) and near(array[18, 38], WHITE)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF support")
def test_avif() -> None:
    array = decode_image(encode(photo(), "AVIF", quality=90))
    assert array.shape == (20, 40, 3) and near(array[1, 1], RED, 60) and near(array[18, 38], WHITE)


def test_one_pixel() -> None:
    array = decode_image(encode(Image.new("RGB", (1, 1), RED), "PNG"))
    assert array.shape == (1, 1, 3) and tuple(array[0, 0]) == RED
    assert load_image(encode(Image.new("RGB", (1, 1), RED), "PNG"), 8).shape == (8, 8, 3)


@pytest.mark.parametrize("size", [(10_000, 2), (2, 10_000)])
def test_extremely_wide_and_tall(size: tuple[int, int]) -> None:
    data = encode(Image.new("RGB", size, RED), "PNG")
    array = decode_image(data)
    assert array.shape == (size[1], size[0], 3)
    resized = resize_image(array, 224)
    assert resized.shape == (224, 224, 3) and resized.dtype == np.uint8 and np.all(resized == RED)
    assert load_image(data, 64).shape == (64, 64, 3)


def test_result_is_a_writable_array() -> None:
    array = decode_image(encode(photo(), "PNG"))
    array[0, 0] = 0  # callers may augment in place


# -- paths and names -------------------------------------------------------------------------


def test_path_str_and_pathlike(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(encode(photo(), "PNG"))
    assert np.array_equal(decode_image(path), decode_image(str(path)))
    assert decode_image(path).shape == (20, 40, 3)


def test_missing_path(tmp_path: Path) -> None:
    message = refusal(tmp_path / "gone.jpg")
    assert message.startswith("gone.jpg does not exist") and str(tmp_path) not in message


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    message = refusal(folder)
    assert message.startswith("photos is a folder") and str(tmp_path) not in message


def test_name_is_reduced_to_base_name(tmp_path: Path) -> None:
    full = str(tmp_path / "uploads" / "cat.jpg")
    assert refusal(b"not an image", full).startswith("cat.jpg ")
    assert refusal(b"not an image", "C:\\Users\\me\\cat.jpg").startswith("cat.jpg ")
    assert refusal(b"not an image").startswith("The uploaded file ")


def test_damaged_file_on_disk_names_base_name_only(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "cat.jpg"
    path.parent.mkdir(parents=True)
    data = encode(Image.effect_noise((64, 64), 60).convert("RGB"), "JPEG")
    path.write_bytes(data[: len(data) // 2])
    message = refusal(path)
    assert message.startswith("cat.jpg is damaged") and str(tmp_path) not in message


def test_image_extensions_all_decode() -> None:
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".bmp": "BMP"}
    formats |= {".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
    assert set(IMAGE_EXTENSIONS) == set(formats)
    for extension, fmt in formats.items():
        assert decode_image(encode(photo(), fmt), f"cat{extension}").shape == (20, 40, 3)
