"""Semantic mIoU / pixel accuracy and class-agnostic entity mask AP: hand cases and properties."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from pixelground.core.errors import InputError
from pixelground.core.masks import encode_rle
from pixelground.eval.metrics.entity import evaluate_entity
from pixelground.eval.metrics.semantic import (
    ConfusionMatrix,
    evaluate_semantic,
    evaluate_semantic_folders,
    semantic_scores,
)

GT = np.array([[0, 0, 1, 1], [0, 2, 2, 255], [1, 1, 1, 255]])
PRED = np.array([[0, 1, 1, 1], [0, 2, 0, 2], [1, 1, 7, 2]])  # 7: outside the 3 classes


def test_confusion_matrix_by_hand():
    matrix = ConfusionMatrix(3)
    matrix.update(PRED, GT)
    # rows GT 0, 1, 2; columns predicted 0, 1, 2, out-of-range; the two 255 pixels are dropped
    expected = [[2, 1, 0, 0], [0, 4, 0, 1], [1, 0, 1, 0]]
    np.testing.assert_array_equal(matrix.matrix, expected)


def test_mmseg_and_detectron2_scores_by_hand():
    matrix = np.array([[2, 1, 0, 0], [0, 4, 0, 1], [1, 0, 1, 0]])
    ious = [2 / (3 + 3 - 2), 4 / (5 + 5 - 4), 1 / (2 + 1 - 1)]
    accs = [2 / 3, 4 / 5, 1 / 2]
    for convention in ("mmseg", "detectron2"):
        scores = semantic_scores(matrix, ["a", "b", "c"], convention)
        assert scores["mIoU"] == pytest.approx(np.mean(ious))
        assert scores["mAcc"] == pytest.approx(np.mean(accs))
        assert scores["aAcc"] == pytest.approx(7 / 10)
        assert scores["per_class"]["b"]["iou"] == pytest.approx(ious[1])
        assert scores["fwIoU"] == pytest.approx(np.dot(ious, [3 / 10, 5 / 10, 2 / 10]))
        assert scores["pixels"] == 10


def test_conventions_differ_on_a_class_predicted_but_absent_from_gt():
    # class 2 never in the GT but predicted once: mmseg counts IoU 0, detectron2 skips it
    matrix = np.array([[3, 0, 1], [0, 2, 0], [0, 0, 0]])
    mm = semantic_scores(matrix, convention="mmseg")
    d2 = semantic_scores(matrix, convention="detectron2")
    assert mm["mIoU"] == pytest.approx((3 / 4 + 1 + 0) / 3)
    assert d2["mIoU"] == pytest.approx((3 / 4 + 1) / 2)
    assert mm["mAcc"] == d2["mAcc"] == pytest.approx((3 / 4 + 1) / 2)
    assert mm["per_class"]["2"]["acc"] is None and mm["per_class"]["2"]["iou"] == 0.0
    empty = np.zeros((3, 3), int)
    empty[0, 0] = 5
    assert semantic_scores(empty)["mIoU"] == 1.0  # classes absent everywhere are skipped


def test_perfect_prediction_and_reduce_zero_label():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, (20, 30))
    gt[0, :] = 255
    result = evaluate_semantic([(np.where(gt == 255, 0, gt), gt)], 5)
    assert result["mIoU"] == result["mAcc"] == result["aAcc"] == 1.0
    reduced = ConfusionMatrix(4, reduce_zero_label=True)
    reduced.update(np.array([[0, 1, 3]]), np.array([[0, 1, 2]]))  # GT 0 -> ignored, 1 -> 0, 2 -> 1
    np.testing.assert_array_equal(reduced.matrix[:2, :4], [[0, 1, 0, 0], [0, 0, 0, 1]])
    with pytest.raises(InputError, match="outside"):
        ConfusionMatrix(3).update(np.zeros((1, 2)), np.array([[0, 9]]))
    with pytest.raises(InputError):
        ConfusionMatrix(3).update(np.zeros((2, 2)), np.zeros((1, 2)))


def test_folders_of_voc_label_pngs(shared_data: Path, tmp_path):
    gt_dir = shared_data / "labelme_voc_instances" / "data_dataset_voc" / "SegmentationClass"
    perfect = evaluate_semantic_folders(gt_dir, gt_dir, 21)
    assert perfect["mIoU"] == perfect["aAcc"] == 1.0 and perfect["num_images"] == 3
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    matrix = np.zeros((21, 22), np.int64)
    for path in sorted(gt_dir.glob("*.png")):
        gt = np.asarray(Image.open(path))
        pred = np.where(gt == 15, 0, gt)  # person predicted as background
        pred = np.where(pred == 255, 0, pred).astype(np.uint8)
        Image.fromarray(pred).save(pred_dir / path.name)
        keep = gt != 255
        np.add.at(matrix, (gt[keep].astype(int), pred[keep].astype(int)), 1)
    result = evaluate_semantic_folders(gt_dir, pred_dir, 21)
    assert result["per_class"]["15"]["iou"] == 0.0
    assert result["mIoU"] == pytest.approx(semantic_scores(matrix)["mIoU"])
    with pytest.raises(InputError, match="lacks"):
        evaluate_semantic_folders(gt_dir, tmp_path, 21)


@pytest.fixture(scope="module")
def labelme_coco(shared_data: Path) -> tuple[dict, list[np.ndarray]]:
    path = shared_data / "labelme_voc_instances" / "data_dataset_coco" / "annotations.json"
    dataset = json.loads(path.read_text())
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
    masks = [coco.annToMask(a).astype(bool) for a in dataset["annotations"]]
    return dataset, masks


def test_entity_ap_is_one_for_the_ground_truth(labelme_coco):
    dataset, masks = labelme_coco
    preds = [
        {"image_id": a["image_id"], "segmentation": encode_rle(m)[0], "score": 0.9,
         "category_id": 99}  # category ids are ignored
        for a, m in zip(dataset["annotations"], masks, strict=True)
    ]  # fmt: skip
    result = evaluate_entity(dataset, preds)
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
        assert result[key] == pytest.approx(1.0), key
    assert result["num_gt"] == 12 and result["num_predictions"] == 12
    empty = evaluate_entity(dataset, [])
    assert empty["AP"] == 0.0 and empty["AR100"] == 0.0


def test_entity_predictions_as_polygons_or_uncompressed_rle(labelme_coco):
    """COCO results may carry polygons or uncompressed RLE: scored as the same masks."""
    dataset, masks = labelme_coco
    polygons = [a for a in dataset["annotations"] if isinstance(a["segmentation"], list)]
    assert polygons, "the sample's annotations are polygons"
    as_polygons = [
        {"image_id": a["image_id"], "segmentation": a["segmentation"], "score": 0.9}
        for a in polygons
    ]
    result = evaluate_entity(dataset, as_polygons)
    assert result["num_predictions"] == len(polygons)
    assert result["AP"] == pytest.approx(len(polygons) / len(dataset["annotations"]), abs=0.05)
    uncompressed = []
    for a, m in zip(dataset["annotations"], masks, strict=True):
        flat = m.flatten(order="F").astype(np.uint8)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])) != 0)
        counts = np.diff(np.concatenate([[0], edges])).tolist()
        rle = {"size": list(m.shape), "counts": counts if flat[0] == 0 else [0, *counts]}
        uncompressed.append({"image_id": a["image_id"], "segmentation": rle, "score": 0.9})
    assert evaluate_entity(dataset, uncompressed)["AP"] == pytest.approx(1.0)
    for bad in ([[1, 2, 3]], {"counts": 5}, "mask"):
        with pytest.raises(InputError, match="segmentation"):
            evaluate_entity(dataset, [{"image_id": 1, "segmentation": bad, "score": 1.0}])


def test_entity_ap_by_hand_with_101_point_interpolation():
    image = {"id": 1, "height": 40, "width": 40}
    a = np.zeros((40, 40), bool)
    a[0:10, 0:10] = True
    b = np.zeros((40, 40), bool)
    b[20:30, 20:30] = True
    shifted = np.roll(b, 2, axis=1)  # IoU with b = 80 / 120 = 0.667
    gt = {"images": [image], "annotations": [
        {"image_id": 1, "segmentation": encode_rle(m)[0], "area": 100.0, "iscrowd": 0,
         "bbox": [0, 0, 10, 10], "category_id": c} for m, c in ((a, 3), (b, 5))]}  # fmt: skip
    preds = [
        {"image_id": 1, "segmentation": encode_rle(a)[0], "score": 0.9},
        {"image_id": 1, "segmentation": encode_rle(shifted)[0], "score": 0.8},
    ]
    result = evaluate_entity(gt, preds)
    # IoU thresholds .50 .55 .60 .65: both match (AP 1); .70 .. .95: precision 1 up to recall
    # 0.5 then nothing, i.e. 51 of the 101 recall points.
    assert result["AP50"] == pytest.approx(1.0)
    assert result["AP75"] == pytest.approx(51 / 101)
    assert result["AP"] == pytest.approx((4 + 6 * 51 / 101) / 10)
    assert result["APm"] == -1.0  # no medium GT: COCOeval's -1
    with pytest.raises(InputError, match="image ids"):
        evaluate_entity(gt, [dict(preds[0], image_id=7)])
    with pytest.raises(InputError):
        evaluate_entity(gt, [{"image_id": 1}])
