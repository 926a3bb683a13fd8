"""Reading predictions that any system wrote, into one normalised record per sample.

Accepted inputs (a file, or a folder of ``*.json`` files, one or many records each):

- **pixelground JSON v1**: a GroundedResult dict (``{"version": 1, "task", "image", "text",
  "regions"}``), a list of them, or JSONL; optionally wrapped as ``{"id": ..., "result": {...}}``
  (what ``pixelground eval`` streams to ``predictions.jsonl``). An empty ``regions`` list means
  "no target".
- **GLaMM / Sa2VA GCG outputs**: one JSON per image ``{"image_id", "caption", "phrases",
  "pred_masks": [RLE, ...]}`` (possibly nested under one key, as GLaMM's evaluate.py accepts).
- **mask records** (Sa2VA/LISA style referring outputs): ``{"id" | "sent_id" | "image_id",
  "pred_mask" | "prediction_masks" | "pred_masks" | "mask" | "segmentation": RLE, [RLE], null}``
  with optional ``"no_target"``; ``null`` means the model gave no mask.

Records are keyed by id: the wrapper/record id, else the result's image file stem.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle

MASK_KEYS = ("pred_masks", "prediction_masks", "pred_mask", "masks", "mask", "segmentation")
ID_KEYS = ("id", "sample_id", "sent_id", "image_id", "img_id")


@dataclass
class Prediction:
    """One sample's prediction, whatever format it came in.

    Attributes:
        id: the sample id it answers.
        rles: predicted masks as COCO RLE dicts (possibly none).
        phrases: the phrase of each mask (None where unknown), same length as ``rles``.
        text: caption / answer / expression text, if any.
        no_target: the model's explicit no-target decision, if it made one.
        missing: the record says the model produced no mask at all (Sa2VA's ``None``).
        image: the image path or name, if given.
        spans: [start, end) of each phrase in ``text`` when known.
        scores: confidence of each mask (1.0 where unknown), same length as ``rles``.
    """

    id: str
    rles: list[dict[str, Any]] = field(default_factory=list)
    phrases: list[str | None] = field(default_factory=list)
    text: str | None = None
    no_target: bool | None = None
    missing: bool = False
    image: str | None = None
    spans: list[tuple[int, int] | None] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def masks(self, height: int | None = None, width: int | None = None) -> np.ndarray:
        """(N, H, W) bool masks; (0, H, W) when there are none (size needed then)."""
        if not self.rles:
            if height is None or width is None:
                raise InputError(f"prediction {self.id} has no masks and no size")
            return np.zeros((0, height, width), dtype=bool)
        out = decode_rle(self.rles)
        if height is not None and out.shape[1:] != (height, width):
            raise InputError(
                f"prediction {self.id}: masks are {out.shape[1:]} but the image is "
                f"{(height, width)}; predictions must be at the original image size"
            )
        return out

    def union(self, height: int, width: int) -> np.ndarray | None:
        """(H, W) union of all masks; None when the record is 'missing'."""
        if self.missing:
            return None
        return self.masks(height, width).any(axis=0)


def _from_grounded(data: dict[str, Any], record_id: str | None) -> Prediction:
    regions = data.get("regions", [])
    image = (data.get("image") or {}).get("path")
    rid = record_id or data.get("id") or (Path(image).stem if image else None)
    if rid is None:
        raise InputError("a pixelground result has no id: wrap it as {'id': ..., 'result': ...}")
    rles = [r["mask"] for r in regions if r.get("mask")]
    return Prediction(
        id=str(rid),
        rles=rles,
        phrases=[r.get("phrase") for r in regions if r.get("mask")],
        text=data.get("text"),
        no_target=len(regions) == 0,
        image=image,
        spans=[tuple(r["span"]) if r.get("span") else None for r in regions if r.get("mask")],
        scores=[float(r.get("score", 1.0)) for r in regions if r.get("mask")],
    )


def _rles(value: Any) -> tuple[list[dict[str, Any]], bool]:
    """Normalise a mask field: RLE, list of RLEs, nested lists, or None (missing)."""
    if value is None:
        return [], True
    if isinstance(value, dict):
        return [value], False
    out: list[dict[str, Any]] = []
    for item in value:
        if item is None:
            continue
        if isinstance(item, dict):
            out.append(item)
        else:
            out.extend(_rles(item)[0])
    return out, False


def _from_record(data: dict[str, Any]) -> Prediction:
    if len(data) == 1 and isinstance(next(iter(data.values())), dict):
        inner = next(iter(data.values()))
        if any(k in inner for k in MASK_KEYS):  # GLaMM nests a result under one key
            data = inner
    rid = next((data[k] for k in ID_KEYS if k in data), None)
    if rid is None:
        raise InputError(f"a prediction record has none of the id keys {ID_KEYS}")
    key = next((k for k in MASK_KEYS if k in data), None)
    rles, missing = _rles(data[key]) if key else ([], True)
    scores = data.get("scores")
    scores = [float(v) for v in scores] if isinstance(scores, list) else [1.0] * len(rles)
    phrases = list(data.get("phrases") or data.get("labels") or [])
    phrases = phrases + [None] * (len(rles) - len(phrases)) if len(phrases) < len(rles) else phrases
    return Prediction(
        id=str(rid),
        rles=rles,
        phrases=phrases,
        text=data.get("caption", data.get("text")),
        no_target=data.get("no_target"),
        missing=missing,
        image=data.get("image") if isinstance(data.get("image"), str) else None,
        scores=scores if len(scores) == len(rles) else [1.0] * len(rles),
    )


def parse_record(data: dict[str, Any]) -> Prediction:
    """One prediction from any accepted record shape."""
    if not isinstance(data, dict):
        raise InputError(f"a prediction must be a JSON object, got {type(data).__name__}")
    if "result" in data and isinstance(data["result"], dict):
        return _from_grounded(data["result"], str(data["id"]) if "id" in data else None)
    if "regions" in data and "image" in data:
        return _from_grounded(data, None)
    return _from_record(data)


def _json_lines(path: Path, text: str) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}:{n}: not a JSON line ({error.msg})") from error


def _records(path: Path) -> Iterator[dict[str, Any]]:
    text = path.read_text()
    if not text.strip():
        return
    if path.suffix == ".jsonl":
        yield from _json_lines(path, text)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # JSON lines in a .json file
            yield from _json_lines(path, text)
            return
        raise InputError(f"{path} is not JSON: {error.msg} at line {error.lineno}") from error
    if isinstance(data, list):
        yield from data
    elif isinstance(data, dict) and isinstance(data.get("predictions"), list):
        yield from data["predictions"]
    else:
        yield data


def read_predictions(source: str | Path) -> dict[str, Prediction]:
    """All predictions of a file or folder, keyed by sample id (later records win)."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl"))
        if not files:
            raise InputError(f"no .json/.jsonl predictions in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"predictions not found: {path}")
    out: dict[str, Prediction] = {}
    for file in files:
        for record in _records(file):
            prediction = parse_record(record)
            out[prediction.id] = prediction
    return out
