"""Masks against real annotations: RLE round trips, areas, boxes, polygons, IoU."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
from paths import SHARED_DATA
from PIL import Image, ImageDraw

from pixelground.core.boxes import xyxy_to_xywh
from pixelground.core.masks import (
    as_mask_stack,
    decode_rle,
    encode_rle,
    mask_area,
    mask_iou,
    masks_to_boxes,
    polygons_to_mask,
    resize_mask,
    small_pieces,
    split_at_necks,
)

DAVIS = SHARED_DATA / "davis2016_blackswan"
FIRST_FRAMES = sorted((DAVIS / "first_frames" / "Annotations").glob("*/00000.png"))
SWAN_GT = sorted((DAVIS / "Annotations" / "480p" / "blackswan").glob("*.png"))
PANOPTIC = SHARED_DATA / "panopticapi_sample"
LABELME = SHARED_DATA / "labelme_voc_instances"


def davis_mask(path) -> np.ndarray:
    """A DAVIS-2016 GT mask: mode L, 255 = object, 0 = background."""
    image = Image.open(path)
    assert image.mode == "L"
    values = np.asarray(image)
    assert set(np.unique(values).tolist()) <= {0, 255}
    return values == 255


def reference_counts(counts: str) -> list[int]:
    """Run lengths from a COCO compressed counts string, decoded independently of pycocotools.

    Each value is 5-bit chunks (+48 as ASCII) with a continuation bit 0x20 and a sign bit 0x10
    in the last chunk; from the third value on, values are stored as the difference to the
    value two places earlier.
    """
    values: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            chunk = ord(counts[pos]) - 48
            value |= (chunk & 0x1F) << shift
            more = bool(chunk & 0x20)
            pos += 1
            shift += 5
            if not more and chunk & 0x10:
                value |= -1 << shift
        if len(values) > 2:
            value += values[-2]
        values.append(value)
    return values


def reference_decode(rle: dict) -> np.ndarray:
    """(H, W) mask from RLE: alternating runs of 0 and 1 over the column-major pixel order."""
    height, width = rle["size"]
    runs = reference_counts(rle["counts"])
    flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(bool)
    assert flat.size == height * width
    return flat.reshape((width, height)).T


def nonzero_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


# --- DAVIS-2016 GT (mode L, 255 = foreground) --------------------------------------------


@pytest.mark.parametrize("path", FIRST_FRAMES, ids=lambda p: p.parent.name)
def test_davis_mask_rle_round_trip_area_and_box(path):
    mask = davis_mask(path)
    (rle,) = encode_rle(mask)
    assert rle["size"] == [480, 854] and isinstance(rle["counts"], str)
    assert np.array_equal(decode_rle(rle), mask)
    assert np.array_equal(reference_decode(rle), mask)  # column-major, COCO string format
    assert mask_area(mask).tolist() == [np.count_nonzero(mask)]
    assert masks_to_boxes(mask)[0].tolist() == nonzero_box(mask)


def test_davis_clip_as_a_stack_round_trips():
    stack = np.stack([davis_mask(p) for p in SWAN_GT])
    assert stack.shape == (50, 480, 854)
    rles = encode_rle(stack)
    assert len(rles) == 50
    assert np.array_equal(decode_rle(rles), stack)
    assert mask_area(stack).tolist() == [int(np.count_nonzero(m)) for m in stack]
    assert masks_to_boxes(stack).tolist() == [nonzero_box(m) for m in stack]
    assert [r["counts"] for r in encode_rle(decode_rle(rles))] == [r["counts"] for r in rles]


def test_davis_iou_of_consecutive_frames_matches_pixel_counts():
    a, b = davis_mask(SWAN_GT[0]), davis_mask(SWAN_GT[1])
    expected = np.logical_and(a, b).sum() / np.logical_or(a, b).sum()
    iou = mask_iou(a, b)
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(expected, abs=1e-12)
    assert 0.9 < iou[0, 0] < 1.0  # the swan moves a little between frames
    self_iou = mask_iou(np.stack([a, b]), np.stack([a, b]))
    assert np.allclose(np.diag(self_iou), 1.0)
    assert np.allclose(self_iou, self_iou.T)


# --- SA-V masklets (COCO RLE, 848 x 480) ------------------------------------------------


@lru_cache(maxsize=2)
def sav(name: str) -> dict:
    return json.loads((SHARED_DATA / "sav_example" / f"sav_000001_{name}.json").read_text())


@pytest.mark.parametrize("name", ["manual", "auto"])
def test_sav_masklets_decode_then_encode_to_identical_counts(name):
    data = sav(name)
    empty = 0
    for frame in data["masklet"]:
        masks = decode_rle(frame)
        assert masks.shape == (len(frame), 848, 480) and masks.dtype == bool
        again = encode_rle(masks)
        assert [r["counts"] for r in again] == [r["counts"] for r in frame]
        assert [r["size"] for r in again] == [r["size"] for r in frame]
        empty += int((mask_area(masks) == 0).sum())
    assert len(data["masklet"]) == 121
    assert empty > 0  # objects invisible on some frames: empty masks survive the trip


def test_sav_single_rle_and_list_decode_agree():
    frame = sav("manual")["masklet"][60]
    stack = decode_rle(frame)
    for i, rle in enumerate(frame):
        one = decode_rle(rle)
        assert one.shape == (848, 480)
        assert np.array_equal(one, stack[i])
        assert np.array_equal(reference_decode(rle), one)
        assert decode_rle({**rle, "counts": rle["counts"].encode()}).sum() == one.sum()


# --- COCO panoptic in detection (RLE) format ----------------------------------------------


def panoptic_ids(file_name: str) -> np.ndarray:
    rgb = np.asarray(Image.open(PANOPTIC / "panoptic_examples" / file_name), dtype=np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def test_panoptic_detection_rles_match_areas_boxes_and_png_segments():
    detection = json.loads((PANOPTIC / "panoptic_coco_detection_format.json").read_text())
    panoptic = json.loads((PANOPTIC / "panoptic_examples.json").read_text())
    checked = 0
    for image in panoptic["annotations"]:
        ids = panoptic_ids(image["file_name"])
        anns = [a for a in detection["annotations"] if a["image_id"] == image["image_id"]]
        assert len(anns) == len(image["segments_info"])
        for segment, ann in zip(image["segments_info"], anns, strict=True):
            mask = decode_rle(ann["segmentation"])
            assert np.array_equal(mask, ids == segment["id"])
            assert mask_area(mask)[0] == ann["area"] == segment["area"]
            assert xyxy_to_xywh(masks_to_boxes(mask))[0].tolist() == ann["bbox"]
            assert encode_rle(mask)[0]["counts"] == ann["segmentation"]["counts"]
            checked += 1
    assert checked == 50


# --- labelme polygons vs its VOC PNGs -------------------------------------------------------


def labelme_raster(polygons, height: int, width: int) -> np.ndarray:
    """What labelme's shape_to_mask does: PIL polygon with fill=1 AND outline=1, unioned."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        draw.polygon([tuple(poly[i : i + 2]) for i in range(0, len(poly), 2)], fill=1, outline=1)
    return np.asarray(canvas).astype(bool)


