"""Relation expressions answered from their anchor and the instances of their subject's set.

"The green triangle left of the red circle" names the one green triangle on the left of a
shape named on its own. ``parse_relation`` reads such an expression into its subject ("green
triangle"), relation and anchor ("the red circle"); ``pick_related`` finds the one instance
of the subject's set on that side of the anchor, by the centres of their boxes (as
``ordinals.pick_ordinal`` orders instances); ``on_side`` checks an answer against it.

Forms read (case and a final full stop are ignored): "the <subject> left of / right of /
to the left of / to the right of / above / below the <anchor>".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pixelground.core.boxes import box_centres
from pixelground.core.masks import masks_to_boxes

Relation = Literal["left of", "right of", "above", "below"]

_RELATION_RE = re.compile(r"the (.+?) (?:to the )?(left of|right of|above|below) (the .+)")
#: An instance with at least this share of its area inside the anchor is the anchor itself.
ANCHOR_OVERLAP = 0.5


@dataclass(frozen=True)
class RelationExpression:
    """An expression that names a shape by where it lies from another.

    Attributes:
        subject: the noun phrase of what is named, without its article ("green triangle").
        relation: where it lies from the anchor.
        anchor: the expression of the anchor ("the red circle").
    """

    subject: str
    relation: Relation
    anchor: str


def parse_relation(expression: str) -> RelationExpression | None:
    """The relation plan of ``expression``, or None when it is not of a form read here."""
    text = " ".join(expression.lower().split()).rstrip(".?!")
    match = _RELATION_RE.fullmatch(text)
    if match is None:
        return None
    subject, relation, anchor = match.groups()
    return RelationExpression(subject, relation, anchor)  # type: ignore[arg-type]


def on_side(masks: np.ndarray, anchor: np.ndarray, relation: Relation) -> np.ndarray:
    """(K,) bool: whether the centre of each mask's box is on the ``relation`` side of the
    centre of the anchor's box.

    Args:
        masks: (K, H, W) bool masks, none empty.
        anchor: (H, W) bool mask of the anchor, not empty.
        relation: the side, from the anchor.
    """
    anchor_x, anchor_y = box_centres(masks_to_boxes(anchor[None]))[0]
    centres = box_centres(masks_to_boxes(masks))
    return {
        "left of": centres[:, 0] < anchor_x,
        "right of": centres[:, 0] > anchor_x,
        "above": centres[:, 1] < anchor_y,
        "below": centres[:, 1] > anchor_y,
    }[relation]


def pick_related(
    candidates: np.ndarray, anchor: np.ndarray, relation: Relation
) -> np.ndarray | None:
    """The one candidate on the ``relation`` side of ``anchor``.

    Args:
        candidates: (K, H, W) bool instances of the subject's set, none empty.
        anchor: (H, W) bool mask of the anchor, not empty.
        relation: the side, from the anchor.

    Returns:
        (H, W) bool mask, or None when no candidate or more than one (other than the anchor
        itself) lies on that side.
    """
    candidates = np.asarray(candidates, dtype=bool)
    anchor = np.asarray(anchor, dtype=bool)
    if not len(candidates):
        return None
    inside = (candidates & anchor).sum(axis=(1, 2)) / candidates.sum(axis=(1, 2))
    candidates = candidates[inside < ANCHOR_OVERLAP]
    if not len(candidates):
        return None
    found = np.flatnonzero(on_side(candidates, anchor, relation))
    return np.asarray(candidates[found[0]], dtype=bool) if len(found) == 1 else None
