"""Panoptic narrative grounding (PNG) average recall, as the official PNG code computes it.

From BCV-Uniandes/PNG ``baseline/test_net.py`` and ``baseline/utils/meters.py``: every grounded
noun phrase of a narrative is one sample with one IoU between its predicted mask and its
ground-truth mask (the union of the panoptic segments the phrase refers to). The recall curve
is ``recall(t) = mean(IoU >= t)`` on the official threshold grid ``t = np.arange(0, 1, 1e-5)``
(100000 thresholds, 0 to 0.99999), and

    AR = sum_i |t[i+1] - t[i]| * recall(t[i])   for i = 0 .. len(t) - 2

(a left Riemann sum over [0, 0.99999], exactly as ``average_accuracy``). The same number is
reported for all phrases and for the subsets singular / plural (a phrase grounded to one vs.
several segments) and thing / stuff (the category of the phrase's segments; in the official
loader the category of its last segment). The accuracy at IoU 0.5 is reported too.

IoU is ``|P & G| / |P | G|``; a phrase whose prediction and ground truth are both empty has IoU
NaN (0 / 0, as the official ``compute_mask_IoU``) and counts as not recalled at any threshold.

Difference kept out on purpose: the official baseline resizes its masks to 256x256 and back
(soft values) before the IoU because its model predicts at 256x256; that is part of that
model's post-processing, not of the metric. We compute the IoU of the masks as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelground.core.errors import InputError

THRESHOLD_STEP = 1e-5
GROUPS = ("All", "Things", "Stuff", "Singulars", "Plurals")


def png_thresholds() -> np.ndarray:
    """The official IoU threshold grid: ``np.arange(0, 1, 0.00001)`` (100000 values)."""
    return np.arange(0, 1, THRESHOLD_STEP)


def recall_curve(ious: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Recall at each official threshold: fraction of IoUs >= t (NaN IoUs never count).

    Returns:
        (thresholds (T,), recall (T,)) float64.
    """
    thresholds = png_thresholds()
    values = np.asarray(ious, dtype=np.float64)
    if values.size == 0:
        raise InputError("average recall needs at least one phrase IoU")
    finite = np.sort(values[~np.isnan(values)])
    # count of values >= t = n_finite - (number of values < t)
    below = np.searchsorted(finite, thresholds, side="left")
    recall = (len(finite) - below) / len(values)
    return thresholds, recall


def average_recall(ious: Sequence[float]) -> float:
    """Official PNG average recall (``average_accuracy``) of a list of phrase IoUs."""
    thresholds, recall = recall_curve(ious)
    return float(np.sum(np.abs(np.diff(thresholds)) * recall[:-1]))


def phrase_iou(pred: np.ndarray | None, gt: np.ndarray) -> float:
    """IoU of one phrase's predicted and ground-truth (H, W) masks; NaN when both are empty."""
    gt_mask = np.asarray(gt).astype(bool)
    if pred is None:
        pred_mask = np.zeros_like(gt_mask)
    else:
        pred_mask = np.asarray(pred).astype(bool)
        if pred_mask.shape != gt_mask.shape:
            raise InputError(
                f"predicted mask {pred_mask.shape} differs from ground truth {gt_mask.shape}"
            )
    inter = np.count_nonzero(pred_mask & gt_mask)
    union = np.count_nonzero(pred_mask | gt_mask)
    return float(inter / union) if union else float("nan")


@dataclass
class PNGAccumulator:
    """Collects one IoU per grounded noun phrase with its singular/plural and thing/stuff tags."""

    ious: list[float] = field(default_factory=list)
    plural: list[bool] = field(default_factory=list)
    thing: list[bool] = field(default_factory=list)
    per_sample: list[dict[str, Any]] = field(default_factory=list)

    def update(
        self,
        pred: np.ndarray | None,
        gt: np.ndarray,
        is_plural: bool,
        is_thing: bool,
        sample_id: str | None = None,
    ) -> float:
        """Add one phrase; returns its IoU."""
        iou = phrase_iou(pred, gt)
        self.ious.append(iou)
        self.plural.append(bool(is_plural))
        self.thing.append(bool(is_thing))
        self.per_sample.append(
            {
                "id": sample_id,
                "IoU": None if np.isnan(iou) else iou,
                "plural": bool(is_plural),
                "thing": bool(is_thing),
            }
        )
        return iou

    def result(self) -> dict[str, Any]:
        """AR for All/Things/Stuff/Singulars/Plurals (None for an empty subset), acc@0.5."""
        return png_scores(self.ious, self.plural, self.thing) | {
            "per_sample": list(self.per_sample)
        }


def png_scores(
    ious: Sequence[float], is_plural: Sequence[bool], is_thing: Sequence[bool]
) -> dict[str, Any]:
    """Average recall overall and per subset, as the PNG paper's table reports.

    Args:
        ious: one IoU per grounded noun phrase (NaN allowed).
        is_plural: per phrase, grounded to more than one segment.
        is_thing: per phrase, its category is a thing (else stuff).

    Returns:
        {"AR": {"All", "Things", "Stuff", "Singulars", "Plurals"}, "accuracy@0.5", "count": {...}}.
    """
    values = np.asarray(ious, dtype=np.float64)
    plural = np.asarray(is_plural, dtype=bool)
    thing = np.asarray(is_thing, dtype=bool)
    if not (len(values) == len(plural) == len(thing)):
        raise InputError("ious, is_plural and is_thing must have one entry per phrase")
    if len(values) == 0:
        raise InputError("no grounded phrases to score")
    subsets = {
        "All": np.ones(len(values), dtype=bool),
        "Things": thing,
        "Stuff": ~thing,
        "Singulars": ~plural,
        "Plurals": plural,
    }
    ar = {
        name: (average_recall(values[sel]) if sel.any() else None) for name, sel in subsets.items()
    }
    with np.errstate(invalid="ignore"):
        accuracy = float(np.mean(values > 0.5))
    return {
        "AR": ar,
        "accuracy@0.5": accuracy,
        "count": {name: int(sel.sum()) for name, sel in subsets.items()},
    }