def labelme_coco():
    data = json.loads((LABELME / "data_dataset_coco" / "annotations.json").read_text())
    images = {image["id"]: image for image in data["images"]}
    return [(ann, images[ann["image_id"]]) for ann in data["annotations"]]


def test_labelme_coco_area_and_bbox_are_those_of_its_pil_raster():
    # labelme2coco stores the polygon points, but area and bbox of its own PIL raster;
    # reproducing that raster exactly tells us what the expected relation is.
    pairs = labelme_coco()
    assert len(pairs) == 12
    for ann, image in pairs:
        pil = labelme_raster(ann["segmentation"], image["height"], image["width"])
        assert mask_area(pil)[0] == ann["area"]
        assert xyxy_to_xywh(masks_to_boxes(pil))[0].tolist() == ann["bbox"]


def test_labelme_polygons_rasterise_close_to_labelme_and_to_the_voc_pngs():
    voc = LABELME / "data_dataset_voc"
    matched: dict[str, set[int]] = {}
    for ann, image in labelme_coco():
        height, width = image["height"], image["width"]
        ours = polygons_to_mask(ann["segmentation"], height, width)
        pil = labelme_raster(ann["segmentation"], height, width)
        # pycocotools does not paint PIL's outline: a bit smaller, same shape
        assert ours.sum() < pil.sum()
        assert (ours & ~pil).sum() <= 0.005 * ours.sum()
        assert mask_iou(ours, pil)[0, 0] >= 0.93
        stem = image["file_name"].split("/")[-1].rsplit(".", 1)[0]
        objects = np.asarray(Image.open(voc / "SegmentationObject" / f"{stem}.png"))
        classes = np.asarray(Image.open(voc / "SegmentationClass" / f"{stem}.png"))
        ids = [v for v in np.unique(objects).tolist() if v != 0]
        ious = mask_iou(ours, np.stack([objects == v for v in ids]))[0]
        best = ids[int(ious.argmax())]
        assert ious.max() >= 0.93
        assert best not in matched.setdefault(stem, set())  # one object per instance
        matched[stem].add(best)
        # the class map agrees: the instance's pixels carry its category id
        labels, counts = np.unique(classes[objects == best], return_counts=True)
        assert labels[counts.argmax()] == ann["category_id"]
    assert sum(len(v) for v in matched.values()) == 12


