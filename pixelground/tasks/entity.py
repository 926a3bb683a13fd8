"""Entity segmentation ("segment everything"): class-agnostic, non-overlapping masks.

As SAM's automatic mask generator, a grid of point prompts is segmented in batches
and candidates are kept by predicted quality; as CropFormer, this runs on the full image
and on four overlapping corner crops, and the views are fused: crop masks cut by an inner
crop edge are dropped (the object continues outside the crop), duplicates across views
are removed by mask-IoU NMS, and overlaps are resolved by letting better masks claim
pixels first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as coco_mask

from pixelground.backends.base import Segmenter
from pixelground.core.masks import encode_rle
from pixelground.core.media import ImageSource
from pixelground.core.prompts import Point, Prompt
from pixelground.core.result import GroundedResult, Region
from pixelground.tasks.common import image_info, load, model_info

Crop = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels


def point_grid(points_per_side: int, width: int, height: int) -> list[Point]:
    """An n x n grid of points at cell centres of a (height, width) image, row by row."""
    xs = (np.arange(points_per_side) + 0.5) * width / points_per_side
    ys = (np.arange(points_per_side) + 0.5) * height / points_per_side
    return [Point(float(x), float(y)) for y in ys for x in xs]


def corner_crops(width: int, height: int, ratio: float) -> list[Crop]:
    """The full image plus four corner crops, each ``ratio`` of the width and height."""
    cw, ch = max(1, round(width * ratio)), max(1, round(height * ratio))
    return [
        (0, 0, width, height),
        (0, 0, cw, ch),
        (width - cw, 0, width, ch),
        (0, height - ch, cw, height),
        (width - cw, height - ch, width, height),
    ]


def touches_inner_edge(
    mask: np.ndarray, crop: Crop, width: int, height: int, margin: int = 2
) -> bool:
    """Whether a crop-space (h, w) mask reaches a crop edge that is not an image edge."""
    x0, y0, x1, y1 = crop
    checks = [
        (x0 > 0, mask[:, :margin]),
        (y0 > 0, mask[:margin, :]),
        (x1 < width, mask[:, -margin:]),
        (y1 < height, mask[-margin:, :]),
    ]
    return any(inner and edge.any() for inner, edge in checks)


def mask_nms(masks: list[np.ndarray], scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy NMS on mask IoU (computed on RLE, so memory stays small); indices kept, best first."""
    if not masks:
        return []
    rles = [dict(r, counts=r["counts"].encode("ascii")) for r in encode_rle(np.stack(masks))]
    ious = np.asarray(coco_mask.iou(rles, rles, [0] * len(rles))).reshape(len(rles), len(rles))
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(len(masks), dtype=bool)
    keep: list[int] = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= ious[i] > iou_threshold
    return keep


def resolve_overlaps(
    masks: list[np.ndarray], order: list[int], min_area: int, min_kept_fraction: float
) -> list[tuple[int, np.ndarray]]:
    """Paint masks in ``order``; each keeps only pixels not claimed before it.

    Returns:
        (index, trimmed (H, W) mask) for masks that keep at least ``min_area`` pixels and
        ``min_kept_fraction`` of their own area.
    """
    if not masks:
        return []
    claimed = np.zeros_like(masks[0], dtype=bool)
    out = []
    for i in order:
        trimmed = masks[i] & ~claimed
        area = int(trimmed.sum())
        if area >= min_area and area >= min_kept_fraction * max(int(masks[i].sum()), 1):
            out.append((i, trimmed))
            claimed |= trimmed
    return out


@dataclass
class EntitySegmentation:
    """Class-agnostic automatic masks, full image plus four corner crops fused.

    Attributes:
        segmenter: a point-promptable segmenter (SAM, SAM2).
        points_per_side: grid density per view.
        crop_ratio: corner crop size as a fraction of the image; 0 disables the crops.
        quality_threshold: minimum predicted mask quality (IoU score) to keep a candidate.
        nms_threshold: mask IoU above which the weaker of two masks is dropped.
        min_area: smallest kept mask, in pixels of the full image.
        batch_size: prompts sent to the segmenter at once.
    """

    segmenter: Segmenter
    points_per_side: int = 16
    crop_ratio: float = 0.6
    quality_threshold: float = 0.7
    nms_threshold: float = 0.7
    min_area: int = 64
    batch_size: int = 64
    preset: str | None = None

    def __call__(self, image: ImageSource) -> GroundedResult:
        """Segment every entity of ``image``.

        Returns:
            GroundedResult (task "entities") with non-overlapping (H, W) masks, best first;
            scores are the segmenter's predicted quality.
        """
        loaded = load(image)
        pixels = loaded.pixels
        height, width = pixels.shape[:2]
        crops = (
            corner_crops(width, height, self.crop_ratio)
            if self.crop_ratio > 0
            else [(0, 0, width, height)]
        )
        masks: list[np.ndarray] = []
        scores: list[float] = []
        for crop in crops:
            for mask, score in self._segment_view(pixels, crop):
                masks.append(mask)
                scores.append(score)
        score_array = np.asarray(scores, dtype=np.float64)
        order = mask_nms(masks, score_array, self.nms_threshold)
        kept = resolve_overlaps(masks, order, self.min_area, min_kept_fraction=0.5)
        regions = [
            Region(mask=mask, score=float(score_array[i]), attributes={"view": "fused"})
            for i, mask in kept
        ]
        return GroundedResult(
            task="entities",
            image=image_info(loaded),
            regions=regions,
            model=model_info(self.preset, segmenter=self.segmenter),
        )

    def _segment_view(self, pixels: np.ndarray, crop: Crop) -> list[tuple[np.ndarray, float]]:
        """Candidates of one view, deduplicated, pasted back into full-image (H, W) masks."""
        height, width = pixels.shape[:2]
        x0, y0, x1, y1 = crop
        view = np.ascontiguousarray(pixels[y0:y1, x0:x1])
        grid = point_grid(self.points_per_side, x1 - x0, y1 - y0)
        found: list[tuple[np.ndarray, float]] = []  # crop-space masks
        for start in range(0, len(grid), self.batch_size):
            prompts = [Prompt(points=(p,)) for p in grid[start : start + self.batch_size]]
            for candidates in self.segmenter.segment(view, prompts, multimask=True):
                for mask, score in zip(candidates.masks, candidates.scores, strict=True):
                    if score < self.quality_threshold or mask.sum() < self.min_area:
                        continue
                    if not touches_inner_edge(mask, crop, width, height):
                        found.append((mask, float(score)))
            found = self._dedupe(found)  # per batch, so memory stays bounded
        pasted = []
        for mask, score in found:
            full = np.zeros((height, width), dtype=bool)
            full[y0:y1, x0:x1] = mask
            pasted.append((full, score))
        return pasted

    def _dedupe(self, found: list[tuple[np.ndarray, float]]) -> list[tuple[np.ndarray, float]]:
        if not found:
            return []
        keep = mask_nms([m for m, _ in found], np.array([s for _, s in found]), self.nms_threshold)
        return [found[i] for i in keep]
