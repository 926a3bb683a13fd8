"""Reading mask PNGs fast: one decode per file, no whole-frame passes that are not needed,
decoding in a thread pool (Pillow's PNG decoder releases the GIL), frames handed on in order
as they are decoded so that a scorer can consume a video chunk by chunk in bounded memory.

Mask PNGs (8-bit grayscale or palette) are decoded here with ISA-L's inflate
(:func:`fast_png`): inflate is most of the cost of such a file, and ISA-L's is several times
zlib's. Rows filtered with None, Sub or Up (how palette label PNGs are written) are then
undone with numpy; rows with Average or Paeth filters (Pillow writes 0/255 grayscale masks
with Paeth rows among the others) by Pillow's PNG row decoder, handed the inflated rows as
stored (uncompressed) deflate blocks so that nothing is inflated twice. Anything else goes to
Pillow. What a frame holds is found with single SIMD passes (``max``; ``(a - 1) < 254`` for "is this
grayscale frame binary", DAVIS-2016: values 0 and 255 only) rather than with ``np.isin``,
``np.unique`` or a histogram over the pixels.
"""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from pixelground.core.errors import InputError

try:  # ISA-L's inflate, several times zlib's speed on mask PNGs (the "eval" extra installs it)
    from isal.isal_zlib import adler32 as _adler32
    from isal.isal_zlib import decompress as _inflate
    from isal.isal_zlib import error as _inflate_error
except ImportError:  # pragma: no cover - without the extra, the standard library's zlib
    from zlib import adler32 as _adler32
    from zlib import decompress as _inflate
    from zlib import error as _inflate_error

VOID_LABEL = 255
KINDS = ("auto", "davis2016", "davis2017")
#: Workers by default: PNG decoding threads, or (VOS folders on Linux) scoring processes.
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)

T = TypeVar("T")


@dataclass
class LabelFrame:
    """One decoded label PNG.

    Attributes:
        labels: (H, W) unsigned object ids, 0 = background; void pixels keep ``void_label``
            (use :meth:`void` and :meth:`cleared`), DAVIS-2016 frames are 0/1.
        max_id: the largest object id present (0: none; the void label is not an id).
        void_label: the value marking void pixels, or None (results: every value is an id).
        has_void: whether any pixel is void.
    """

    labels: np.ndarray
    max_id: int
    void_label: int | None
    has_void: bool

    def void(self) -> np.ndarray:
        """(H, W) bool void pixels."""
        if not self.has_void:
            return np.zeros(self.labels.shape, dtype=bool)
        return self.labels == self.void_label

    def cleared(self) -> np.ndarray:
        """(H, W) labels with void pixels set to 0."""
        if not self.has_void:
            return self.labels
        return np.where(self.labels == self.void_label, 0, self.labels).astype(self.labels.dtype)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = {0: "L", 3: "P"}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # bytes per 8-bit pixel, by colour type


_STORED_BLOCK = 65535  # the largest stored deflate block


def stored_zlib(raw: bytes) -> bytes:
    """``raw`` as a zlib stream of stored (uncompressed) deflate blocks: what
    ``zlib.compress(raw, 0)`` gives, with ISA-L's Adler-32 and no compressor pass."""
    view, parts = memoryview(raw), [b"\x78\x01"]
    for start in range(0, max(len(raw), 1), _STORED_BLOCK):
        block = view[start : start + _STORED_BLOCK]
        final = start + _STORED_BLOCK >= len(raw)
        parts.append(struct.pack("<BHH", final, len(block), 0xFFFF ^ len(block)))
        parts.append(block)
    parts.append(struct.pack(">I", _adler32(raw) & 0xFFFFFFFF))
    return b"".join(parts)


