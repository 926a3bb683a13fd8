"""8-bit PNG decoding for the evaluation readers, about 10x Pillow's speed per file.

A PNG's image data is inflated in one libdeflate call (imagecodecs) straight to the size its
rows must have, and the row filters (None, Sub, Up, Average, Paeth) are undone by a small C
extension (``_png_filters``, built at install), both outside the GIL so that a thread pool
decodes on every core. Only 8-bit, non-interlaced PNGs of a known colour type take this path:
:func:`decode_png` and :func:`decode_rgb_words` (RGB(A) pixels straight to 24-bit words, a
panoptic id map) return None for anything else, for damaged data, and when the extension
was not built (no C compiler at install); the callers then decode with Pillow, which also
gives the error message.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from pixelground.eval.datasets.thread_buffers import thread_buffer

try:  # built at install from _png_filters.c; optional (the readers fall back to Pillow)
    from pixelground.eval.datasets import _png_filters as png_filters
except ImportError:  # pragma: no cover - installs without a C compiler
    png_filters = None

try:  # libdeflate, several times zlib's inflate (the "eval" extra installs imagecodecs)
    from imagecodecs import DeflateError as _InflateError
    from imagecodecs import deflate_decode as _deflate_decode
except ImportError:  # pragma: no cover - without the extra, the standard library's zlib
    _deflate_decode = None
    _InflateError = zlib.error

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # bytes per 8-bit pixel, by colour type
#: Whether PNGs are decoded here (the C extension is built); otherwise callers use Pillow.
FAST_PNG = png_filters is not None


@dataclass(frozen=True)
class PngLayout:
    """An 8-bit, non-interlaced PNG's size, colour type and bytes per pixel (from IHDR)."""

    width: int
    height: int
    colour: int
    channels: int

    @classmethod
    def of(cls, header: bytes) -> PngLayout | None:
        """The layout of a 13-byte IHDR body; None unless 8-bit, non-interlaced, non-empty
        and of a known colour type."""
        if len(header) != 13:
            return None
        width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
        depth, colour, interlace = header[8], header[9], header[12]
        channels = _PNG_CHANNELS.get(colour)
        if depth != 8 or channels is None or interlace != 0 or not width or not height:
            return None
        return cls(width, height, colour, channels)

    @property
    def row_bytes(self) -> int:
        """Bytes of one unfiltered row: width x channels."""
        return self.width * self.channels

    @property
    def shape(self) -> tuple[int, ...]:
        """The pixels' shape: (H, W) for one channel, else (H, W, channels)."""
        if self.channels == 1:
            return (self.height, self.width)
        return (self.height, self.width, self.channels)


@dataclass(frozen=True)
class DecodedPng:
    """A decoded PNG: its layout and its (H, W) or (H, W, channels) uint8 pixels."""

    layout: PngLayout
    pixels: np.ndarray


def _chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    """(IHDR body, IDAT bodies) of PNG bytes, up to IEND or the end of the data."""
    position, header, idat = 8, b"", []
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind == b"IHDR":
            header = data[position + 8 : position + 8 + length]
        elif kind == b"IDAT":
            idat.append(data[position + 8 : position + 8 + length])
        elif kind == b"IEND":
            break
        position += 12 + length
    return header, idat


def _inflate(compressed: bytes, size: int, role: str) -> np.ndarray | None:
    """The zlib stream inflated into this thread's buffer for ``role``, or None unless it
    holds exactly ``size`` bytes."""
    try:
        if _deflate_decode is None:  # pragma: no cover - without imagecodecs
            raw = np.frombuffer(zlib.decompress(compressed), dtype=np.uint8)
        else:  # fails when the stream holds more than size bytes
            raw = np.asarray(_deflate_decode(compressed, out=thread_buffer(role, size)))
    except (_InflateError, zlib.error, ValueError):
        return None
    return raw if raw.size == size else None


def inflate_png(data: bytes, role: str = "rows") -> tuple[PngLayout, np.ndarray] | None:
    """(layout, its filtered rows: height x (1 + row_bytes) bytes) of PNG bytes, the rows in
    this thread's buffer for ``role`` (valid until the thread's next call for it); None unless
    the C extension is built and the file is an 8-bit, non-interlaced PNG whose data inflates
    to exactly its rows."""
    if png_filters is None or not data.startswith(PNG_SIGNATURE):
        return None
    header, idat = _chunks(data)
    layout = PngLayout.of(header)
    if layout is None or not idat:
        return None
    rows = _inflate(b"".join(idat), layout.height * (layout.row_bytes + 1), role)
    return None if rows is None else (layout, rows)


def decode_png(data: bytes) -> DecodedPng | None:
    """Decode PNG bytes: the image data inflated in one call, the row filters undone in C.

    Returns:
        The layout and the pixels (a new array); None unless the C extension is built and the
        file is an 8-bit, non-interlaced PNG whose data inflates to exactly its rows with
        known filter types.
    """
    inflated = inflate_png(data)
    if inflated is None:
        return None
    layout, rows = inflated
    pixels = np.empty(layout.shape, np.uint8)
    try:
        png_filters.unfilter(rows, pixels, layout.height, layout.row_bytes, layout.channels)
    except ValueError:  # a row with an unknown filter type
        return None
    return DecodedPng(layout, pixels)


def decode_rgb_words(data: bytes, reuse: str | None = None) -> np.ndarray | None:
    """(H, W) uint32 ``R + 256 G + 65536 B`` of an 8-bit RGB or RGBA PNG (alpha dropped):
    a COCO panoptic id map, with no RGB image in between (rows are unfiltered in C into two
    alternating row buffers and written out as words).

    Args:
        data: The file's bytes.
        reuse: A :func:`thread_buffer` role to write the words into (valid until this
            thread's next call for it); None for a new array.

    Returns:
        The words; None for any other PNG (colour type, depth, interlacing), damaged data,
        or when the C extension is not built.
    """
    inflated = inflate_png(data)
    if inflated is None or inflated[0].colour not in (2, 6):  # RGB, RGBA
        return None
    layout, rows = inflated
    shape = (layout.height, layout.width)
    if reuse is None:
        words = np.empty(shape, np.uint32)
    else:
        words = thread_buffer(reuse, 4 * shape[0] * shape[1]).view(np.uint32).reshape(shape)
    try:
        png_filters.unfilter_words(rows, words, layout.height, layout.row_bytes, layout.channels)
    except ValueError:  # a row with an unknown filter type
        return None
    return words
