"""Boxes: shapes, areas, IoU, clipping, conversions and NMS, by hand and on real boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from paths import SHARED_DATA

from pixelground.core.boxes import (
    as_boxes,
    box_area,
    box_centres,
    box_iou,
    clip_boxes,
    nms,
    xywh_to_xyxy,
    xyxy_to_xywh,
)
from pixelground.core.masks import decode_rle, masks_to_boxes


def test_as_boxes_shapes():
    assert as_boxes([1, 2, 3, 4]).shape == (1, 4)
    assert as_boxes([]).shape == (0, 4)
    assert as_boxes(np.zeros((0, 4))).shape == (0, 4)
    assert as_boxes([[1, 2, 3, 4], [5, 6, 7, 8]]).dtype == np.float64
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        as_boxes([[1, 2, 3]])


def test_box_area_hand_values():
    boxes = [[0, 0, 2, 3], [1, 1, 1, 5], [5, 5, 2, 2], [0.5, 0, 1, 4]]
    assert box_area(boxes).tolist() == [6, 0, 0, 2]  # zero-width and inverted boxes: 0


def test_box_iou_hand_values():
    a = [[0, 0, 2, 2], [0, 0, 1, 1]]
    b = [[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6], [3, 3, 3, 3]]
    iou = box_iou(a, b)
    assert iou.shape == (2, 4)
    assert iou[0, 0] == pytest.approx(1 / 7)  # overlap 1, union 4 + 4 - 1
    assert iou[0, 1] == 1.0
    assert iou[1, 1] == pytest.approx(1 / 4)  # nested box
    assert iou[0, 2] == 0.0  # disjoint
    assert iou[0, 3] == 0.0  # empty box
    assert box_iou([[2, 2, 2, 2]], [[2, 2, 2, 2]])[0, 0] == 0.0  # empty union: 0
    touching = box_iou([[0, 0, 1, 1]], [[1, 0, 2, 1]])[0, 0]
    assert touching == 0.0  # boxes sharing an edge do not overlap


def test_clip_boxes():
    clipped = clip_boxes([[-5, -1, 30, 8], [2, 3, 4, 5]], height=10, width=20)
    assert clipped.tolist() == [[0, 0, 20, 8], [2, 3, 4, 5]]


def test_xywh_conversions_round_trip_and_do_not_mutate():
    xywh = np.array([[10, 20, 5, 7]], dtype=np.float64)
    xyxy = xywh_to_xyxy(xywh)
    assert xyxy.tolist() == [[10, 20, 15, 27]]
    assert xywh.tolist() == [[10, 20, 5, 7]]
    assert xyxy_to_xywh(xyxy).tolist() == xywh.tolist()


def test_coco_bboxes_of_real_segments_convert_to_mask_boxes():
    data = json.loads(
        (SHARED_DATA / "panopticapi_sample" / "panoptic_coco_detection_format.json").read_text()
    )
    anns = data["annotations"]
    masks = [decode_rle(a["segmentation"]) for a in anns if a["image_id"] == 142238]
    bboxes = [a["bbox"] for a in anns if a["image_id"] == 142238]
    mask_boxes = np.concatenate([masks_to_boxes(m) for m in masks])
    assert np.array_equal(xywh_to_xyxy(bboxes), mask_boxes)
    areas = box_area(mask_boxes)
    assert areas.tolist() == [w * h for _, _, w, h in bboxes]
    # a mask fills at most its box
    assert all(m.sum() <= area for m, area in zip(masks, areas, strict=True))


def reference_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Plain greedy NMS written with loops, for comparison."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        x0, y0, x1, y1 = boxes[i]
        suppressed = False
        for j in keep:
            u0, v0, u1, v1 = boxes[j]
            iw = max(0.0, min(x1, u1) - max(x0, u0))
            ih = max(0.0, min(y1, v1) - max(y0, v0))
            inter = iw * ih
            union = (x1 - x0) * (y1 - y0) + (u1 - u0) * (v1 - v0) - inter
            if union > 0 and inter / union > threshold:
                suppressed = True
                break
        if not suppressed:
            keep.append(i)
    return keep


def test_nms_hand_example():
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]]
    scores = [0.9, 0.8, 0.7, 0.95]
    # box 3 (0.95) wins; box 0 duplicates it; box 1 overlaps it by 81/119 = 0.68
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms(boxes, scores, 0.7).tolist() == [3, 1, 2]
    # an IoU equal to the threshold is kept (only "more than" suppresses)
    assert nms([[0, 0, 2, 1], [1, 0, 3, 1]], [1.0, 0.5], 1 / 3).tolist() == [0, 1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    assert nms(boxes, scores, 0.5).dtype == np.int64


def test_nms_matches_a_loop_implementation_on_random_boxes():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, size=(200, 2))
    wh = rng.uniform(5, 40, size=(200, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.uniform(size=200)
    for threshold in (0.1, 0.3, 0.5, 0.8):
        assert nms(boxes, scores, threshold).tolist() == reference_nms(boxes, scores, threshold)


def test_box_centres_are_the_middles_of_the_boxes():
    boxes = np.array([[0, 0, 10, 4], [5, 6, 7, 20]], dtype=float)
    assert box_centres(boxes).tolist() == [[5.0, 2.0], [6.0, 13.0]]
    assert box_centres([1, 2, 3, 4]).tolist() == [[2.0, 3.0]]
    assert box_centres(np.zeros((0, 4))).shape == (0, 2)
