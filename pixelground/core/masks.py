"""Binary masks: bool arrays in memory, COCO RLE on the wire.

Masks are ``bool`` numpy arrays of shape (N, H, W) (a stack) or (H, W) (one mask).
COCO RLE dicts are ``{"size": [H, W], "counts": str}`` with the compressed counts string
that pycocotools writes (column-major run lengths), so every tool that reads COCO reads ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from pixelground.core.errors import require

RLE = dict[str, Any]


def as_mask_stack(masks: np.ndarray) -> np.ndarray:
    """Return masks as a bool (N, H, W) array; a single (H, W) mask becomes N = 1.

    Args:
        masks: Array of shape (H, W) or (N, H, W), any dtype; nonzero means inside.

    Returns:
        Bool array of shape (N, H, W).
    """
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (H, W) or (N, H, W), got {masks.shape}")
    return masks.astype(bool, copy=False)


def encode_rle(masks: np.ndarray) -> list[RLE]:
    """Encode masks as COCO RLE dicts with string counts.

    Args:
        masks: (N, H, W) or (H, W) masks.

    Returns:
        N dicts ``{"size": [H, W], "counts": str}``.
    """
    stack = as_mask_stack(masks)
    fortran = np.asfortranarray(stack.transpose(1, 2, 0).astype(np.uint8))
    rles = coco_mask.encode(fortran)
    return [
        {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}
        for r in rles
    ]


def _to_coco(rle: RLE) -> RLE:
    counts = rle["counts"]
    height, width = (int(v) for v in rle["size"])
    if isinstance(counts, list):  # uncompressed RLE, as in COCO iscrowd annotations
        return coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [height, width], "counts": counts}


def decode_rle(rles: RLE | Sequence[RLE]) -> np.ndarray:
    """Decode COCO RLE (compressed string/bytes counts or uncompressed list counts).

    Args:
        rles: One RLE dict or a sequence of them; all of the same size.

    Returns:
        Bool array (H, W) for one dict, (N, H, W) for a sequence.
    """
    if isinstance(rles, dict):
        return coco_mask.decode(_to_coco(rles)).astype(bool)
    rles = list(rles)
    if not rles:
        raise ValueError("decode_rle needs at least one RLE to know the mask size")
    decoded = coco_mask.decode([_to_coco(r) for r in rles])
    return decoded.transpose(2, 0, 1).astype(bool)


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` into one (H, W) bool mask."""
    valid = [list(map(float, p)) for p in polygons if len(p) >= 6]
    if not valid:
        return np.zeros((height, width), dtype=bool)
    rles = coco_mask.frPyObjects(valid, height, width)
    return coco_mask.decode(coco_mask.merge(rles)).astype(bool)


