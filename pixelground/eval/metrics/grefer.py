"""Generalised referring expression segmentation (gRefCOCO) as ReLA's evaluator computes it.

Follows ``gres_model/evaluation/refer_evaluation.py::ReferEvaluator.evaluate`` of ReLA
(Liu, Ding, Jiang; CVPR 2023). Each sample has a merged ground-truth mask (union of all its
targets; empty for a no-target expression), a ``gt_no_target`` flag, a predicted mask and a
``pred_no_target`` flag (ReLA's separate no-target head; here, by default, "the prediction is
empty or missing").

Per sample, with ``I``/``U`` the intersection/union of predicted and ground-truth masks:

- no-target sample, predicted no-target (TP): IoU 1, adds ``I = U = 0`` to cIoU.
- no-target sample, predicted a target (FN): IoU 0, adds ``U`` (the predicted area) to cIoU.
- target sample, predicted no-target (FP): ``I`` is set to 0; IoU ``0 / U``; adds (0, U).
- target sample, predicted a target (TN): IoU ``I / U``; adds (I, U).

Aggregates (fractions in [0, 1]; ReLA prints gIoU, cIoU and Pr@ multiplied by 100):

- **gIoU** = mean per-sample IoU over all samples (no-target ones included).
- **cIoU** = ``sum(I) / sum(U)``; reported as 0.0 when ``sum(U) == 0`` (ReLA would divide by 0).
- **N-acc** = ``TP / (TP + FN)``: no-target samples recognised as such.
- **T-acc** = ``TN / (TN + FP)``: target samples not mistaken for no-target.
  Each is None (null in JSON, "n/a" in tables) when undefined: N-acc without a no-target
  sample, T-acc without a target sample. ReLA prints 0 for both when the data has no
  no-target sample; a 0 there would read as "every no-target expression missed".
- **Pr@0.7/0.8/0.9**: fraction of *target* samples whose IoU >= the threshold.

No epsilon anywhere (unlike LISA's evaluator in refer.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.eval.metrics.refer import intersection_union

PR_THRESHOLDS = (0.7, 0.8, 0.9)


@dataclass
class GReferAccumulator:
    """Streaming ReLA metrics; ``update`` per expression, then ``result``."""

    keep_per_sample: bool = True
    sum_iou: float = 0.0
    sum_inter: int = 0
    sum_union: int = 0
    total: int = 0
    targeted: int = 0
    no_target: int = 0
    pr_counts: dict[float, int] = field(default_factory=lambda: {t: 0 for t in PR_THRESHOLDS})
    confusion: dict[str, int] = field(default_factory=lambda: {"TP": 0, "TN": 0, "FP": 0, "FN": 0})
    per_sample: list[dict[str, Any]] = field(default_factory=list)

    def update(
        self,
        pred: np.ndarray | None,
        gt: np.ndarray,
        gt_no_target: bool | None = None,
        pred_no_target: bool | None = None,
        sample_id: str | None = None,
    ) -> float:
        """Score one expression; returns its per-sample IoU.

        Args:
            pred: (H, W) predicted mask, or None for no prediction.
            gt: (H, W) merged ground-truth mask (empty for no-target expressions).
            gt_no_target: the dataset's no-target flag; default: ``gt`` is empty.
            pred_no_target: the model's no-target decision; default: ``pred`` is None or empty.
            sample_id: identifier kept in the per-sample records.
        """
        gt_nt = bool(gt_no_target) if gt_no_target is not None else not np.any(gt)
        if pred_no_target is None:
            pred_nt = pred is None or not np.any(pred)
        else:
            pred_nt = bool(pred_no_target)
        inter, union = intersection_union(pred, gt)
        if gt_nt:
            self.no_target += 1
            key, iou = ("TP", 1.0) if pred_nt else ("FN", 0.0)
            inter, union = 0, (0 if pred_nt else union)
        else:
            key = "FP" if pred_nt else "TN"
            if pred_nt:
                inter = 0
            iou = 0.0 if union == 0 else inter / union
            self.targeted += 1
            for threshold in PR_THRESHOLDS:
                self.pr_counts[threshold] += int(iou >= threshold)
        self.confusion[key] += 1
        self.sum_iou += iou
        self.sum_inter += inter
        self.sum_union += union
        self.total += 1
        if self.keep_per_sample:
            self.per_sample.append(
                {
                    "id": sample_id,
                    "I": inter,
                    "U": union,
                    "IoU": iou,
                    "gt_no_target": gt_nt,
                    "pred_no_target": pred_nt,
                    "outcome": key,
                }
            )
        return iou

    def result(self) -> dict[str, Any]:
        """gIoU, cIoU, N-acc, T-acc, Pr@0.7/0.8/0.9, the confusion counts and per-sample records."""
        if self.total == 0:
            raise InputError(
                "no expressions were scored; check that predictions match the ground-truth ids"
            )
        c = self.confusion
        n_acc = c["TP"] / (c["TP"] + c["FN"]) if c["TP"] + c["FN"] else None
        t_acc = c["TN"] / (c["TN"] + c["FP"]) if c["TN"] + c["FP"] else None
        out: dict[str, Any] = {
            "gIoU": self.sum_iou / self.total,
            "cIoU": self.sum_inter / self.sum_union if self.sum_union else 0.0,
            "N-acc": n_acc,
            "T-acc": t_acc,
        }
        for threshold in PR_THRESHOLDS:
            out[f"Pr@{threshold:.1f}"] = (
                self.pr_counts[threshold] / self.targeted if self.targeted else 0.0
            )
        out.update(
            {
                "count": self.total,
                "no_target_count": self.no_target,
                "confusion": dict(c),
                "per_sample": list(self.per_sample),
            }
        )
        return out


def grefer_scores(
    preds: Sequence[np.ndarray | None],
    gts: Sequence[np.ndarray],
    gt_no_target: Sequence[bool] | None = None,
    pred_no_target: Sequence[bool | None] | None = None,
    ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """ReLA's gRefCOCO metrics over paired predictions and ground truths.

    Args:
        preds: (H, W) predicted masks, None where there is none.
        gts: (H, W) merged ground-truth masks.
        gt_no_target: per-sample no-target flags (default: ground truth empty).
        pred_no_target: per-sample predicted no-target flags (default: prediction empty).
        ids: optional identifiers for per-sample records.

    Returns:
        See :meth:`GReferAccumulator.result`.
    """
    if len(preds) != len(gts):
        raise InputError(f"{len(preds)} predictions for {len(gts)} ground-truth masks")
    acc = GReferAccumulator()
    for i, (pred, gt) in enumerate(zip(preds, gts, strict=True)):
        acc.update(
            pred,
            gt,
            gt_no_target[i] if gt_no_target is not None else None,
            pred_no_target[i] if pred_no_target is not None else None,
            sample_id=ids[i] if ids is not None else str(i),
        )
    return acc.result()
