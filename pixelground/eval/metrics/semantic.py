"""Semantic segmentation: mIoU, mean accuracy and pixel accuracy from a confusion matrix.

The confusion matrix ``M`` is (C, C + 1) int64: ``M[g, p]`` counts pixels of GT class ``g``
predicted as class ``p``; the extra last column counts predictions outside ``[0, C)`` (wrong
whatever the GT). GT pixels equal to ``ignore_index`` (255) are left out entirely. With
intersection ``I = diag(M)``, GT area ``G = M.sum(1)`` and predicted area
``P = M[:, :C].sum(0)``, ``IoU = I / (G + P - I)`` and ``Acc = I / G`` per class.

Two conventions for the class averages:

* ``"mmseg"`` (mmsegmentation ``IoUMetric``): mIoU = nanmean(IoU), so a class absent from the GT
  but predicted somewhere counts with IoU 0, a class absent from both is skipped; mAcc =
  nanmean(Acc) over classes present in the GT; aAcc = sum(I) / sum(G). (mmseg prints these
  x100 rounded to 2 decimals; here they are unrounded fractions.)
* ``"detectron2"`` (``SemSegEvaluator``): IoU and Acc averaged over the classes present in
  the GT only; also fwIoU, the GT-frequency-weighted IoU.

Pixel accuracy (aAcc / pACC) is the same in both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelground.core.errors import InputError

IGNORE_INDEX = 255
CONVENTIONS = ("mmseg", "detectron2")


class ConfusionMatrix:
    """Accumulates a (C, C + 1) confusion matrix over images.

    Args:
        num_classes: C; GT values must be in ``[0, C)`` or equal ``ignore_index``.
        ignore_index: GT value of pixels left out of every count.
        reduce_zero_label: mmseg's option for datasets whose label 0 means "other" (ADE20K):
            GT 0 becomes ignored and every other GT value is shifted down by one.
    """

    def __init__(
        self, num_classes: int, ignore_index: int = IGNORE_INDEX, reduce_zero_label: bool = False
    ):
        if num_classes < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reduce_zero_label = reduce_zero_label
        self.matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: ``pred`` and ``gt`` are (H, W) integer class maps."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise InputError(f"prediction {pred.shape} and GT {gt.shape} differ in size")
        gt = gt.astype(np.int64)
        if self.reduce_zero_label:
            gt = np.where(gt == 0, self.ignore_index, gt - 1)
            gt[gt == self.ignore_index - 1] = self.ignore_index
        keep = gt != self.ignore_index
        gt, pred = gt[keep], pred[keep].astype(np.int64)
        if gt.size and (gt.min() < 0 or gt.max() >= self.num_classes):
            bad = sorted(set(np.unique(gt[(gt < 0) | (gt >= self.num_classes)]).tolist()))[:5]
            raise InputError(
                f"GT has values {bad} outside 0..{self.num_classes - 1} and not the ignore "
                f"index {self.ignore_index}"
            )
        pred = np.where((pred < 0) | (pred >= self.num_classes), self.num_classes, pred)
        width = self.num_classes + 1
        counts = np.bincount(gt * width + pred, minlength=self.num_classes * width)
        self.matrix += counts.reshape(self.num_classes, width)

    def scores(
        self, class_names: Sequence[str] | None = None, convention: str = "mmseg"
    ) -> dict[str, Any]:
        """The metrics of the accumulated matrix; see :func:`semantic_scores`."""
        return semantic_scores(self.matrix, class_names, convention)


def _none_if_nan(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def semantic_scores(
    matrix: np.ndarray, class_names: Sequence[str] | None = None, convention: str = "mmseg"
) -> dict[str, Any]:
    """mIoU, mAcc, pixel accuracy and per-class IoU/Acc of a confusion matrix.

    Args:
        matrix: (C, C) or (C, C + 1) counts, rows = GT class, columns = predicted class.
        class_names: C names for ``per_class`` (default the class indices).
        convention: ``"mmseg"`` or ``"detectron2"`` (see the module docstring).

    Returns:
        ``{"mIoU", "mAcc", "aAcc", "fwIoU", "per_class": {name: {"iou", "acc", "gt_pixels",
        "pred_pixels"}}, "num_classes", "pixels", "convention"}``; undefined values are None.
    """
    if convention not in CONVENTIONS:
        raise InputError(f"unknown convention {convention!r}: use mmseg or detectron2")
    matrix = np.asarray(matrix, dtype=np.int64)
    num = matrix.shape[0]
    if matrix.ndim != 2 or matrix.shape[1] not in (num, num + 1):
        raise InputError(f"a confusion matrix must be (C, C) or (C, C + 1), got {matrix.shape}")
    names = [str(i) for i in range(num)] if class_names is None else [str(n) for n in class_names]
    if len(names) != num:
        raise InputError(f"{len(names)} class names for {num} classes")
    inter = np.diag(matrix[:, :num]).astype(np.float64)
    gt_area = matrix.sum(axis=1).astype(np.float64)
    pred_area = matrix[:, :num].sum(axis=0).astype(np.float64)
    union = gt_area + pred_area - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
        acc = inter / gt_area
    present = gt_area > 0
    if convention == "mmseg":
        miou = np.nanmean(iou) if np.any(union > 0) else np.nan
        macc = np.nanmean(acc) if np.any(present) else np.nan
    else:
        valid = present & (union > 0)
        miou = iou[valid].sum() / valid.sum() if valid.any() else np.nan
        macc = acc[present].sum() / present.sum() if present.any() else np.nan
    total = gt_area.sum()
    weights = gt_area / total if total else np.zeros(num)
    fwiou = float(np.sum(np.nan_to_num(iou) * weights)) if total else np.nan
    per_class = {
        name: {
            "iou": _none_if_nan(iou[i]),
            "acc": _none_if_nan(acc[i]),
            "gt_pixels": int(gt_area[i]),
            "pred_pixels": int(pred_area[i]),
        }
        for i, name in enumerate(names)
    }
    return {
        "mIoU": _none_if_nan(miou),
        "mAcc": _none_if_nan(macc),
        "aAcc": _none_if_nan(inter.sum() / total if total else np.nan),
        "fwIoU": _none_if_nan(fwiou),
        "per_class": per_class,
        "num_classes": num,
        "pixels": int(total),
        "convention": convention,
    }


def evaluate_semantic(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    ignore_index: int = IGNORE_INDEX,
    convention: str = "mmseg",
    reduce_zero_label: bool = False,
) -> dict[str, Any]:
    """Metrics over ``(pred, gt)`` pairs of (H, W) class maps; see :func:`semantic_scores`."""
    matrix = ConfusionMatrix(num_classes, ignore_index, reduce_zero_label)
    for pred, gt in pairs:
        matrix.update(pred, gt)
    return matrix.scores(class_names, convention)


def read_label_png(path: str | Path) -> np.ndarray:
    """(H, W) class indices from a palette or grayscale PNG (the raw index values)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read label PNG {path}: {error}") from error
    if array.ndim != 2:
        raise InputError(f"{path} is not a single-channel label map (shape {array.shape})")
    return array


def evaluate_semantic_folders(
    gt_dir: str | Path,
    pred_dir: str | Path,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    ignore_index: int = IGNORE_INDEX,
    convention: str = "mmseg",
    reduce_zero_label: bool = False,
) -> dict[str, Any]:
    """Metrics over two folders of label PNGs paired by file stem (every GT needs a prediction).

    Returns:
        As :func:`semantic_scores`, plus ``"num_images"``.
    """
    gt_paths = sorted(Path(gt_dir).glob("*.png"))
    if not gt_paths:
        raise InputError(f"no GT label PNGs in {gt_dir}")
    pred_dir = Path(pred_dir)
    missing = [p.name for p in gt_paths if not (pred_dir / p.name).is_file()]
    if missing:
        raise InputError(
            f"{pred_dir} lacks predictions for {len(missing)} images, e.g. {missing[0]}"
        )
    pairs = ((read_label_png(pred_dir / p.name), read_label_png(p)) for p in gt_paths)
    result = evaluate_semantic(
        pairs, num_classes, class_names, ignore_index, convention, reduce_zero_label
    )
    result["num_images"] = len(gt_paths)
    return result