def test_labelme_ignore_regions_are_255_in_the_class_png_and_0_in_the_object_png():
    voc = LABELME / "data_dataset_voc"
    classes = np.asarray(Image.open(voc / "SegmentationClass" / "2011_000003.png"))
    objects = np.asarray(Image.open(voc / "SegmentationObject" / "2011_000003.png"))
    ignore = classes == 255
    assert ignore.sum() > 0
    assert (objects[ignore] == 0).all()


# --- small arrays with hand-computed values -------------------------------------------------


def test_encode_small_mask_counts_are_column_major_runs():
    mask = np.array([[0, 1, 1], [0, 1, 0]], dtype=bool)
    # column-major order: (0,0)=0 (1,0)=0 | (0,1)=1 (1,1)=1 (0,2)=1 | (1,2)=0
    (rle,) = encode_rle(mask)
    assert rle["size"] == [2, 3]
    assert reference_counts(rle["counts"]) == [2, 3, 1]
    assert np.array_equal(decode_rle(rle), mask)


def test_decode_uncompressed_list_counts_as_in_crowd_annotations():
    rle = {"size": [2, 3], "counts": [1, 2, 3]}
    expected = np.array([[0, 1, 0], [1, 0, 0]], dtype=bool)
    assert np.array_equal(decode_rle(rle), expected)
    assert np.array_equal(decode_rle([rle, rle]), np.stack([expected, expected]))


def test_mask_iou_hand_computed():
    a = np.zeros((3, 4), dtype=bool)
    b = np.zeros((3, 4), dtype=bool)
    a[0, 0:4] = True  # 4 pixels
    b[0, 2:4] = True  # 2 pixels, both inside a
    b[1, 2] = True  # 1 more outside a
    c = np.zeros((3, 4), dtype=bool)
    iou = mask_iou(np.stack([a, b, c]), np.stack([b, c]))
    assert iou.shape == (3, 2)
    assert iou[0, 0] == pytest.approx(2 / 5)  # |a & b| = 2, |a | b| = 5
    assert iou[1, 0] == 1.0
    assert iou[0, 1] == 0.0 and iou[1, 1] == 0.0  # against an empty mask
    assert iou[2, 1] == 0.0  # both empty: empty_value
    assert mask_iou(c, c, empty_value=1.0)[0, 0] == 1.0
    with pytest.raises(ValueError, match="sizes differ"):
        mask_iou(a, np.zeros((4, 3), dtype=bool))


def test_masks_to_boxes_are_exclusive_and_empty_is_zero():
    mask = np.zeros((2, 5, 6), dtype=bool)
    mask[0, 3, 4] = True
    boxes = masks_to_boxes(mask)
    assert boxes.dtype == np.float32
    assert boxes.tolist() == [[4, 3, 5, 4], [0, 0, 0, 0]]


def test_polygons_to_mask_uses_pixel_corners():
    square = polygons_to_mask([[0, 0, 4, 0, 4, 4, 0, 4]], 6, 6)
    assert square.sum() == 16 and square[:4, :4].all()
    assert masks_to_boxes(square)[0].tolist() == [0, 0, 4, 4]
    two = polygons_to_mask([[0, 0, 2, 0, 2, 2, 0, 2], [4, 4, 6, 4, 6, 6, 4, 6]], 6, 6)
    assert two.sum() == 8
    assert not polygons_to_mask([[1, 1, 3, 3]], 6, 6).any()  # fewer than 3 points


