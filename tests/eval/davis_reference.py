"""A straightforward per-frame re-implementation of davis2017-evaluation's J and F.

Independent of pixelground's fast version: the boundary map is built the way ``seg2bmap``
builds it, and both maps are dilated with a ``disk(r)`` structuring element for every frame
(scipy's ``binary_dilation`` with zero padding does what ``cv2.dilate`` does there).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def disk(radius: int) -> np.ndarray:
    """``skimage.morphology.disk``: (2r + 1, 2r + 1) bool, x^2 + y^2 <= r^2."""
    grid = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(grid, grid)
    return xx**2 + yy**2 <= radius**2


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def reference_j(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    keep = np.ones(gt.shape, bool) if void is None else ~void
    inter = np.sum(gt.astype(bool) & pred.astype(bool) & keep)
    union = np.sum((gt.astype(bool) | pred.astype(bool)) & keep)
    return 1.0 if union == 0 else inter / union


def reference_f(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> float:
    keep = np.ones(gt.shape, bool) if void is None else ~void
    radius = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(pred.shape))
    fg_boundary = seg2bmap(pred.astype(bool) & keep)
    gt_boundary = seg2bmap(gt.astype(bool) & keep)
    structure = disk(int(radius))
    fg_dil = ndimage.binary_dilation(fg_boundary, structure)
    gt_dil = ndimage.binary_dilation(gt_boundary, structure)
    n_fg, n_gt = fg_boundary.sum(), gt_boundary.sum()
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_boundary & gt_dil) / float(n_fg)
        recall = np.sum(gt_boundary & fg_dil) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)
