"""The objects of an image record, and the geometry between them (plain functions).

An object is a JSON-ready dict::

    {"id": 0, "mask": RLE, "box": [x0, y0, x1, y1], "score": 0.9,
     "labels": ["dog", "animal"], "label": "dog", "attribute": "a brown dog lying down",
     "sources": ["detector", "entity"], "depth": 0.71, "layer": "foreground"}

``labels`` keeps every candidate label (GranD keeps several per object); ``label`` is the
one chosen among them (level 2). Masks are COCO RLE at the image's size; boxes xyxy pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pixelground.core.masks import decode_rle, encode_rle, masks_to_boxes
from pixelground.tasks.entity import mask_nms

Obj = dict[str, Any]
LAYERS = ("foreground", "midground", "background")


def make_object(mask: np.ndarray, score: float, labels: Sequence[str], source: str) -> Obj:
    """A new object from an (H, W) bool mask (its id is set when objects are merged)."""
    return {
        "id": None,
        "mask": encode_rle(mask)[0],
        "box": [float(v) for v in masks_to_boxes(mask)[0]],
        "score": float(score),
        "labels": list(dict.fromkeys(label for label in labels if label)),
        "label": None,
        "attribute": None,
        "sources": [source],
    }


def object_masks(objects: Sequence[Obj], height: int, width: int) -> np.ndarray:
    """(N, H, W) bool masks of ``objects`` ((0, H, W) when there are none)."""
    if not objects:
        return np.zeros((0, height, width), dtype=bool)
    return decode_rle([o["mask"] for o in objects])


def object_name(obj: Obj) -> str:
    """What a caption calls the object: its label, else its attribute phrase, else "object"."""
    name = obj.get("label") or next(iter(obj["labels"]), None) or obj.get("attribute")
    return str(name).strip().rstrip(".") if name else "object"


def merge_objects(objects: list[Obj], height: int, width: int, iou: float) -> list[Obj]:
    """Merge duplicates by mask NMS: the best-scored mask is kept, labels and sources pooled.

    Args:
        objects: candidate objects from every source, in any order.
        height, width: the image size.
        iou: mask IoU above which two objects are the same.

    Returns:
        Objects best first, with ids 0..N-1; the kept object's own labels come first.
    """
    if not objects:
        return []
    masks = object_masks(objects, height, width)
    scores = np.array([o["score"] for o in objects], dtype=np.float64)
    keep = mask_nms(list(masks), scores, iou)
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    merged = []
    claimed = np.zeros(len(objects), dtype=bool)
    for i in keep:
        inter = (masks & masks[i]).reshape(len(masks), -1).sum(axis=1)
        union = areas + areas[i] - inter
        same = (inter / np.maximum(union, 1) > iou) & ~claimed
        same[i] = True
        claimed |= same
        obj = dict(objects[i])
        group = [objects[i]] + [objects[j] for j in np.flatnonzero(same) if j != i]
        obj["labels"] = list(dict.fromkeys(lbl for o in group for lbl in o["labels"]))
        obj["sources"] = list(dict.fromkeys(s for o in group for s in o["sources"]))
        obj["id"] = len(merged)
        merged.append(obj)
    return merged


def match_object(mask: np.ndarray, objects: Sequence[Obj], iou: float) -> int | None:
    """Id of the object whose mask overlaps an (H, W) mask best, if its IoU reaches ``iou``."""
    if not objects or not mask.any():
        return None
    masks = object_masks(objects, *mask.shape)
    inter = (masks & mask).reshape(len(masks), -1).sum(axis=1)
    union = masks.reshape(len(masks), -1).sum(axis=1) + mask.sum() - inter
    ious = inter / np.maximum(union, 1)
    best = int(np.argmax(ious))
    return int(objects[best]["id"]) if ious[best] >= iou else None


def depth_layers(depth: np.ndarray, masks: np.ndarray, nearer_is_larger: bool) -> list[tuple]:
    """Each mask's median nearness in [0, 1] over the image's range, and its depth layer.

    Args:
        depth: (H, W) relative depth map.
        masks: (N, H, W) bool masks.
        nearer_is_larger: True when larger depth values are nearer (inverse depth).

    Returns:
        One (nearness, layer) per mask: nearness 1 is the nearest pixel of the image;
        layers are thirds of the range: foreground, midground, background.
    """
    near = depth if nearer_is_larger else -depth
    low, high = float(near.min()), float(near.max())
    scale = high - low if high > low else 1.0
    out = []
    for mask in masks:
        value = (float(np.median(near[mask])) - low) / scale if mask.any() else 0.0
        layer = LAYERS[0] if value > 2 / 3 else LAYERS[1] if value > 1 / 3 else LAYERS[2]
        out.append((round(value, 4), layer))
    return out


def relation(a: Obj, b: Obj, mask_a: np.ndarray, mask_b: np.ndarray) -> str:
    """The geometric relation of object ``a`` to object ``b`` from boxes, masks and depth.

    One of "on", "in front of", "behind", "above", "below", "left of", "right of",
    "next to": touching with ``a`` resting on ``b``'s top gives "on"; overlapping objects at
    different depth layers give "in front of" / "behind"; otherwise the dominant direction
    between box centres, or "next to" when the boxes touch.
    """
    ax0, ay0, ax1, ay1 = a["box"]
    bx0, by0, bx1, by1 = b["box"]
    overlap_x = min(ax1, bx1) - max(ax0, bx0)
    layers = (a.get("layer"), b.get("layer"))
    if None not in layers and layers[0] != layers[1] and overlap_x > 0:
        if (mask_a & mask_b).any() or _boxes_touch(a["box"], b["box"]):
            nearer = LAYERS.index(layers[0]) < LAYERS.index(layers[1])
            return "in front of" if nearer else "behind"
    height = max(ay1 - ay0, by1 - by0, 1.0)
    if overlap_x > 0 and abs(ay1 - by0) <= 0.1 * height and ay0 < by0:
        return "on"
    dx = (ax0 + ax1 - bx0 - bx1) / 2
    dy = (ay0 + ay1 - by0 - by1) / 2
    if _boxes_touch(a["box"], b["box"]) and max(abs(dx), abs(dy)) < 0.5 * height:
        return "next to"
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def _boxes_touch(a: Sequence[float], b: Sequence[float], gap: float = 2.0) -> bool:
    return a[0] - gap <= b[2] and b[0] - gap <= a[2] and a[1] - gap <= b[3] and b[1] - gap <= a[3]


def scene_relations(objects: Sequence[Obj], height: int, width: int, k: int = 2) -> list[Obj]:
    """Relations of each object to its ``k`` nearest objects (box-centre distance).

    Returns:
        ``{"subject": id, "predicate": str, "object": id}`` dicts, one per ordered pair.
    """
    if len(objects) < 2:
        return []
    masks = object_masks(objects, height, width)
    centres = np.array([[(o["box"][0] + o["box"][2]) / 2, (o["box"][1] + o["box"][3]) / 2]
                        for o in objects])  # fmt: skip
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    out = []
    for i, obj in enumerate(objects):
        for j in np.argsort(distances[i], kind="stable")[: min(k, len(objects) - 1)]:
            predicate = relation(obj, objects[j], masks[i], masks[j])
            out.append({"subject": obj["id"], "predicate": predicate, "object": objects[j]["id"]})
    return out
