"""GLaMM GranD-f grounded caption generation (GCG) annotations.

Two official formats are read:

1. **Evaluation pair** (``GranDf/annotations/val_test/``), what ``eval/gcg/evaluate.py`` scores
   against: ``{split}_gcg_coco_caption_gt.json`` — COCO-caption style, ``images`` with string
   ids (the image file stem, e.g. ``"sa_10010541"``) and ``annotations`` ``{"image_id",
   "caption", "labels": [phrase, ...]}`` — and ``{split}_gcg_coco_mask_gt.json`` — COCO
   instances whose annotations (category 1, RLE ``segmentation``) are the phrases' masks, in
   the order of ``labels``. Images are ``<image_dir>/<image_id>.jpg``.
2. **Training/annotation list** (``GranDf_HA_GCG_train.json`` and the other ``*_GCG_*.json``
   of GranD-f): a list of ``{"file_name", "caption", "groundings": {phrase: {"token_positives":
   [start, end], "rle_masks": [rle, ...]}}}``; a phrase's mask is the union of its RLEs and
   phrases are ordered by their start offset (as ``GCGBaseDataset.process_data``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle


@dataclass
class GCGSample:
    """One image with its grounded caption.

    Attributes:
        id: image id (file stem).
        image_path: the image file.
        caption: the reference caption.
        phrases: grounded phrases ("labels"), in caption order.
        spans: [start, end) character offsets of each phrase, when known.
        height, width: image size (0 when unknown until the image is read).
    """

    id: str
    image_path: Path
    caption: str
    phrases: list[str]
    spans: list[tuple[int, int] | None] = field(default_factory=list)
    height: int = 0
    width: int = 0
    mask_rles: list[list[dict[str, Any]]] = field(default_factory=list, repr=False)

    def gt_masks(self) -> np.ndarray:
        """(N, H, W) bool: one mask per phrase (union of that phrase's RLEs)."""
        masks = [
            np.any(decode_rle(rles), axis=0) if len(rles) > 1 else decode_rle(rles[0])
            for rles in self.mask_rles
        ]
        if not masks:
            return np.zeros((0, self.height, self.width), dtype=bool)
        return np.stack(masks).astype(bool)


def _eval_files(path: Path, split: str) -> tuple[Path, Path]:
    caption = path / f"{split}_gcg_coco_caption_gt.json"
    mask = path / f"{split}_gcg_coco_mask_gt.json"
    if not caption.is_file() or not mask.is_file():
        raise InputError(
            f"{path} lacks {caption.name} / {mask.name}; pass GranDf/annotations/val_test or a "
            "GranD-f GCG annotation .json"
        )
    return caption, mask


def load_gcg_eval(
    annotations_dir: str | Path, split: str = "val", image_dir: str | Path | None = None
) -> list[GCGSample]:
    """The GranD-f val/test GCG ground truth (caption json + mask json pair)."""
    folder = Path(annotations_dir)
    caption_path, mask_path = _eval_files(folder, split)
    captions = json.loads(caption_path.read_text())
    masks = json.loads(mask_path.read_text())
    images_dir = Path(image_dir) if image_dir is not None else _default_image_dir(folder)
    sizes = {img["id"]: img for img in masks.get("images", []) + captions.get("images", [])}
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for ann in masks.get("annotations", []):
        by_image.setdefault(ann["image_id"], []).append(ann)
    caption_of = {}
    for ann in captions.get("annotations", []):
        caption_of.setdefault(ann["image_id"], ann)
    samples = []
    for image in captions.get("images", []):
        image_id = image["id"]
        cap = caption_of.get(image_id)
        if cap is None:
            raise InputError(f"image {image_id} has no caption annotation in {caption_path.name}")
        info = sizes.get(image_id, image)
        samples.append(
            GCGSample(
                id=str(image_id),
                image_path=images_dir / f"{image_id}.jpg",
                caption=cap["caption"],
                phrases=list(cap.get("labels", [])),
                spans=[None] * len(cap.get("labels", [])),
                height=int(info.get("height", 0)),
                width=int(info.get("width", 0)),
                mask_rles=[[ann["segmentation"]] for ann in by_image.get(image_id, [])],
            )
        )
    return samples


def load_gcg_annotations(path: str | Path, image_dir: str | Path | None = None) -> list[GCGSample]:
    """A GranD-f GCG annotation list (``GranDf_HA_GCG_train.json`` format)."""
    path = Path(path)
    data = json.loads(path.read_text())
    if not isinstance(data, list):
        raise InputError(f"{path} is not a GranD-f GCG annotation list")
    images_dir = Path(image_dir) if image_dir is not None else path.parent
    samples = []
    for item in data:
        caption = item["caption"].strip('"').strip()
        entries = []
        for phrase, grounding in item.get("groundings", {}).items():
            start, end = (int(v) for v in grounding["token_positives"])
            entries.append((start, end, phrase, list(grounding["rle_masks"])))
        entries.sort(key=lambda e: e[0])
        first = entries[0][3][0] if entries and entries[0][3] else None
        height, width = (int(v) for v in first["size"]) if first else (0, 0)
        samples.append(
            GCGSample(
                id=Path(item["file_name"]).stem,
                image_path=images_dir / item["file_name"],
                caption=caption,
                phrases=[e[2] for e in entries],
                spans=[(e[0], e[1]) for e in entries],
                height=height,
                width=width,
                mask_rles=[e[3] for e in entries],
            )
        )
    return samples


def load_gcg(
    path: str | Path, split: str = "val", image_dir: str | Path | None = None
) -> list[GCGSample]:
    """GranD-f GCG ground truth from an annotations folder (eval pair) or an annotation list."""
    path = Path(path)
    if path.is_dir():
        return load_gcg_eval(path, split, image_dir)
    if path.is_file():
        return load_gcg_annotations(path, image_dir)
    raise InputError(f"GCG annotations not found: {path}")


def _default_image_dir(annotations_dir: Path) -> Path:
    """``GranDf_HA_images/val_test`` next to ``annotations/`` when present, else the folder."""
    for candidate in (
        annotations_dir.parent.parent / "GranDf_HA_images" / "val_test",
        annotations_dir.parent.parent.parent / "GranDf_HA_images" / "val_test",
    ):
        if candidate.is_dir():
            return candidate
    return annotations_dir
