"""Ordinal expressions answered by sorting instances.

"The second square from the top" names one member of a set by its rank along a direction.
A [SEG] query has to carry the whole count; instead, the set can be asked for ("all
squares"), split into its instances and sorted. ``parse_ordinal`` reads such an expression
into that plan and ``pick_ordinal`` carries it out on the set's masks.

Forms read (case and a final full stop are ignored):

- "the leftmost / rightmost / topmost / uppermost / bottommost / lowest <noun phrase>":
  the first from that side;
- "the first / second / ... / tenth <noun phrase> from the left / right / top / bottom",
  also "1st", "2nd", ...

The noun phrase's last word is put in the plural ("blue shape" -> "all blue shapes").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pixelground.core.boxes import box_centres
from pixelground.core.errors import require
from pixelground.core.masks import as_mask_stack, mask_pieces, masks_to_boxes, split_at_necks

Direction = Literal["left", "right", "top", "bottom"]

#: A piece of the set's mask smaller than this share of the image is not an instance.
MIN_INSTANCE_FRACTION = 0.0005
#: Touching instances are split where their piece narrows, eroding it by up to this share of
#: the image's shorter side (4 pixels at 256; see ``core.masks.split_at_necks``).
NECK_DEPTH_FRACTION = 0.015

_SUPERLATIVES: dict[str, Direction] = {
    "leftmost": "left",
    "rightmost": "right",
    "topmost": "top",
    "uppermost": "top",
    "bottommost": "bottom",
    "lowest": "bottom",
}
_ORDINAL_WORDS = "first second third fourth fifth sixth seventh eighth ninth tenth".split()
_RANK = {word: i + 1 for i, word in enumerate(_ORDINAL_WORDS)}
_SUPERLATIVE_RE = re.compile(rf"the ({'|'.join(_SUPERLATIVES)}) (.+)")
_NTH_RE = re.compile(
    rf"the ({'|'.join(_ORDINAL_WORDS)}|\d+(?:st|nd|rd|th)) (.+) from the (left|right|top|bottom)"
)


@dataclass(frozen=True)
class OrdinalExpression:
    """An expression that names one member of a set by its rank along a direction.

    Attributes:
        members: the expression for the whole set ("all blue shapes").
        direction: the side counted from.
        rank: 1-based rank from that side.
    """

    members: str
    direction: Direction
    rank: int


def pluralize(noun_phrase: str) -> str:
    """``noun_phrase`` with its last word in the plural ("small red box" -> "small red boxes")."""
    textblob: Any = require("textblob", "models")
    *head, last = noun_phrase.split()
    return " ".join([*head, str(textblob.Word(last).pluralize())])


def parse_ordinal(expression: str) -> OrdinalExpression | None:
    """The ordinal plan of ``expression``, or None when it is not of a form read here."""
    text = " ".join(expression.lower().split()).rstrip(".?!")
    match = _SUPERLATIVE_RE.fullmatch(text)
    if match:
        direction, rank, noun_phrase = _SUPERLATIVES[match.group(1)], 1, match.group(2)
    else:
        match = _NTH_RE.fullmatch(text)
        if match is None:
            return None
        word, noun_phrase = match.group(1), match.group(2)
        rank = _RANK[word] if word in _RANK else int(word[:-2])
        direction = match.group(3)  # type: ignore[assignment]
        if rank < 1:
            return None
    return OrdinalExpression(f"all {pluralize(noun_phrase)}", direction, rank)


def split_instances(masks: np.ndarray, min_fraction: float = MIN_INSTANCE_FRACTION) -> np.ndarray:
    """The instances of a set given as masks.

    Several masks are taken as one instance each. A single mask (a model that answers a set
    with one [SEG]) is split into its 8-connected pieces, and a piece is split again where it
    narrows, as two touching shapes do (``core.masks.split_at_necks``, eroding by up to
    ``NECK_DEPTH_FRACTION`` of the shorter side, cores of at least the smallest instance).
    Empty masks and pieces smaller than ``min_fraction`` of the image are dropped.

    Args:
        masks: (N, H, W) or (H, W) masks; nonzero is inside.
        min_fraction: smallest instance, as a share of H * W.

    Returns:
        (K, H, W) bool instances.
    """
    stack = as_mask_stack(masks)
    height, width = stack.shape[1:]
    min_area = max(1.0, min_fraction * height * width)
    if len(stack) != 1:
        return stack[stack.sum(axis=(1, 2)) >= min_area]
    labels, areas = mask_pieces(stack[0])  # the background's area is 0: never kept
    kept = np.flatnonzero(areas >= min_area)  # specks are dropped before any mask is built
    depth = max(1, round(NECK_DEPTH_FRACTION * min(height, width)))
    parts = [
        part for label in kept for part in split_at_necks(labels == label, depth, int(min_area))
    ]
    return np.stack(parts) if parts else np.zeros((0, height, width), bool)


def pick_ordinal(instances: np.ndarray, direction: Direction, rank: int) -> np.ndarray | None:
    """The instance of the given rank from ``direction``, by the centres of their boxes.

    Args:
        instances: (K, H, W) bool masks, none empty.
        direction: the side counted from.
        rank: 1-based rank.

    Returns:
        (H, W) bool mask, or None when there are fewer than ``rank`` instances.
    """
    if rank > len(instances):
        return None
    centre_x, centre_y = box_centres(masks_to_boxes(instances)).T
    order_key = {"left": centre_x, "right": -centre_x, "top": centre_y, "bottom": -centre_y}
    order = np.argsort(order_key[direction], kind="stable")
    return np.asarray(instances[order[rank - 1]], dtype=bool)
