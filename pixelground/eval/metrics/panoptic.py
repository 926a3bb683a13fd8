"""Panoptic quality (PQ, SQ, RQ), computed exactly as panopticapi ``pq_compute``.

Per image (panopticapi ``evaluation.py``, ``OFFSET = 256**3``, ``VOID = 0``):

* Pixel ids come from the RGB-id PNGs; predicted segment areas are counted in the PNG (a segment
  listed in the JSON but absent from the PNG, a PNG id absent from the JSON, or an unknown
  category is an error); GT areas are the ``area`` fields of the GT JSON.
* A GT segment and a predicted segment of the same category match when
  ``IoU = |g & p| / (|p| + |g| - |g & p| - |p & VOID|) > 0.5`` (prediction pixels on unlabelled
  GT pixels do not count against it). Crowd GT segments (``iscrowd = 1``) never match.
* Unmatched non-crowd GT segments are false negatives.
* An unmatched predicted segment is a false positive unless more than half of it lies on VOID
  plus the crowd region of its category (one crowd segment per category: the last one listed).

Per category: PQ = sum(IoU of matches) / (TP + FP/2 + FN/2), SQ = sum(IoU) / TP (0 if no TP),
RQ = TP / (TP + FP/2 + FN/2). All / Things / Stuff average over the categories (all, isthing
= 1, isthing = 0) that have TP + FP + FN > 0, ``n`` of them; categories without any get
0 in ``per_class`` and are left out of the averages. When ``n`` is 0 the averages are 0 here
(panopticapi divides by zero).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.eval.datasets.coco_panoptic import (
    VOID,
    CocoPanoptic,
    decode_panoptic_png,
    load_coco_panoptic,
    read_png_bytes,
)
from pixelground.eval.datasets.mask_png import DEFAULT_WORKERS, ordered_map
from pixelground.eval.metrics.panoptic_pairs import PairCounts, image_pairs, png_pair_counts

#: Images per decoding thread at least: starting and joining a pool costs about one image's
#: work, and 2 threads on 2 images took 4.6 ms at best against 4.2 ms in one (2-core VM).
IMAGES_PER_THREAD = 4


@dataclass
class CategoryStat:
    """Accumulated matches of one category: sum of matched IoUs, TP, FP, FN counts."""

    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0


class PQStat:
    """Per-category PQ statistics, accumulated image by image."""

    def __init__(self) -> None:
        self.per_category: defaultdict[int, CategoryStat] = defaultdict(CategoryStat)

    def __getitem__(self, category_id: int) -> CategoryStat:
        return self.per_category[category_id]

    def add_image(
        self,
        gt_ids: np.ndarray,
        gt_segments: Iterable[Mapping[str, Any]],
        pred_ids: np.ndarray,
        pred_segments: Iterable[Mapping[str, Any]],
        categories: Mapping[int, Any],
        image_id: Any = None,
    ) -> None:
        """Match one image's segments and add them to the statistics.

        Args:
            gt_ids: (H, W) GT segment ids (0 = VOID).
            gt_segments: GT segment infos with ``id``, ``category_id``, ``iscrowd`` and
                ``area`` (the area is counted in ``gt_ids`` when missing).
            pred_ids: (H, W) predicted segment ids (0 = VOID).
            pred_segments: Predicted segment infos with ``id`` and ``category_id``.
            categories: Known category ids.
            image_id: Used in error messages.
        """
        self.add_pairs(
            image_pairs(gt_ids, pred_ids, image_id),
            gt_segments,
            pred_segments,
            categories,
            image_id,
        )

    def add_pairs(
        self,
        pairs: PairCounts,
        gt_segments: Iterable[Mapping[str, Any]],
        pred_segments: Iterable[Mapping[str, Any]],
        categories: Mapping[int, Any],
        image_id: Any = None,
    ) -> None:
        """:meth:`add_image` from the image's :func:`panoptic_pairs.pair_counts` (computed
        elsewhere, e.g. in the thread that decoded the PNGs)."""
        gt_segms = _gt_segments(gt_segments, pairs)
        pred_segms = _pred_segments(pred_segments, pairs, categories, image_id)
        gt_matched, pred_matched = self._match(pairs, gt_segms, pred_segms)
        crowd_by_category = {}
        for gt_label, info in gt_segms.items():
            if gt_label in gt_matched:
                continue
            if info["iscrowd"] == 1:
                crowd_by_category[info["category_id"]] = gt_label
                continue
            self[info["category_id"]].fn += 1
        for pred_label, info in pred_segms.items():
            if pred_label in pred_matched:
                continue
            ignored = pairs.get((VOID, pred_label), 0)
            if info["category_id"] in crowd_by_category:
                ignored += pairs.get((crowd_by_category[info["category_id"]], pred_label), 0)
            if ignored / info["area"] > 0.5:
                continue
            self[info["category_id"]].fp += 1

    def _match(
        self, pairs: PairCounts, gt_segms: dict, pred_segms: dict
    ) -> tuple[set[int], set[int]]:
        gt_matched, pred_matched = set(), set()
        for (gt_label, pred_label), intersection in pairs.items():
            if gt_label not in gt_segms or pred_label not in pred_segms:
                continue
            gt_info, pred_info = gt_segms[gt_label], pred_segms[pred_label]
            if gt_info["iscrowd"] == 1 or gt_info["category_id"] != pred_info["category_id"]:
                continue
            union = (
                pred_info["area"]
                + gt_info["area"]
                - intersection
                - pairs.get((VOID, pred_label), 0)
            )
            iou = intersection / union
            if iou > 0.5:
                stat = self[gt_info["category_id"]]
                stat.tp += 1
                stat.iou += iou
                gt_matched.add(gt_label)
                pred_matched.add(pred_label)
        return gt_matched, pred_matched

    def class_scores(self, label: int) -> dict[str, float] | None:
        """PQ, SQ, RQ of one category; None when it has no TP, FP or FN (left out of means)."""
        stat = self.per_category.get(label)
        if stat is None or stat.tp + stat.fp + stat.fn == 0:
            return None
        denominator = stat.tp + 0.5 * stat.fp + 0.5 * stat.fn
        return {
            "pq": stat.iou / denominator,
            "sq": stat.iou / stat.tp if stat.tp != 0 else 0.0,
            "rq": stat.tp / denominator,
        }

    def summary(self, categories: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
        """``{"All", "Things", "Stuff": {pq, sq, rq, n}, "per_class": {str(id): {...}}}``.

        Each mean sums its categories' scores in ``categories`` order, as panopticapi's
        ``pq_average`` does (the same floats)."""
        scores = {label: self.class_scores(label) for label in categories}
        things = {label for label, info in categories.items() if info.get("isthing") == 1}
        result: dict[str, Any] = {
            "All": _mean(s for s in scores.values() if s is not None),
            "Things": _mean(s for label, s in scores.items() if s is not None and label in things),
            "Stuff": _mean(
                s for label, s in scores.items() if s is not None and label not in things
            ),
        }
        empty, zero = CategoryStat(), {"pq": 0.0, "sq": 0.0, "rq": 0.0}
        per_class = {}
        for label, score in scores.items():
            stat = self.per_category.get(label, empty)
            per_class[str(label)] = {
                **(score or zero),
                "tp": stat.tp,
                "fp": stat.fp,
                "fn": stat.fn,
                "name": categories[label].get("name", str(label)),
                "isthing": int(categories[label].get("isthing", 0)),
            }
        result["per_class"] = per_class
        return result


def _mean(scores: Iterable[dict[str, float]]) -> dict[str, Any]:
    """PQ, SQ, RQ averaged over the categories' scores (summed in order) and their count n;
    zeros when there are none (panopticapi would divide by zero)."""
    pq = sq = rq = 0.0
    n = 0
    for score in scores:
        pq, sq, rq, n = pq + score["pq"], sq + score["sq"], rq + score["rq"], n + 1
    if n == 0:
        return {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}
    return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}


def _gt_segments(
    segments: Iterable[Mapping[str, Any]], pairs: PairCounts
) -> dict[int, dict[str, Any]]:
    out = {}
    for segment in segments:
        info = dict(segment)
        label = int(info["id"])
        info.setdefault("iscrowd", 0)
        if "area" not in info:
            info["area"] = sum(c for (g, _), c in pairs.items() if g == label)
        out[label] = info
    return out


def _pred_segments(
    segments: Iterable[Mapping[str, Any]],
    pairs: PairCounts,
    categories: Mapping[int, Any],
    image_id: Any,
) -> dict[int, dict[str, Any]]:
    out = {int(s["id"]): dict(s) for s in segments}
    areas: dict[int, int] = defaultdict(int)
    for (_, pred_label), count in pairs.items():
        areas[pred_label] += count
    for label, area in areas.items():
        if label not in out:
            if label == VOID:
                continue
            raise InputError(
                f"image {image_id}: segment id {label} is in the prediction PNG but not in its JSON"
            )
        out[label]["area"] = area
        if out[label]["category_id"] not in categories:
            raise InputError(
                f"image {image_id}: segment {label} has unknown category_id "
                f"{out[label]['category_id']}"
            )
    absent = sorted(set(out) - set(areas))
    if absent:
        raise InputError(
            f"image {image_id}: segment ids {absent} are in the prediction JSON but not in its PNG"
        )
    return out


def evaluate_panoptic(
    gt_json: str | Path,
    gt_dir: str | Path | None,
    pred_json: str | Path,
    pred_dir: str | Path | None,
    categories: str | Path | list[dict[str, Any]] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """PQ of a COCO-panoptic prediction against COCO-panoptic ground truth (panopticapi).

    Args:
        gt_json: GT JSON (``annotations``, ``categories``).
        gt_dir: GT PNG folder; None = ``gt_json`` without ``.json``.
        pred_json: Prediction JSON (``annotations`` with ``image_id``, ``file_name``,
            ``segments_info``); one annotation per GT image.
        pred_dir: Prediction PNG folder; None = ``pred_json`` without ``.json``.
        categories: Categories when the GT JSON has none (a list or a JSON file).
        workers: Threads decoding the PNGs and counting their (GT, predicted) pairs
            (default up to 4; at most one per :data:`IMAGES_PER_THREAD` images, fewer images
            are done in this thread); images are matched one by one, in order, as counted.

    Returns:
        JSON-ready ``{"All", "Things", "Stuff": {"pq", "sq", "rq", "n"}, "per_class":
        {"<category id>": {"pq", "sq", "rq", "tp", "fp", "fn", "name", "isthing"}},
        "num_images"}``; PQ values are fractions in [0, 1] (panopticapi prints them x100).
    """
    gt = load_coco_panoptic(gt_json, gt_dir, categories)
    pred = load_coco_panoptic(pred_json, pred_dir, categories=list(gt.categories.values()))
    if not gt.categories:
        raise InputError(f"{gt_json} has no categories; pass categories=")
    missing = [image_id for image_id in gt.annotations if image_id not in pred.annotations]
    if missing:
        raise InputError(f"no prediction for the image with id {missing[0]}")
    stat = PQStat()
    workers = DEFAULT_WORKERS if workers is None else workers
    workers = max(1, min(workers, len(gt.annotations) // IMAGES_PER_THREAD))
    images = ordered_map(
        lambda image_id: _image_pairs(gt, pred, image_id), gt.annotations, workers
    )  # decoded and counted in a thread pool, a few images ahead, matched here in order
    for image_id, pairs in zip(gt.annotations, images, strict=True):
        stat.add_pairs(
            pairs,
            gt.annotations[image_id]["segments_info"],
            pred.annotation(image_id)["segments_info"],
            gt.categories,
            image_id,
        )
    result = stat.summary(gt.categories)
    result["num_images"] = len(gt.annotations)
    return result


def _image_pairs(gt: CocoPanoptic, pred: CocoPanoptic, image_id: int) -> PairCounts:
    """One image's pair counts: straight from the two PNGs' rows when both are RGB(A) id
    PNGs of one size, else from their id maps (Pillow for other PNGs; errors named)."""
    gt_path, pred_path = gt.png_path(image_id), pred.png_path(image_id)
    gt_png, pred_png = read_png_bytes(gt_path), read_png_bytes(pred_path)
    counts = png_pair_counts(gt_png, pred_png)
    if counts is not None:
        return counts
    gt_ids = decode_panoptic_png(gt_png, gt_path, reuse="gt ids")
    return image_pairs(gt_ids, decode_panoptic_png(pred_png, pred_path, "pred ids"), image_id)
