"""Referring expression segmentation: gIoU and cIoU as LISA, GLaMM and Sa2VA compute them.

Definitions (one expression = one predicted mask against one ground-truth mask):

- ``I`` and ``U``: foreground intersection and union in pixels. Pixels the ground truth marks
  as ignore (value 255 in LISA's ReasonSeg masks) are excluded from both, as
  ``intersectionAndUnionGPU(..., ignore_index=255)`` does.
- per-expression IoU: ``I / (U + 1e-5)``, and ``1`` when ``U == 0`` (prediction and ground
  truth both empty: "no-object target").
- **gIoU**: the mean of the per-expression IoUs.
- **cIoU**: ``sum(I) / (sum(U) + 1e-10)`` over all expressions ("cumulative IoU").

The epsilons are the official ones, kept so that numbers match to the last digit:

- ``variant="lisa"`` (LISA ``train_ds.py::validate`` and GLaMM
  ``eval/referring_seg/infer_and_evaluate.py``, which are the same code): the mean is taken
  after ``AverageMeter.all_reduce``, i.e. ``gIoU = sum(IoU) / (N + 1e-5)``. A missing
  prediction is an empty mask (these models always emit one mask per expression).
- ``variant="sa2va"`` (Sa2VA ``evaluation/dataset/RES.py::RESDataset.evaluate``): an
  expression for which the model produced **no mask at all** (``None``, e.g. no ``[SEG]``
  token in the answer) is **skipped in cIoU** (adds neither I nor U) while it still counts
  as IoU 0 in gIoU; ``gIoU = sum(IoU) / N`` (no all-reduce). A predicted mask that exists
  but is all zeros is scored normally. Sa2VA's cIoU is therefore higher than LISA's for a
  model that sometimes answers without a mask; say which variant a number used.

Known difference kept out on purpose: LISA's loader sums overlapping polygons of one COCO
annotation into values 2 that its histogram then drops; we treat ground truth as binary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pixelground.core.errors import InputError

Variant = Literal["lisa", "glamm", "sa2va"]
VARIANTS = ("lisa", "glamm", "sa2va")
IOU_EPS = 1e-5  # LISA/GLaMM/Sa2VA: intersection / (union + 1e-5)
CIOU_EPS = 1e-10  # intersection_meter.sum / (union_meter.sum + 1e-10)
COUNT_EPS = 1e-5  # AverageMeter.all_reduce: avg = sum / (count + 1e-5)


def intersection_union(
    pred: np.ndarray | None, gt: np.ndarray, ignore: np.ndarray | None = None
) -> tuple[int, int]:
    """Foreground intersection and union of one prediction with its ground truth.

    Args:
        pred: (H, W) mask (nonzero = inside) or None for "no prediction" (empty).
        gt: (H, W) ground truth; bool/0-1 masks, or uint8 label masks where 255 = ignore.
        ignore: optional (H, W) bool mask of pixels excluded from both counts; pixels of
            ``gt`` equal to 255 are always ignored.

    Returns:
        (I, U) as Python ints.
    """
    gt_arr = np.asarray(gt)
    if gt_arr.ndim != 2:
        raise InputError(f"a ground-truth mask must be (H, W), got shape {gt_arr.shape}")
    valid = gt_arr != 255 if gt_arr.dtype != bool else np.ones(gt_arr.shape, dtype=bool)
    if ignore is not None:
        valid &= ~np.asarray(ignore, dtype=bool)
    target = (gt_arr != 0) & valid
    if pred is None:
        return 0, int(target.sum())
    pred_arr = np.asarray(pred)
    if pred_arr.shape != gt_arr.shape:
        raise InputError(
            f"predicted mask {pred_arr.shape} and ground truth {gt_arr.shape} differ in size; "
            "resize predictions to the image size before scoring"
        )
    output = (pred_arr != 0) & valid
    inter = int(np.count_nonzero(output & target))
    union = int(np.count_nonzero(output)) + int(np.count_nonzero(target)) - inter
    return inter, union


def expression_iou(inter: int, union: int) -> float:
    """The official per-expression IoU: ``I / (U + 1e-5)``, and 1.0 when ``U == 0``."""
    return 1.0 if union == 0 else inter / (union + IOU_EPS)


@dataclass
class ReferAccumulator:
    """Streaming gIoU/cIoU: feed expressions one by one, read ``result()`` at the end.

    Attributes:
        variant: "lisa" / "glamm" (identical code) or "sa2va"; see the module docstring.
        keep_per_sample: keep one record per expression for CSV error analysis.
    """

    variant: Variant = "lisa"
    keep_per_sample: bool = True
    sum_iou: float = 0.0
    sum_inter: int = 0
    sum_union: int = 0
    count: int = 0
    missing: int = 0
    per_sample: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise InputError(f"unknown refer variant {self.variant!r}; use one of {VARIANTS}")

    def update(
        self,
        pred: np.ndarray | None,
        gt: np.ndarray,
        ignore: np.ndarray | None = None,
        sample_id: str | None = None,
    ) -> float:
        """Score one expression and add it; returns its official IoU.

        Args:
            pred: (H, W) predicted mask, or None when the model gave no mask.
            gt: (H, W) ground-truth mask (255 = ignore allowed).
            ignore: optional (H, W) ignore mask.
            sample_id: identifier stored in the per-sample records.
        """
        inter, union = intersection_union(pred, gt, ignore)
        skipped = pred is None and self.variant == "sa2va"
        iou = 0.0 if skipped else expression_iou(inter, union)
        self.count += 1
        self.missing += int(pred is None)
        self.sum_iou += iou
        if not skipped:
            self.sum_inter += inter
            self.sum_union += union
        if self.keep_per_sample:
            self.per_sample.append(
                {"id": sample_id, "I": inter, "U": union, "IoU": iou, "missing": pred is None}
            )
        return iou

    def result(self) -> dict[str, Any]:
        """gIoU, cIoU (fractions in [0, 1]), the counts, and the per-expression records."""
        if self.count == 0:
            raise InputError(
                "no expressions were scored; check that predictions match the ground-truth ids"
            )
        denominator = self.count if self.variant == "sa2va" else self.count + COUNT_EPS
        return {
            "gIoU": self.sum_iou / denominator,
            "cIoU": self.sum_inter / (self.sum_union + CIOU_EPS),
            "count": self.count,
            "missing_predictions": self.missing,
            "variant": self.variant,
            "per_sample": list(self.per_sample),
        }


def refer_scores(
    preds: Sequence[np.ndarray | None],
    gts: Sequence[np.ndarray],
    ignores: Sequence[np.ndarray | None] | None = None,
    variant: Variant = "lisa",
    ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """gIoU and cIoU over paired predictions and ground truths.

    Args:
        preds: one (H, W) mask per expression, or None where the model gave no mask.
        gts: one (H, W) ground-truth mask per expression (bool, 0/1, or 255 = ignore).
        ignores: optional per-expression (H, W) ignore masks.
        variant: "lisa" (= "glamm") or "sa2va" (skips missing predictions in cIoU).
        ids: optional per-expression identifiers for the per-sample records.

    Returns:
        {"gIoU", "cIoU", "count", "missing_predictions", "variant", "per_sample"}.
    """
    if len(preds) != len(gts):
        raise InputError(f"{len(preds)} predictions for {len(gts)} ground-truth masks")
    acc = ReferAccumulator(variant=variant)
    for i, (pred, gt) in enumerate(zip(preds, gts, strict=True)):
        ignore = ignores[i] if ignores is not None else None
        acc.update(pred, gt, ignore, sample_id=ids[i] if ids is not None else str(i))
    return acc.result()
