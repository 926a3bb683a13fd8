"""Loading images safely: paths, bytes, PIL images or arrays in; RGB uint8 (H, W, 3) out."""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pixelground.core.errors import InputError

#: Default pixel-count limit against decompression bombs (about 16k x 11k).
MAX_PIXELS = 178_956_970
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

ImageSource = str | Path | bytes | Image.Image | np.ndarray


@dataclass
class LoadedImage:
    """Decoded RGB pixels and where they came from.

    Attributes:
        pixels: uint8 array of shape (H, W, 3).
        path: the file path, if the image came from a file.
    """

    pixels: np.ndarray
    path: str | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def load_image(source: ImageSource | LoadedImage, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Decode an image to RGB, applying its EXIF orientation.

    Args:
        source: a file path, encoded bytes, a PIL image, a (H, W), (H, W, 3) or (H, W, 4)
            uint8 array, or an already loaded image (returned as is).
        max_pixels: refuse images with more pixels than this (decompression bombs).

    Returns:
        LoadedImage with uint8 pixels of shape (H, W, 3).

    Raises:
        InputError: missing, unreadable, corrupt, truncated or oversized image.
    """
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, np.ndarray):
        return LoadedImage(_array_to_rgb(source, max_pixels))
    if isinstance(source, Image.Image):
        return LoadedImage(_pil_to_rgb(source, "the given PIL image", max_pixels))
    if isinstance(source, bytes | bytearray):
        if not source:
            raise InputError("the image data is empty (0 bytes)")
        return LoadedImage(_open(io.BytesIO(source), "the image bytes", max_pixels))
    path = Path(source)
    if not path.exists():
        raise InputError(f"image not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image file")
    if path.stat().st_size == 0:
        raise InputError(f"image file is empty (0 bytes): {path}")
    return LoadedImage(_open(path, str(path), max_pixels), path=str(path))


def _open(fp: io.BytesIO | Path, name: str, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # max_pixels is enforced by _check_size before decoding. PIL warns from
            # Image.MAX_IMAGE_PIXELS on (half our default limit): turning that warning into
            # an error would refuse images the caller's max_pixels allows.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp) as image:
                _check_size(image.width, image.height, name, max_pixels)
                return _pil_to_rgb(image, name, max_pixels)
    except InputError:  # our own size check; InputError is a ValueError, keep it as is
        raise
    except UnidentifiedImageError as error:
        raise InputError(
            f"{name} is not an image pixelground can read (corrupt or not an image)"
        ) from error
    except Image.DecompressionBombError as error:  # PIL's hard limit, 2 * MAX_IMAGE_PIXELS
        raise InputError(f"{name} is too large to decode safely: {error}") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(
            f"{name} could not be decoded (truncated or corrupt file): {error}"
        ) from error


def _pil_to_rgb(image: Image.Image, name: str, max_pixels: int) -> np.ndarray:
    _check_size(image.width, image.height, name, max_pixels)
    image.load()  # decode now, so truncation surfaces here
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16"):  # 16-bit grey: scale down, convert() would saturate
        return _array_to_rgb(np.asarray(image), max_pixels)
    if image.mode != "RGB":
        if image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        ):
            background = Image.new("RGB", image.size, (255, 255, 255))
            rgba = image.convert("RGBA")
            background.paste(rgba, mask=rgba.getchannel("A"))
            image = background
        else:
            image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)


def _array_to_rgb(array: np.ndarray, max_pixels: int) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InputError(
            f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}"
        )
    _check_size(array.shape[1], array.shape[0], "the image array", max_pixels)
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.uint16):  # 16-bit range 0..65535 -> 0..255
            array = np.rint(array / 257.0)
        elif np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.shape[2] == 4:  # composite on white, as for RGBA files and PIL images
        rgba = Image.fromarray(np.ascontiguousarray(array))  # (H, W, 4) uint8 -> RGBA
        return _pil_to_rgb(rgba, "the image array", max_pixels)
    return np.ascontiguousarray(array)


def _check_size(width: int, height: int, name: str, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"{name} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(
            f"{name} is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,}; resize it first or raise max_pixels"
        )


#: Images above this many pixels are decoded at a reduced working resolution by the CLI (the
#: models work at 1024 pixels or less); masks are scaled back to the original size as RLE.
WORK_PIXELS = 2048 * 2048
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def image_size(path: str | Path, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) of an image file as load_image returns it, read from the header only.

    Raises:
        InputError: missing, unreadable or oversized file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                orientation = image.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path} is not an image pixelground can read ({error})") from error
    _check_size(width, height, str(path), max_pixels)
    return (width, height) if orientation in _TRANSPOSED else (height, width)


def load_image_reduced(
    path: str | Path, work_pixels: int = WORK_PIXELS, max_pixels: int = MAX_PIXELS
) -> LoadedImage:
    """Decode an image at no more than about ``work_pixels`` pixels, cheaply where the
    format allows: JPEG decodes at 1/2, 1/4 or 1/8 scale (draft mode); other formats are
    decoded once and reduced by an integer factor (box filter) before anything else is made.

    Returns:
        LoadedImage of uint8 (h, w, 3) pixels at the reduced size (the path kept).
    """
    height, width = image_size(path, max_pixels)
    factor = max(1, math.ceil(math.sqrt(height * width / work_pixels)))
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if factor > 1 and image.format == "JPEG":
                image.draft("RGB", (max(1, image.width // factor), max(1, image.height // factor)))
            image.load()
            if image.mode not in ("RGB", "RGBA", "L", "LA", "I;16"):
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            rest = max(1, math.ceil(math.sqrt(image.width * image.height / work_pixels)))
            pixels = _pil_to_rgb(image.reduce(rest) if rest > 1 else image, str(path), max_pixels)
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(
            f"{path} could not be decoded (truncated or corrupt file): {error}"
        ) from error
    return LoadedImage(pixels, path=str(path))


def list_images(pattern: str | Path) -> list[Path]:
    """Image files named by a folder (its images, sorted), a glob pattern, or one file."""
    path = Path(pattern)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if any(ch in str(pattern) for ch in "*?["):
        anchor = Path(path.anchor) if path.is_absolute() else Path()
        relative = str(path.relative_to(anchor)) if path.is_absolute() else str(pattern)
        return sorted(p for p in anchor.glob(relative) if p.suffix.lower() in IMAGE_SUFFIXES)
    return [path]