def _unfilter(rows: np.ndarray) -> np.ndarray | None:
    """Undo PNG filters of (H, 1 + W) one-byte-per-pixel rows; None when a row uses Average
    or Paeth (their per-pixel recurrence is left to Pillow's row decoder)."""
    kinds, data = rows[:, 0], rows[:, 1:]
    if not kinds.any():
        return data
    if (kinds > 2).any():
        return None
    out = data.copy()
    for row in np.flatnonzero(kinds):
        if kinds[row] == 1:  # Sub: running sum along the row, modulo 256
            np.cumsum(out[row], dtype=np.uint8, out=out[row])
        elif row:  # Up: add the reconstructed row above (row 0 has none: unchanged)
            out[row] += out[row - 1]
    return out


def pillow_rows(raw: bytes, mode: str, rawmode: str, size: tuple[int, int]) -> np.ndarray | None:
    """Pixels of inflated PNG rows (``rawmode`` pixels, any filter), unfiltered by Pillow's PNG
    ("zip") row decoder fed them as stored blocks, as a ``mode`` image; None if Pillow rejects
    them (a bad filter type)."""
    try:
        image = Image.frombytes(mode, size, stored_zlib(raw), "zip", rawmode)
    except (OSError, ValueError):
        return None
    return np.asarray(image)


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

    @classmethod
    def of_file(cls, data: bytes) -> PngLayout | None:
        """The layout of PNG file bytes (IHDR is the first chunk); None for anything else."""
        if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
            return None
        return cls.of(data[16:29])


@dataclass(frozen=True)
class InflatedPng:
    """An 8-bit, non-interlaced PNG's header fields and its inflated (still filtered) rows."""

    width: int
    height: int
    colour: int
    raw: bytes