def test_resize_mask_nearest_keeps_blocks_and_rank():
    mask = np.array([[1, 0], [0, 1]], dtype=bool)
    big = resize_mask(mask, 4, 6)
    assert big.shape == (4, 6)
    assert np.array_equal(big, np.kron(mask, np.ones((2, 3), dtype=bool)))
    stack = resize_mask(np.stack([mask, ~mask]), 4, 6)
    assert stack.shape == (2, 4, 6) and np.array_equal(stack[1], ~big)
    real = davis_mask(SWAN_GT[0])
    half = resize_mask(real, 240, 427)
    assert half.sum() == pytest.approx(real.sum() / 4, rel=0.02)


def test_small_pieces_are_8_connected_pieces_under_the_area():
    mask = np.zeros((8, 8), dtype=bool)
    mask[0:3, 0:3] = True  # 9 pixels
    mask[5, 5] = mask[6, 6] = True  # 2 pixels, touching at a corner: one piece
    mask[7, 0] = True  # 1 pixel
    small = small_pieces(mask, 3)
    assert small.shape == mask.shape and small.dtype == bool
    assert np.flatnonzero(small).tolist() == [5 * 8 + 5, 6 * 8 + 6, 7 * 8 + 0]
    assert not small_pieces(mask, 2)[5, 5] and small_pieces(mask, 2)[7, 0]
    assert small_pieces(mask, 10).sum() == mask.sum()
    assert not small_pieces(mask, 0).any()
    stack = small_pieces(np.stack([mask, np.zeros_like(mask)]), 3)
    assert stack.shape == (2, 8, 8) and np.array_equal(stack[0], small) and not stack[1].any()


def test_as_mask_stack_shapes():
    assert as_mask_stack(np.zeros((3, 4), dtype=np.uint8)).shape == (1, 3, 4)
    assert as_mask_stack(np.ones((2, 3, 4))).dtype == bool
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        as_mask_stack(np.zeros((1, 2, 3, 4)))
    with pytest.raises(ValueError, match="at least one"):
        decode_rle([])


def test_empty_stacks_have_empty_answers():
    # N = 0 is a normal outcome ("no target"); reshape(0, -1) used to raise here
    none = np.zeros((0, 3, 4), dtype=bool)
    some = np.ones((2, 3, 4), dtype=bool)
    assert mask_area(none).shape == (0,)
    assert masks_to_boxes(none).shape == (0, 4)
    assert mask_iou(none, some).shape == (0, 2)
    assert mask_iou(some, none).shape == (2, 0)
    assert encode_rle(none) == []


def _disk(side: int, cy: float, cx: float, radius: float) -> np.ndarray:
    rows, cols = np.indices((side, side))
    return (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2


def test_two_touching_disks_are_split_at_the_neck_into_the_whole_piece():
    piece = _disk(64, 32, 18, 12) | _disk(64, 32, 45, 12)
    piece[31:33, 28:36] = True  # a 2-pixel bridge
    parts = split_at_necks(piece, depth=4, min_area=30)
    assert len(parts) == 2
    assert not (parts[0] & parts[1]).any() and np.array_equal(parts[0] | parts[1], piece)
    left = parts[0] if parts[0][32, 18] else parts[1]
    assert left[32, 10] and not left[32, 50]


def test_one_shape_stays_whole_however_concave():
    rows, cols = np.indices((64, 64))
    angle, radius = np.arctan2(rows - 32, cols - 32), np.hypot(rows - 32, cols - 32)
    star = radius <= 14 + 8 * np.cos(5 * angle)  # five arms that taper to their tips
    assert [p.sum() for p in split_at_necks(star, depth=4, min_area=30)] == [star.sum()]
    disk = _disk(64, 32, 32, 10)
    assert len(split_at_necks(disk, depth=20, min_area=30)) == 1  # eroded away: whole


def test_a_piece_is_not_split_into_cores_smaller_than_the_least_area():
    piece = _disk(64, 32, 18, 12) | _disk(64, 32, 45, 3)
    piece[31:33, 28:44] = True
    assert len(split_at_necks(piece, depth=4, min_area=30)) == 1
    piece = _disk(64, 32, 18, 12) | _disk(64, 32, 45, 12)
    piece[28:37, 26:38] = True  # a neck as wide as the depth can reach: not split
    assert len(split_at_necks(piece, depth=2, min_area=30)) == 1
