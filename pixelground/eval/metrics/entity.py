"""Class-agnostic mask AP for entity segmentation ("segment everything").

As in Open-World Entity Segmentation / CropFormer: the COCO instance evaluation of pycocotools
(``COCOeval``, ``iouType="segm"``) with every GT and predicted category id set to 1, so a
prediction matches any GT entity. Everything else is COCO's own definition: IoU thresholds
0.50:0.05:0.95, 101-point interpolated precision, at most ``max_dets`` predictions per image
by score, crowd GT (``iscrowd = 1``) matched but not counted, area ranges small (< 32^2),
medium, large (> 96^2) from the GT ``area`` fields. GT annotation ids are renumbered 1..N
(pycocotools takes a matched GT id of 0 for "unmatched", which labelme-style files with id 0
would otherwise hit). Numbers are fractions in [0, 1]; a value of
-1 means COCO had nothing to average (no GT in that area range), exactly as COCOeval reports.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError

ENTITY_CATEGORY = {"id": 1, "name": "entity"}
_AP_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _load(source: str | Path | Any, what: str) -> Any:
    if isinstance(source, (str, Path)):
        try:
            return json.loads(Path(source).read_text())
        except FileNotFoundError as error:
            raise InputError(f"{what} file {source} not found") from error
        except json.JSONDecodeError as error:
            raise InputError(f"{what} file {source} is not valid JSON: {error}") from error
    return source


def _agnostic_gt(dataset: Mapping[str, Any]) -> dict[str, Any]:
    if "annotations" not in dataset or "images" not in dataset:
        raise InputError("the GT must be a COCO instances file with 'images' and 'annotations'")
    out = {key: value for key, value in dataset.items() if key != "annotations"}
    out["categories"] = [dict(ENTITY_CATEGORY)]
    out["annotations"] = []
    for index, annotation in enumerate(dataset["annotations"]):
        # COCOeval treats a matched GT id of 0 as "no match": number the GT 1..N.
        annotation = dict(annotation, category_id=1, id=index + 1)
        annotation.setdefault("iscrowd", 0)
        out["annotations"].append(annotation)
    return out


def _compressed_rle(segmentation: Any, size: tuple[int, int] | None) -> dict[str, Any]:
    """A result's ``segmentation`` as compressed COCO RLE: compressed RLE as is (counts as
    bytes), uncompressed RLE and polygons converted at the GT image's (height, width)."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, Mapping) and isinstance(segmentation.get("counts"), str | bytes):
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        return rle
    is_rle = isinstance(segmentation, Mapping) and isinstance(segmentation.get("counts"), list)
    is_polygons = isinstance(segmentation, list) and all(
        isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segmentation
    )
    if not (is_rle or is_polygons):
        raise InputError(
            "a prediction's 'segmentation' must be COCO RLE or polygons [[x0, y0, x1, y1, ...]]"
        )
    if size is None:
        raise InputError("a prediction names an image id not in the GT")
    try:
        if is_rle:
            return mask_utils.frPyObjects(dict(segmentation), *size)
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, *size))
    except (TypeError, ValueError) as error:
        raise InputError(f"a prediction's 'segmentation' cannot be read: {error}") from error


def _agnostic_predictions(
    predictions: Sequence[Mapping[str, Any]], sizes: Mapping[Any, tuple[int, int]]
) -> list[dict[str, Any]]:
    out = []
    for prediction in predictions:
        if not isinstance(prediction, Mapping) or not {"image_id", "segmentation", "score"} <= set(
            prediction
        ):
            raise InputError("each prediction needs 'image_id', 'segmentation' and 'score'")
        image_id = prediction["image_id"]
        out.append(
            {
                "image_id": image_id,
                "segmentation": _compressed_rle(prediction["segmentation"], sizes.get(image_id)),
                "score": float(prediction["score"]),
                "category_id": 1,
            }
        )
    return out


def _coco_objects(gt: dict[str, Any], predictions: list[dict[str, Any]]) -> tuple[Any, Any]:
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        unknown = {p["image_id"] for p in predictions} - set(coco_gt.getImgIds())
        if unknown:
            raise InputError(f"predictions for image ids not in the GT: {sorted(unknown)[:5]}")
        if predictions:
            coco_dt = coco_gt.loadRes(predictions)
        else:  # loadRes fails on an empty list; an empty result set is what it would mean
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": copy.deepcopy(gt["images"]),
                "categories": [dict(ENTITY_CATEGORY)],
                "annotations": [],
            }
            coco_dt.createIndex()
    return coco_gt, coco_dt


def evaluate_entity(
    gt: str | Path | Mapping[str, Any],
    predictions: str | Path | Sequence[Mapping[str, Any]],
    max_dets: Sequence[int] = (1, 10, 100),
) -> dict[str, Any]:
    """Class-agnostic COCO mask AP.

    Args:
        gt: COCO instances JSON (path or dict): ``images``, ``annotations`` with polygon or RLE
            ``segmentation``, ``area``, ``iscrowd``. Category ids are ignored.
        predictions: COCO results (path or list): ``{"image_id", "segmentation", "score"}``
            with compressed or uncompressed RLE or polygons; category ids are ignored.
        max_dets: The three per-image detection limits of COCOeval (AP uses the last).

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR<d0>", "AR<d1>", "AR<d2>", "ARs",
        "ARm", "ARl", "num_images", "num_gt", "num_predictions"}``.
    """
    from pycocotools.cocoeval import COCOeval

    if len(max_dets) != 3:
        raise InputError(f"max_dets needs three limits like (1, 10, 100), got {list(max_dets)}")
    gt_dataset = _agnostic_gt(_load(gt, "GT"))
    loaded = _load(predictions, "prediction")
    if not isinstance(loaded, list):
        raise InputError("predictions must be a list of COCO result dicts")
    sizes = {
        img["id"]: (img["height"], img["width"])
        for img in gt_dataset["images"]
        if "height" in img and "width" in img
    }
    preds = _agnostic_predictions(loaded, sizes)
    coco_gt, coco_dt = _coco_objects(gt_dataset, preds)
    evaluator = COCOeval(coco_gt, coco_dt, "segm")
    evaluator.params.maxDets = [int(d) for d in max_dets]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(v) for v in evaluator.stats]
    names = [*_AP_NAMES, *(f"AR{d}" for d in max_dets), "ARs", "ARm", "ARl"]
    result: dict[str, Any] = dict(zip(names, stats, strict=True))
    result.update(
        num_images=len(coco_gt.getImgIds()),
        num_gt=len(gt_dataset["annotations"]),
        num_predictions=len(preds),
    )
    return result