def inflate_png(path: Path) -> InflatedPng | None:
    """Walk a PNG's chunks and inflate its image data in one ISA-L call (``isal``; zlib
    without it). None unless the file is an 8-bit, non-interlaced PNG whose data inflates to
    exactly its rows (the caller then decodes with Pillow, which also gives the error)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(PNG_SIGNATURE):
        return None
    position, header, idat = 8, b"", []
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        position += 12 + length
    layout = PngLayout.of(header)
    if layout is None or not idat:
        return None
    try:
        raw = _inflate(b"".join(idat))
    except (_inflate_error, zlib.error, ValueError):
        return None
    if len(raw) != layout.height * (layout.channels * layout.width + 1):
        return None
    return InflatedPng(layout.width, layout.height, layout.colour, raw)


def fast_png(path: Path) -> tuple[str, np.ndarray] | None:
    """(mode, pixels) of an 8-bit grayscale or palette PNG without interlacing, inflated by
    :func:`inflate_png`, the row filters undone (None, Sub, Up) with whole-row numpy
    operations, or (Average, Paeth) by Pillow's row decoder on the inflated rows. None for
    anything else (other formats, depths, interlacing, damaged data): the caller then decodes
    with Pillow, which also gives the error message."""
    png = inflate_png(path)
    if png is None or png.colour not in _PNG_MODES:
        return None
    mode, width, height = _PNG_MODES[png.colour], png.width, png.height
    pixels = _unfilter(np.frombuffer(png.raw, dtype=np.uint8).reshape(height, width + 1))
    if pixels is None:
        pixels = pillow_rows(png.raw, mode, mode, (width, height))
    return None if pixels is None else (mode, pixels)


def _decode(path: Path) -> tuple[str, np.ndarray]:
    """(mode, pixels) of an image file; InputError when it cannot be read."""
    fast = fast_png(path)
    if fast is not None:
        return fast
    try:
        with Image.open(path) as image:
            image.load()
            return image.mode, np.asarray(image)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read mask PNG {path}: {error}") from error


def _is_binary(array: np.ndarray) -> bool:
    """No value strictly between 0 and 255 (uint8): two SIMD passes, no set operation."""
    return not bool(((array - np.uint8(1)) < np.uint8(254)).any())


def read_label_frame(
    path: str | Path, kind: str = "auto", void_label: int | None = VOID_LABEL
) -> LabelFrame:
    """Read a DAVIS annotation or result PNG (palette or grayscale object ids).

    Args:
        path: PNG file.
        kind: ``"auto"`` (a grayscale frame with values 0 and 255 only is DAVIS-2016, anything
            else DAVIS-2017), ``"davis2016"`` (nonzero = object 1) or ``"davis2017"`` (ids).
        void_label: Value marking void pixels in DAVIS-2017 files (ground truth), or None to
            read every value as an object id (results).
    """
    if kind not in KINDS:
        raise InputError(f"unknown DAVIS format {kind!r}: use one of {', '.join(KINDS)}")
    mode, array = _decode(Path(path))
    if array.ndim != 2:
        raise InputError(
            f"{path} is a {mode} image; DAVIS masks are palette or grayscale PNGs of object ids"
        )
    if array.dtype == bool:  # mode "1": ids 0 and 1
        array = array.view(np.uint8)
    if kind == "auto":
        binary = mode == "L" and _is_binary(array)
        kind = "davis2016" if binary else "davis2017"
    if kind == "davis2016":
        labels = (array != 0).view(np.uint8)
        return LabelFrame(labels, int(labels.max()) if labels.size else 0, None, False)
    if array.dtype.kind not in "ui":
        raise InputError(f"{path} holds {array.dtype} values; object ids must be integers")
    if array.dtype.kind == "i":
        array = array.astype(np.int64)
        if (array < 0).any():
            raise InputError(f"{path} has negative values; object ids must be >= 0")
    top = int(array.max()) if array.size else 0
    has_void = void_label is not None and top >= void_label and bool((array == void_label).any())
    if has_void:
        top = int(np.where(array == void_label, 0, array).max())
    return LabelFrame(array, top, void_label, has_void)


def _gray_lut(image: Image.Image) -> np.ndarray:
    """(256,) bool: which palette indices convert to a nonzero gray (Pillow's "L")."""
    probe = Image.frombytes("P", (256, 1), bytes(range(256)))
    palette = image.getpalette()
    if palette is not None:
        probe.putpalette(palette)
    return np.asarray(probe.convert("L"))[0] != 0


def read_binary_png(path: str | Path) -> np.ndarray:
    """(H, W) bool: grayscale value != 0, as ``cv2.imread(path, IMREAD_GRAYSCALE) != 0``.

    A palette image is not converted pixel by pixel: its palette is, and the indices are
    looked up (or compared with 0 when index 0 is the only one that is black).
    """
    try:
        fast = fast_png(Path(path))
        if fast is not None and fast[0] == "L":
            return fast[1] != 0
        with Image.open(path) as image:
            image.load()
            if image.mode == "L":
                return np.asarray(image) != 0
            if image.mode != "P":
                return np.asarray(image.convert("L")) != 0
            indices = np.asarray(image)
            lut = _gray_lut(image)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read prediction PNG {path}: {error}") from error
    if not lut[0] and lut[1 : int(indices.max()) + 1].all():
        return indices != 0  # index 0 is the only black one in use
    return lut[indices]


def ordered_map(
    function: Callable[[T], object], items: Iterable[T], workers: int | None = None
) -> Iterator[object]:
    """``map(function, items)`` computed by a thread pool, results in order, at most a few
    ahead of the consumer (bounded memory: ``4 * workers`` results pending)."""
    workers = DEFAULT_WORKERS if workers is None else workers
    if workers <= 1:
        yield from map(function, items)
        return
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        first = itertools.islice(source, 4 * workers)
        pending = deque(pool.submit(function, item) for item in first)
        while pending:
            result = pending.popleft().result()
            following = next(source, None)
            if following is not None:
                pending.append(pool.submit(function, following))
            yield result


def chunked(frames: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    batch: list[T] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def check_paths(folder: Path, frame_ids: Sequence[str]) -> list[Path]:
    """``folder/<id>.png`` for each frame id; InputError naming the missing ones."""
    paths = [folder / f"{frame}.png" for frame in frame_ids]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise InputError(
            f"{folder} lacks {len(missing)} frame(s) ({', '.join(missing[:3])}...): "
            "a DAVIS result needs one PNG per annotated frame, named as the annotations"
        )
    return paths
