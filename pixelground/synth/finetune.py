"""Records of the fine-tuning JSONL format that the [SEG]-token model trains on.

One JSON object per line; paths are relative to the directory that holds the JSONL file:

    {"id": str, "image": "images/00000.png",
     "conversation": [{"role": "user", "content": "Please segment the small red triangle."},
                      {"role": "assistant", "content": "[SEG]"}],
     "masks": [RLE, ...]}

- ``masks`` holds one COCO RLE ``{"size": [h, w], "counts": str}`` per ``[SEG]`` in the
  assistant turns, in order of appearance. A multi-target expression has one ``[SEG]`` whose
  mask is the union of its targets; a no-target expression answers ``NO_TARGET_ANSWER`` with
  no ``[SEG]`` and ``masks: []``.
- Grounded captions mark phrases as ``<p>a red circle</p> [SEG]``.
- Region captions put one ``<region>`` marker in the user turn per entry of ``regions``
  (the region's mask as RLE), in order.
- Videos give ``video`` (the frame folder) and ``frames`` (every frame's path) instead of
  ``image``; each entry of ``masks`` is then a list with one RLE per frame (an empty mask's RLE
  where the target is absent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pixelground.core.masks import encode_rle

SEG = "[SEG]"
REGION = "<region>"
NO_TARGET_ANSWER = "No such shape."
REFER_PROMPT = "Please segment {expression}."
GCG_PROMPT = "Please describe the image and segment every shape you mention."
REGION_PROMPT = "Please describe the region " + REGION + "."
VIDEO_PROMPT = "Please segment {expression} in the video."


def _turns(user: str, assistant: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def refer_record(
    record_id: str, image: str, expression: str, union: np.ndarray | None
) -> dict[str, Any]:
    """A referring-segmentation record.

    Args:
        record_id: the expression's id.
        image: image path relative to the JSONL's directory.
        expression: the referring expression ("the small red triangle").
        union: (H, W) bool union of the targets' masks, or None for a no-target expression.
    """
    prompt = REFER_PROMPT.format(expression=expression)
    if union is None:
        return {
            "id": record_id,
            "image": image,
            "conversation": _turns(prompt, NO_TARGET_ANSWER),
            "masks": [],
        }
    return {
        "id": record_id,
        "image": image,
        "conversation": _turns(prompt, SEG),
        "masks": encode_rle(union),
    }


def gcg_record(record_id: str, image: str, markup: str, masks: np.ndarray) -> dict[str, Any]:
    """A grounded-caption record: ``markup`` has one ``[SEG]`` per (N, H, W) mask, in order."""
    if markup.count(SEG) != len(masks):
        raise ValueError(f"{markup.count(SEG)} [SEG] markers but {len(masks)} masks")
    return {
        "id": record_id,
        "image": image,
        "conversation": _turns(GCG_PROMPT, markup),
        "masks": encode_rle(masks) if len(masks) else [],
    }


def region_record(record_id: str, image: str, mask: np.ndarray, caption: str) -> dict[str, Any]:
    """A region-caption record: the (H, W) region mask goes to ``regions``."""
    return {
        "id": record_id,
        "image": image,
        "conversation": _turns(REGION_PROMPT, caption),
        "masks": [],
        "regions": encode_rle(mask),
    }


def video_record(
    record_id: str, video: str, frames: Sequence[str], expression: str, union: np.ndarray
) -> dict[str, Any]:
    """A referring-video record: ``union`` is the (T, H, W) union of the targets per frame."""
    return {
        "id": record_id,
        "video": video,
        "frames": list(frames),
        "conversation": _turns(VIDEO_PROMPT.format(expression=expression), SEG),
        "masks": [encode_rle(union)],
    }