def mask_area(masks: np.ndarray) -> np.ndarray:
    """Pixel count of each mask: (N, H, W) -> (N,) int64."""
    stack = as_mask_stack(masks)
    pixels = stack.shape[1] * stack.shape[2]  # explicit: reshape(0, -1) fails for N = 0
    return stack.reshape(len(stack), pixels).sum(axis=1, dtype=np.int64)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes in pixels, exclusive of x1/y1: (N, H, W) -> (N, 4) float32.

    A pixel at column x spans [x, x + 1), so a one-pixel mask at (x, y) has box
    (x, y, x + 1, y + 1). Empty masks get the box (0, 0, 0, 0).
    """
    stack = as_mask_stack(masks)
    boxes = np.zeros((len(stack), 4), dtype=np.float32)
    rows_any = stack.any(axis=2)
    cols_any = stack.any(axis=1)
    for i in range(len(stack)):
        ys = np.flatnonzero(rows_any[i])
        xs = np.flatnonzero(cols_any[i])
        if len(xs):
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def mask_iou(a: np.ndarray, b: np.ndarray, empty_value: float = 0.0) -> np.ndarray:
    """Pairwise IoU between two mask stacks.

    Args:
        a: (N, H, W) masks.
        b: (M, H, W) masks of the same (H, W).
        empty_value: IoU reported where both masks are empty (union 0).

    Returns:
        (N, M) float64 IoU matrix.
    """
    a3, b3 = as_mask_stack(a), as_mask_stack(b)
    if a3.shape[1:] != b3.shape[1:]:
        raise ValueError(f"mask sizes differ: {a3.shape[1:]} vs {b3.shape[1:]}")
    # float32 sums are exact up to 2**24 pixels; larger masks need float64.
    dtype = np.float32 if a3.shape[1] * a3.shape[2] < 2**24 else np.float64
    pixels = a3.shape[1] * a3.shape[2]  # explicit: reshape(0, -1) is ambiguous for N = 0
    a2 = a3.reshape(len(a3), pixels).astype(dtype)
    b2 = b3.reshape(len(b3), pixels).astype(dtype)
    inter = (a2 @ b2.T).astype(np.float64)
    union = a2.sum(1, dtype=np.float64)[:, None] + b2.sum(1, dtype=np.float64)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), empty_value)
    return iou


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of one (H, W) or a stack of (N, H, W) masks to (height, width)."""
    from PIL import Image

    stack = as_mask_stack(mask)
    out = np.zeros((len(stack), height, width), dtype=bool)
    for i, m in enumerate(stack):
        image = Image.fromarray(m.astype(np.uint8) * 255)
        out[i] = np.asarray(image.resize((width, height), Image.Resampling.NEAREST)) > 127
    return out[0] if np.asarray(mask).ndim == 2 else out


def mask_pieces(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8-connected pieces of one mask and their areas.

    Args:
        mask: (H, W) mask; nonzero is inside.

    Returns:
        (H, W) int labels (0 outside, 1..K for the pieces) and (K + 1,) pixel counts per
        label, the background's (index 0) set to 0.
    """
    ndimage: Any = require("scipy.ndimage", "models")
    labels, count = ndimage.label(np.asarray(mask, bool), structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    areas[0] = 0
    return labels, areas


def split_at_necks(mask: np.ndarray, depth: int, min_area: int) -> list[np.ndarray]:
    """One connected piece split where it narrows: two shapes that touch, for instance.

    The piece is eroded (3 x 3) up to ``depth`` times; as soon as it falls apart into two or
    more cores of at least ``min_area`` pixels each, every pixel of the piece goes to its
    nearest core. A piece that does not fall apart so (one shape, however concave, shrinks to
    one core) is returned whole.

    Args:
        mask: (H, W) mask of one piece; nonzero is inside.
        depth: most erosions, in pixels.
        min_area: least pixels of a core.

    Returns:
        The parts, (H, W) bool masks that cover the piece and do not overlap.
    """
    ndimage: Any = require("scipy.ndimage", "models")
    piece = np.asarray(mask, bool)
    square = np.ones((3, 3), dtype=bool)
    eroded = piece
    for _ in range(depth):
        eroded = ndimage.binary_erosion(eroded, square)
        labels, areas = mask_pieces(eroded)
        if len(areas) == 1:  # eroded away
            break
        cores = np.flatnonzero(areas >= min_area)
        if len(cores) >= 2:
            seeds = np.where(np.isin(labels, cores), labels, 0)
            _, (rows, cols) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
            nearest = seeds[rows, cols]
            return [piece & (nearest == core) for core in cores]
    return [piece]


def small_pieces(masks: np.ndarray, min_area: int) -> np.ndarray:
    """The 8-connected pieces of each mask that have fewer than ``min_area`` pixels.

    Args:
        masks: (N, H, W) or (H, W) masks; nonzero is inside.
        min_area: pieces of at least this many pixels are kept out of the result.

    Returns:
        bool array of the input's shape, True on the pixels of the small pieces.
    """
    stack = as_mask_stack(masks)
    small = np.zeros(stack.shape, dtype=bool)
    for i, mask in enumerate(stack):
        labels, areas = mask_pieces(mask)
        if len(areas) > 1:
            areas[0] = min_area  # the background is never a piece
            small[i] = (areas < min_area)[labels]
    return small[0] if np.asarray(masks).ndim == 2 else small
