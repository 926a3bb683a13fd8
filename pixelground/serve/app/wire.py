"""A strict decoder for COCO RLE masks sent by clients.

pycocotools' decoder trusts its input (counts that add up to more than H*W write past the
buffer), so a mask from the network is parsed here in Python and checked first: the
compressed counts string of pycocotools' ``rleToString`` format, every count
non-negative, their sum exactly H*W.
"""

from __future__ import annotations

import numpy as np

from pixelground.core.errors import InputError


def parse_counts(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE counts string (pycocotools ``rleFrString``)."""
    values: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts) or shift > 60:
                raise InputError("mask RLE counts are truncated or malformed")
            code = ord(counts[position]) - 48
            if not 0 <= code < 64:
                raise InputError("mask RLE counts hold a character outside the RLE alphabet")
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        if len(values) > 2:
            value += values[-2]
        values.append(value)
    return values


def decode_client_rle(size: list[int], counts: str, max_pixels: int) -> np.ndarray:
    """(H, W) bool mask from a client's COCO RLE, validated before any pixel is written.

    Raises:
        InputError: malformed size or counts, or counts that do not cover H*W exactly.
    """
    if len(size) != 2 or min(size) <= 0 or size[0] * size[1] > max_pixels:
        raise InputError(f"mask RLE size must be [H, W] within the pixel limit, got {size}")
    height, width = int(size[0]), int(size[1])
    runs = parse_counts(counts)
    if any(run < 0 for run in runs) or sum(runs) != height * width:
        raise InputError(f"mask RLE counts do not cover the {height}x{width} mask exactly")
    values = np.arange(len(runs)) % 2 == 1
    flat = np.repeat(values, runs)
    return flat.reshape(width, height).T.copy()  # COCO RLE runs down columns
