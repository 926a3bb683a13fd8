"""COCO RLE masks straight to bit-packed rows, without a byte per pixel or a transpose.

A COCO RLE lists run lengths of alternating 0s and 1s over the pixels in column-major order;
the compressed form writes each length (from the fourth on, as a difference from the one two
before) in 5-bit chunks, ``chr(48 + chunk)``, bit 0x20 marking "more chunks follow" and bit
0x10 of the last chunk the sign (pycocotools ``rleFrString``). The VOS scorer needs row-major
packed bits (pixel (y, x) is bit x % 64 of word x // 64 of row y). Here each run of 1s becomes
toggles of its column-major stretch: at its first pixel, at the pixel after its last, and at
row 0 of every later column it reaches. A running XOR down each column of the toggles gives the
mask, so only the toggles (a few per column) are written pixel by pixel and the running XOR
works 64 columns per word. pycocotools decodes byte by byte in column-major order and the
result still needs transposing, about three times the cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pixelground.core.errors import InputError


def rle_counts(rle: dict[str, Any]) -> np.ndarray:
    """(K,) int64 run lengths of a COCO RLE (compressed string/bytes or a list of ints)."""
    counts = rle["counts"]
    if isinstance(counts, list):
        return np.asarray(counts, dtype=np.int64)
    text = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    chars = np.frombuffer(text, dtype=np.uint8).astype(np.int64) - 48
    if not len(chars):
        return np.zeros(0, dtype=np.int64)
    if (chars < 0).any() or (chars > 63).any() or chars[-1] & 0x20:
        raise InputError("a compressed RLE holds characters outside its alphabet or ends early")
    ends = np.flatnonzero((chars & 0x20) == 0)  # the last chunk of each value
    starts = np.concatenate(([0], ends[:-1] + 1))
    place = np.arange(len(chars)) - np.repeat(starts, ends - starts + 1)
    values = np.add.reduceat((chars & 0x1F) << (5 * place), starts)
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * (ends[negative] - starts[negative] + 1))
    if len(values) > 3:  # from the fourth on, differences from the value two before
        values[3::2] = np.cumsum(values[3::2]) + values[1]
    if len(values) > 4:
        values[4::2] = np.cumsum(values[4::2]) + values[2]
    return values


def rle_row_bits(rle: dict[str, Any], words: int) -> np.ndarray:
    """(H, words) uint64 row-major packed bits of a COCO RLE mask (bits from W on are 0).

    Args:
        rle: ``{"size": [H, W], "counts": ...}``.
        words: 64-bit words per row, at least ``ceil(W / 64)``.
    """
    height, width = (int(v) for v in rle["size"])
    counts = rle_counts(rle)
    if (counts < 0).any() or counts.sum() != height * width:
        raise InputError(f"an RLE's run lengths do not add up to its size {height}x{width}")
    ends = np.cumsum(counts)
    ones = len(counts) // 2
    first, after = ends[0 : 2 * ones : 2], ends[1 : 2 * ones + 1 : 2]
    first, after = first[after > first], after[after > first]
    column, row = np.divmod(first, height)
    end_column, end_row = np.divmod(after, height)
    spans = end_column - column  # later columns each run reaches (at row 0)
    reached = np.repeat(column + 1, spans) + (
        np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans)
    )
    row_bits = words * 64
    toggles = np.concatenate((row * row_bits + column, end_row * row_bits + end_column, reached))
    toggles = np.sort(toggles[toggles % row_bits < width])  # not past the last column
    if len(toggles):
        starts = np.flatnonzero(np.concatenate(([True], toggles[1:] != toggles[:-1])))
        repeats = np.diff(np.append(starts, len(toggles)))
        toggles = toggles[starts[repeats % 2 == 1]]  # two toggles of one pixel cancel
    bits = np.zeros(height * row_bits, dtype=bool)
    bits[toggles] = True
    packed = np.packbits(bits.reshape(height, row_bits), axis=-1, bitorder="little")
    rows = packed.view("<u8")
    return np.bitwise_xor.accumulate(rows if rows.dtype.isnative else rows.astype(np.uint64))
