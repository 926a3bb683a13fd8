"""MeViS and Ref-YouTube-VOS referring video segmentation expressions.

MeViS (henghuiding/MeViS) layout, per split (``train``, ``valid_u``, ``valid``)::

    <split>/meta_expressions.json  {"videos": {video: {"frames": [name, ...], "expressions":
                                      {exp_id: {"exp": str, "obj_id": [...], "anno_id": [...]}}}}}
    <split>/mask_dict.json         {anno_id: [COCO RLE or null, one per frame]}
    <split>/JPEGImages/<video>/<frame>.jpg

Frames may also be ``.jpeg`` or ``.png`` files (the procedural benchmark writes PNGs by
default); the extension is found from the first frame. The ground truth of an expression on a
frame is the union of its ``anno_id`` masks (official ``eval_mevis.py`` adds them up); a null
entry means the object is absent on that frame. The held-out ``valid`` split has no
``mask_dict.json`` (expressions only).

Ref-YouTube-VOS layout::

    meta_expressions/<split>/meta_expressions.json   expressions {"exp", "obj_id": "1"}
    <split>/JPEGImages/<video>/<frame>.jpg
    <split>/Annotations/<video>/<frame>.png          palette PNG, value = object id (train only)

Frames are sorted by name, as both official loaders do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle

#: Frame file extensions tried, in order, when ``<frame>.jpg`` does not exist.
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".PNG")


@dataclass
class VideoExpression:
    """One expression of one video.

    Attributes:
        id: ``"<video>/<exp_id>"``; predictions go to ``<pred>/<video>/<exp_id>/<frame>.png``.
        video, exp_id: names from meta_expressions.json.
        text: the expression.
        frames: frame names (no extension), sorted.
        frame_dir: folder of the video's JPEG frames.
        obj_ids: referred object ids.
        anno_ids: MeViS annotation ids (keys of mask_dict.json); empty for Ref-YouTube-VOS.
        source: "mevis" or "refytvos".
        annotation_dir: Ref-YouTube-VOS label PNGs of the video (None for MeViS).
        expression_type: the benchmark's category of the expression, when it has one (the
            procedural benchmark's "motion", "multi", "attribute"); None otherwise.
    """

    id: str
    video: str
    exp_id: str
    text: str
    frames: list[str]
    frame_dir: Path
    obj_ids: list[int] = field(default_factory=list)
    anno_ids: list[str] = field(default_factory=list)
    source: str = "mevis"
    annotation_dir: Path | None = None
    expression_type: str | None = None
    _mask_dict: dict[str, list[Any]] | None = field(default=None, repr=False, compare=False)

    @property
    def frame_paths(self) -> list[Path]:
        """The image file of each frame, in order (``.jpg`` unless the first frame is not)."""
        suffix = ".jpg"
        if self.frames and not (self.frame_dir / f"{self.frames[0]}.jpg").is_file():
            for other in FRAME_SUFFIXES:
                if (self.frame_dir / f"{self.frames[0]}{other}").is_file():
                    suffix = other
                    break
        return [self.frame_dir / f"{name}{suffix}" for name in self.frames]

    @property
    def has_ground_truth(self) -> bool:
        """Whether the split carries masks (MeViS ``valid`` and Ref-YouTube-VOS ``valid`` do not:
        their answers are scored by the benchmark's server)."""
        if self.source == "refytvos":
            return self.annotation_dir is not None and self.annotation_dir.is_dir()
        return self._mask_dict is not None

    def _size(self) -> tuple[int, int]:
        for rles in (self._mask_dict or {}).values():
            for rle in rles:
                if rle:
                    return int(rle["size"][0]), int(rle["size"][1])
        first = self.frame_paths[0]
        if not first.is_file():
            raise InputError(f"cannot tell the frame size of {self.video}: {first} is missing")
        with Image.open(first) as image:
            return image.size[1], image.size[0]

    def gt_masks(self) -> np.ndarray:
        """(T, H, W) bool: per frame, the union of the expression's objects."""
        if self.source == "refytvos":
            return self._ytvos_masks()
        if self._mask_dict is None:
            raise InputError(f"{self.id}: this split has no mask_dict.json (no ground truth)")
        height, width = self._size()
        out = np.zeros((len(self.frames), height, width), dtype=bool)
        for anno_id in self.anno_ids:
            rles = self._mask_dict.get(str(anno_id))
            if rles is None:
                raise InputError(f"{self.id}: annotation {anno_id} is missing from mask_dict.json")
            for t, rle in enumerate(rles[: len(self.frames)]):
                if rle:
                    out[t] |= decode_rle(rle)
        return out

    def _ytvos_masks(self) -> np.ndarray:
        if self.annotation_dir is None or not self.annotation_dir.is_dir():
            raise InputError(f"{self.id}: no Annotations folder (ground truth) for this split")
        masks = []
        for name in self.frames:
            path = self.annotation_dir / f"{name}.png"
            if not path.is_file():
                raise InputError(f"annotation missing: {path}")
            with Image.open(path) as image:
                ids = np.asarray(image)
            masks.append(np.isin(ids, self.obj_ids))
        return np.stack(masks)


def _expressions(meta: dict[str, Any]) -> dict[str, Any]:
    if "videos" not in meta:
        raise InputError("meta_expressions.json lacks the 'videos' key")
    return meta["videos"]


def load_mevis(root: str | Path, split: str = "valid_u") -> list[VideoExpression]:
    """MeViS expressions of a split (``root`` = the MeViS folder or the split folder)."""
    root = Path(root)
    folder = root if (root / "meta_expressions.json").is_file() else root / split
    meta_path = folder / "meta_expressions.json"
    if not meta_path.is_file():
        raise InputError(f"meta_expressions.json not found in {folder}")
    mask_path = folder / "mask_dict.json"
    mask_dict = json.loads(mask_path.read_text()) if mask_path.is_file() else None
    out = []
    for video, data in _expressions(json.loads(meta_path.read_text())).items():
        frames = sorted(data["frames"])
        for exp_id, exp in data["expressions"].items():
            out.append(
                VideoExpression(
                    id=f"{video}/{exp_id}",
                    video=video,
                    exp_id=str(exp_id),
                    text=" ".join(str(exp["exp"]).split()),
                    frames=frames,
                    frame_dir=folder / "JPEGImages" / video,
                    obj_ids=[int(x) for x in exp.get("obj_id", [])],
                    anno_ids=[str(x) for x in exp.get("anno_id", [])],
                    source="mevis",
                    _mask_dict=mask_dict,
                )
            )
    return out


def load_refytvos(root: str | Path, split: str = "valid") -> list[VideoExpression]:
    """Ref-YouTube-VOS expressions of a split (``root`` = the Ref-YouTube-VOS folder)."""
    root = Path(root)
    meta_path = root / "meta_expressions" / split / "meta_expressions.json"
    if not meta_path.is_file():
        raise InputError(f"Ref-YouTube-VOS expressions not found: {meta_path}")
    out = []
    for video, data in _expressions(json.loads(meta_path.read_text())).items():
        frames = sorted(data["frames"])
        for exp_id, exp in data["expressions"].items():
            obj = exp.get("obj_id")
            out.append(
                VideoExpression(
                    id=f"{video}/{exp_id}",
                    video=video,
                    exp_id=str(exp_id),
                    text=" ".join(str(exp["exp"]).split()),
                    frames=frames,
                    frame_dir=root / split / "JPEGImages" / video,
                    obj_ids=[int(obj)] if obj is not None else [],
                    source="refytvos",
                    annotation_dir=root / split / "Annotations" / video,
                )
            )
    return out
