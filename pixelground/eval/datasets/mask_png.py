"""Reading mask PNGs fast: one decode per file, no whole-frame passes that are not needed,
decoding in a thread pool (the PNG decoders release the GIL), frames handed on in order
as they are decoded so that a scorer can consume a video chunk by chunk in bounded memory.

Mask PNGs (8-bit grayscale or palette) are decoded by :mod:`png_decode` (libdeflate's
inflate, row filters undone in C, both outside the GIL); anything else goes to Pillow. What a
frame holds is found with single SIMD passes (``max``; ``(a - 1) < 254`` for "is this
grayscale frame binary", DAVIS-2016: values 0 and 255 only) rather than with ``np.isin``,
``np.unique`` or a histogram over the pixels.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from pixelground.core.errors import InputError
from pixelground.eval.datasets.png_decode import decode_png

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


_PNG_MODES = {0: "L", 3: "P"}  # PNG colour type -> Pillow mode, for the mask PNGs


def fast_png(path: Path) -> tuple[str, np.ndarray] | None:
    """(mode, (H, W) uint8 pixels) of an 8-bit grayscale or palette PNG without interlacing,
    decoded by :func:`png_decode.decode_png`. None for anything else (other formats, depths,
    interlacing, damaged data, no C extension): the caller then decodes with Pillow, which
    also gives the error message."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    png = decode_png(data)
    if png is None or png.layout.colour not in _PNG_MODES:
        return None
    return _PNG_MODES[png.layout.colour], png.pixels


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
