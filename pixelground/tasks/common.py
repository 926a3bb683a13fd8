"""Pieces every image task shares: input checks, phrase markup, boxes to masks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from pixelground.backends.base import Detection, Parser, Phrase, Segmenter, describe_backend
from pixelground.core.boxes import nms
from pixelground.core.errors import InputError
from pixelground.core.media import ImageSource, LoadedImage, load_image
from pixelground.core.prompts import Box, Prompt
from pixelground.core.result import ImageInfo

#: Longest text a task accepts; longer inputs are almost always a mistake (a file pasted).
MAX_TEXT_CHARS = 2000
MULTI_TARGET_WORDS = frozenset(
    "all every each both two three four five six seven eight nine ten several many".split()
)
_MARKED = re.compile(r"<p>(.*?)</p>", re.DOTALL)


def clean_text(text: str, what: str) -> str:
    """Strip ``text`` and check it is usable; raise InputError when empty or too long."""
    if not isinstance(text, str):
        raise InputError(f"the {what} must be text, got {type(text).__name__}")
    stripped = " ".join(text.split())
    if not stripped or not any(ch.isalnum() for ch in stripped):
        raise InputError(f"the {what} is empty: give some words to ground")
    if len(stripped) > MAX_TEXT_CHARS:
        raise InputError(
            f"the {what} has {len(stripped)} characters; the limit is {MAX_TEXT_CHARS}"
        )
    return stripped


def image_info(image: LoadedImage) -> ImageInfo:
    """ImageInfo (size and path) of a loaded image."""
    return ImageInfo(width=image.width, height=image.height, path=image.path)


def load(image: ImageSource | LoadedImage) -> LoadedImage:
    """Load any accepted image source (see pixelground.core.media.load_image)."""
    return load_image(image)


def parse_marked_phrases(text: str) -> tuple[str, list[Phrase]]:
    """Split ``"<p>a dog</p> chases <p>two cats</p>"`` into clean text and phrases.

    Returns:
        The text without markup, and the marked phrases with [start, end) spans into it.
        No markup gives the text unchanged and an empty list.
    """
    phrases: list[Phrase] = []
    parts: list[str] = []
    cursor = 0
    length = 0
    for match in _MARKED.finditer(text):
        before = text[cursor : match.start()]
        parts.append(before)
        length += len(before)
        inner = match.group(1).strip()
        phrases.append(Phrase(text=inner, start=length, end=length + len(inner)))
        parts.append(inner)
        length += len(inner)
        cursor = match.end()
    parts.append(text[cursor:])
    return "".join(parts), phrases


def wants_many(text: str, parser: Parser | None) -> bool:
    """Whether a referring text asks for several targets ("all cats", "the two dogs")."""
    words = {w.lower() for w in re.findall(r"[A-Za-z]+", text)}
    if words & MULTI_TARGET_WORDS:
        return True
    if parser is None:
        return False
    phrases = parser.noun_phrases(text)
    return bool(phrases) and phrases[0].plural


def inside_detections(
    detections: Sequence[Detection], height: int, width: int, min_side: float = 1.0
) -> list[Detection]:
    """Detections clipped to a (height, width) image; boxes thinner than ``min_side`` dropped."""
    kept = []
    for d in detections:
        b = Box(*d.box).clipped(height, width)
        if b.x1 - b.x0 >= min_side and b.y1 - b.y0 >= min_side:
            kept.append(replace(d, box=(b.x0, b.y0, b.x1, b.y1)))
    return kept


def select_detections(
    detections: Sequence[Detection], many: bool, iou_threshold: float = 0.5
) -> list[Detection]:
    """The detections a phrase keeps: the best one, or all after NMS when it asks for many."""
    if not detections:
        return []
    boxes = np.array([d.box for d in detections], dtype=np.float64)
    scores = np.array([d.score for d in detections], dtype=np.float64)
    kept = [detections[i] for i in nms(boxes, scores, iou_threshold)]
    return kept if many else kept[:1]


def boxes_to_masks(
    segmenter: Segmenter, pixels: np.ndarray, boxes: Sequence[Sequence[float]]
) -> list[tuple[np.ndarray, float]]:
    """Segment each xyxy box with the segmenter: one ((H, W) mask, quality score) per box."""
    if not len(boxes):
        return []
    height, width = pixels.shape[:2]
    prompts = [Prompt(box=Box(*b).clipped(height, width)) for b in boxes]
    return [candidates.best() for candidates in segmenter.segment(pixels, prompts)]


def model_info(preset: str | None, **backends: Any) -> dict[str, Any]:
    """The ``model`` field of a result: the preset and what each backend says about itself."""
    info: dict[str, Any] = {"preset": preset} if preset else {}
    for role, backend in backends.items():
        if backend is not None:
            info[role] = describe_backend(backend)
    return info
