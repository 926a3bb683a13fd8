"""ReasonSeg (LISA) loader: one JSON per image with polygons and the question texts.

Official layout: ``ReasonSeg/{train,val,test}/<name>.jpg`` with ``<name>.json``::

    {"text": ["question or phrase", ...], "is_sentence": true,
     "shapes": [{"label": "target" | "ignore" | "flag", "labeling_type": "polygon",
                 "points": [[x, y], ...], ...}, ...]}

Ground truth as LISA's ``utils/data_processing.py::get_mask_from_json``: shapes labelled
"flag" are dropped; the rest are painted largest-area first with value 1 (target) or 255
(label containing "ignore": excluded from evaluation), each polygon filled together with its
one-pixel outline, coordinates truncated to int32. LISA validates with the first text of each
image (``sampled_sents = [text[0]]``); ``all_texts=True`` makes one sample per text.

LISA rasterises with OpenCV (``cv2.fillPoly`` + ``cv2.polylines``); here PIL's polygon fill with
outline draws the same closed polygon, which can differ from OpenCV on a few edge pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from pixelground.core.errors import InputError

IGNORE_VALUE = 255


def _read_json(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:  # LISA falls back to cp1252 for a few files
        return json.loads(raw.decode("cp1252"))


def _polygon(points: list[list[float]], height: int, width: int) -> np.ndarray:
    """(H, W) bool: the polygon filled and outlined, points truncated to int32."""
    canvas = Image.new("L", (width, height), 0)
    coords = [tuple(int(v) for v in p) for p in np.asarray(points, dtype=np.int32).tolist()]
    if len(coords) == 1:
        ImageDraw.Draw(canvas).point(coords, fill=1)
    elif coords:
        ImageDraw.Draw(canvas).polygon(coords, fill=1, outline=1)
    return np.asarray(canvas, dtype=np.uint8) > 0


def reasonseg_mask(shapes: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """(H, W) uint8 ground truth: 1 = target, 255 = ignore, 0 = background (LISA's rule)."""
    kept = [s for s in shapes if s.get("label", "").lower() != "flag"]
    areas = [_polygon(s["points"], height, width).sum() for s in kept]
    order = np.argsort(areas)[::-1]
    mask = np.zeros((height, width), dtype=np.uint8)
    for i in order:
        shape = kept[int(i)]
        value = IGNORE_VALUE if "ignore" in shape.get("label", "").lower() else 1
        mask[_polygon(shape["points"], height, width)] = value
    return mask


@dataclass
class ReasonSegSample:
    """One ReasonSeg question.

    Attributes:
        id: image file stem (``stem#k`` for the k-th text when all texts are used).
        image_path: the .jpg.
        text: the question / phrase.
        is_sentence: long reasoning sentence (True) or short phrase.
        height, width: image size.
    """

    id: str
    image_path: Path
    text: str
    is_sentence: bool
    height: int
    width: int
    shapes: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def gt_mask(self) -> np.ndarray:
        """(H, W) uint8 mask: 1 target, 255 ignore, 0 background."""
        return reasonseg_mask(self.shapes, self.height, self.width)


def load_reasonseg(
    root: str | Path, split: str | None = "val", all_texts: bool = False
) -> list[ReasonSegSample]:
    """ReasonSeg samples of a split folder.

    Args:
        root: the ReasonSeg folder (holding ``val/``) or a split folder of .jpg + .json.
        split: "train", "val" or "test"; ignored when ``root`` already holds the JSONs.
        all_texts: one sample per text instead of LISA's first text only.
    """
    root = Path(root)
    folder = root if any(root.glob("*.json")) or split is None else root / split
    jsons = sorted(folder.glob("*.json"))
    if not jsons:
        raise InputError(f"no ReasonSeg .json files in {folder}")
    samples = []
    for path in jsons:
        data = _read_json(path)
        image_path = path.with_suffix(".jpg")
        if not image_path.is_file():
            raise InputError(f"ReasonSeg image missing for {path.name}: expected {image_path.name}")
        with Image.open(image_path) as image:
            width, height = image.size
        texts = list(data.get("text", []))
        if not texts:
            raise InputError(f"{path} has no text")
        chosen = list(enumerate(texts)) if all_texts else [(0, texts[0])]
        for k, text in chosen:
            samples.append(
                ReasonSegSample(
                    id=path.stem if not all_texts else f"{path.stem}#{k}",
                    image_path=image_path,
                    text=str(text),
                    is_sentence=bool(data.get("is_sentence", False)),
                    height=height,
                    width=width,
                    shapes=list(data.get("shapes", [])),
                )
            )
    return samples
