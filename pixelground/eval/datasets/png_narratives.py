"""Panoptic Narrative Grounding (PNG) narratives over COCO panoptic ground truth.

Official layout (BCV-Uniandes/PNG)::

    annotations/png_coco_val2017.json        list of narratives
    annotations/panoptic_val2017.json        COCO panoptic segments_info + categories
    annotations/panoptic_segmentation/val2017/<image_id:012d>.png   RGB-id PNGs
    images/val2017/<image_id:012d>.jpg

A narrative is ``{"image_id": "139", "caption": str, "segments": [{"utterance": str,
"segment_ids": [panoptic segment ids], "noun": bool, "plural": bool}, ...], ...}``; the
utterances follow one another through the caption. A *grounded noun phrase* is an utterance
with ``noun`` true and at least one segment id; its ground truth is the union of those panoptic
segments (PNG id = R + 256 G + 256^2 B). As in the official evaluation, a phrase is *plural*
when it is grounded to more than one segment, and it is a *thing* when the category of its last
segment is a thing category (``ann_categories`` keeps the last one written).

Difference kept out on purpose: the official dataloader merges directly adjacent noun phrases
of the same singular/plural type into one (``unique_consecutive`` over word types); here every
grounded utterance is its own phrase.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelground.core.errors import InputError


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic id map from an (H, W, 3) RGB-id PNG: R + 256 G + 256^2 B, (H, W) int64."""
    rgb = np.asarray(rgb).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


@dataclass
class PNGPhrase:
    """One grounded noun phrase: text, [start, end) span in the caption, segment ids, tags."""

    text: str
    span: tuple[int, int] | None
    segment_ids: list[int]
    plural: bool
    thing: bool


@dataclass
class PNGNarrative:
    """One narrative of one image with its grounded noun phrases.

    Attributes:
        id: ``"<image_id>-<k>"``, k the narrative's index among those of its image.
        image_id: COCO image id.
        image_path: the image file.
        caption: the narrative text.
        phrases: grounded noun phrases in caption order.
        panoptic_png: the image's panoptic RGB-id PNG.
    """

    id: str
    image_id: int
    image_path: Path
    caption: str
    phrases: list[PNGPhrase]
    panoptic_png: Path
    height: int = 0
    width: int = 0
    _ids: np.ndarray | None = field(default=None, repr=False, compare=False)

    def segment_map(self) -> np.ndarray:
        """(H, W) int64 panoptic segment ids (read once, then cached)."""
        if self._ids is None:
            if not self.panoptic_png.is_file():
                raise InputError(f"panoptic PNG missing: {self.panoptic_png}")
            with Image.open(self.panoptic_png) as image:
                self._ids = rgb2id(np.asarray(image.convert("RGB")))
        return self._ids

    def gt_mask(self, index: int) -> np.ndarray:
        """(H, W) bool ground truth of phrase ``index``: union of its segments."""
        return np.isin(self.segment_map(), self.phrases[index].segment_ids)


def _phrases(narrative: dict[str, Any], segments: dict[int, dict[str, Any]], things: set[int]):
    caption = narrative["caption"]
    cursor = 0
    out = []
    for seg in narrative.get("segments", []):
        utterance = seg.get("utterance", "")
        start = caption.find(utterance.strip(), cursor) if utterance.strip() else -1
        span = (start, start + len(utterance.strip())) if start >= 0 else None
        if span is not None:
            cursor = span[1]
        ids = [int(s) for s in seg.get("segment_ids", [])]
        if not seg.get("noun", False) or not ids:
            continue
        missing = [i for i in ids if i not in segments]
        if missing:
            raise InputError(
                f"narrative of image {narrative['image_id']} names panoptic segment {missing[0]} "
                "that its panoptic annotation does not have"
            )
        last_category = segments[ids[-1]]["category_id"]
        out.append(PNGPhrase(utterance.strip(), span, ids, len(ids) > 1, last_category in things))
    return out


def load_png(
    annotations_dir: str | Path,
    split: str = "val2017",
    image_dir: str | Path | None = None,
    narratives_file: str | Path | None = None,
) -> list[PNGNarrative]:
    """PNG narratives of a split with at least one grounded noun phrase.

    Args:
        annotations_dir: the PNG ``annotations`` folder.
        split: "val2017" or "train2017".
        image_dir: COCO images of the split; default ``<annotations_dir>/../images/<split>``.
        narratives_file: override of ``png_coco_<split>.json``.
    """
    folder = Path(annotations_dir)
    narratives_path = (
        Path(narratives_file) if narratives_file else folder / f"png_coco_{split}.json"
    )
    panoptic_path = folder / f"panoptic_{split}.json"
    for path in (narratives_path, panoptic_path):
        if not path.is_file():
            raise InputError(f"PNG annotation file missing: {path}")
    narratives = json.loads(narratives_path.read_text())
    panoptic = json.loads(panoptic_path.read_text())
    things = {c["id"] for c in panoptic.get("categories", []) if c.get("isthing")}
    images = {int(img["id"]): img for img in panoptic.get("images", [])}
    anns = {int(a["image_id"]): a for a in panoptic.get("annotations", [])}
    images_dir = Path(image_dir) if image_dir is not None else folder.parent / "images" / split
    seen: dict[int, int] = {}
    out = []
    for narrative in narratives:
        image_id = int(narrative["image_id"])
        if image_id not in anns:
            raise InputError(f"image {image_id} of a narrative has no panoptic annotation")
        segments = {int(s["id"]): s for s in anns[image_id]["segments_info"]}
        phrases = _phrases(narrative, segments, things)
        k = seen.get(image_id, 0)
        seen[image_id] = k + 1
        if not phrases:
            continue
        info = images.get(image_id, {})
        out.append(
            PNGNarrative(
                id=f"{image_id}-{k}",
                image_id=image_id,
                image_path=images_dir / info.get("file_name", f"{image_id:012d}.jpg"),
                caption=narrative["caption"],
                phrases=phrases,
                panoptic_png=folder / "panoptic_segmentation" / split / anns[image_id]["file_name"],
                height=int(info.get("height", 0)),
                width=int(info.get("width", 0)),
            )
        )
    return out
