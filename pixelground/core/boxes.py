"""Boxes as float arrays of shape (N, 4) in xyxy pixel coordinates (x0, y0, x1, y1)."""

from __future__ import annotations

import numpy as np


def as_boxes(boxes: np.ndarray | list) -> np.ndarray:
    """Return boxes as a float64 (N, 4) array; one box of shape (4,) becomes N = 1."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {arr.shape}")
    return arr


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Area of each box: (N, 4) -> (N,); inverted boxes have area 0."""
    b = as_boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def box_centres(boxes: np.ndarray) -> np.ndarray:
    """Centre (x, y) of each box: (N, 4) -> (N, 2)."""
    b = as_boxes(boxes)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of two box sets: (N, 4), (M, 4) -> (N, M); 0 where the union is empty."""
    a, b = as_boxes(a), as_boxes(b)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clip xyxy boxes to the image rectangle [0, width] x [0, height]."""
    b = as_boxes(boxes).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    return b


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """COCO (x, y, w, h) -> (x0, y0, x1, y1)."""
    b = as_boxes(boxes).copy()
    b[:, 2:] += b[:, :2]
    return b


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) -> COCO (x, y, w, h)."""
    b = as_boxes(boxes).copy()
    b[:, 2:] -= b[:, :2]
    return b


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: (N, 4) xyxy boxes.
        scores: (N,) scores; higher is kept first.
        iou_threshold: a box overlapping a kept one by more than this is dropped.

    Returns:
        Indices of the kept boxes, in decreasing score order.
    """
    b = as_boxes(boxes)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        if len(order) == 1:
            break
        ious = box_iou(b[i : i + 1], b[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
