"""COCO RLE straight to packed rows: the same pixels as pycocotools, for compressed and
uncompressed counts, empty, full and one-pixel-wide masks; damaged RLEs are clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle, encode_rle
from pixelground.eval.datasets.rle_bits import rle_counts, rle_row_bits


def _rows(mask: np.ndarray, words: int) -> np.ndarray:
    buf = np.zeros((mask.shape[0], words * 8), dtype=np.uint8)
    buf[:, : (mask.shape[1] + 7) // 8] = np.packbits(mask, axis=-1, bitorder="little")
    return buf.view("<u8").astype(np.uint64)


def _uncompressed(mask: np.ndarray) -> dict:
    flat = mask.T.reshape(-1).astype(np.int8)  # column-major
    changes = np.flatnonzero(np.diff(np.concatenate(([0], flat, [1 - flat[-1]]))))
    counts = np.diff(np.concatenate(([0], changes))).tolist()
    return {"size": list(mask.shape), "counts": [int(c) for c in counts]}


def _masks(rng: np.random.Generator):
    yield np.zeros((5, 7), bool)
    yield np.ones((5, 7), bool)
    yield np.ones((1, 1), bool)
    for _ in range(150):
        height, width = (int(v) for v in rng.integers(1, 90, 2))
        mask = rng.random((height, width)) < rng.random()
        kind = rng.integers(0, 4)
        if kind == 0:
            mask[:] = False
            mask[rng.integers(0, height) :, : rng.integers(0, width + 1)] = True  # whole columns
        elif kind == 1:
            mask[:, : rng.integers(0, width + 1)] = True
        yield mask


def test_row_bits_equal_pycocotools_for_compressed_and_uncompressed_counts():
    for mask in _masks(np.random.default_rng(8)):
        words = (mask.shape[1] + 9 + 63) // 64
        compressed = encode_rle(mask)[0]
        assert np.array_equal(decode_rle(compressed), mask)
        assert np.array_equal(rle_row_bits(compressed, words), _rows(mask, words))
        uncompressed = _uncompressed(mask)
        assert np.array_equal(decode_rle(uncompressed), mask)
        assert np.array_equal(rle_row_bits(uncompressed, words), _rows(mask, words))
        assert rle_counts(compressed).tolist() == uncompressed["counts"]


def test_damaged_rles_are_input_errors():
    good = encode_rle(np.eye(6, dtype=bool))[0]
    counts = good["counts"] if isinstance(good["counts"], str) else good["counts"].decode()
    with pytest.raises(InputError, match="do not add up"):
        rle_row_bits({"size": [6, 7], "counts": counts}, 1)
    with pytest.raises(InputError, match="ends early"):
        rle_row_bits({"size": [6, 6], "counts": counts[:-1] + "o"}, 1)
    with pytest.raises(InputError, match="outside its alphabet"):
        rle_row_bits({"size": [6, 6], "counts": counts + " "}, 1)
    with pytest.raises(InputError, match="do not add up"):
        rle_row_bits({"size": [6, 6], "counts": [3, -1, 34]}, 1)
