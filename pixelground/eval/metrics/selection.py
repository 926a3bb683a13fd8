"""Which objects a referring prediction selects, on scenes whose every object mask is known.

cIoU says how much a prediction overlaps its targets; it does not say why it misses. On the
synthetic benchmark every object of a scene has a visible mask, so a prediction can be read as
the set of objects it *covers* (more than half of an object's visible area inside the
predicted mask) and compared with the expression's targets:

- ``exact``: the targets and nothing else;
- ``targets_and_others``: every target and some other object (it found the kind of object
  and took all of them: what a model that cannot resolve a relation or an ordinal does);
- ``some_targets``: some targets but not all (with or without others);
- ``others_only``: other objects and no target;
- ``nothing``: no object (an empty mask, or one too small to cover any).

Only expressions with targets are classified; no-target expressions have N-acc.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pixelground.core.masks import decode_rle

#: The outcomes, in the order reports list them.
OUTCOMES = ("exact", "targets_and_others", "some_targets", "others_only", "nothing")


def covers(pred: np.ndarray | None, object_rle: dict[str, Any]) -> bool:
    """Whether more than half of an object's visible area (COCO RLE) lies in the predicted
    mask ``pred`` (H, W) bool (None: no prediction covers nothing; nor does anything cover
    an object with no visible pixel)."""
    if pred is None:
        return False
    area = decode_rle(object_rle)
    return 2 * int((area & pred).sum()) > int(area.sum()) > 0


def covered_objects(pred: np.ndarray | None, object_rles: Mapping[int, dict[str, Any]]) -> set[int]:
    """Ids of the objects :func:`covers` finds in ``pred``.

    Args:
        pred: (H, W) bool predicted mask, or None (no prediction: nothing is covered).
        object_rles: object id -> its visible mask (COCO RLE at the image's size).
    """
    return {object_id for object_id, rle in object_rles.items() if covers(pred, rle)}


def selection_outcome(covered: set[int], targets: Sequence[int]) -> str:
    """One of :data:`OUTCOMES` for the ``covered`` object ids of a prediction whose
    expression refers to ``targets`` (at least one id)."""
    wanted = set(targets)
    if not wanted:
        raise ValueError("a selection outcome needs an expression with targets")
    if covered == wanted:
        return "exact"
    if wanted < covered:
        return "targets_and_others"
    if covered & wanted:
        return "some_targets"
    return "others_only" if covered else "nothing"


def selection_rates(outcomes: Sequence[tuple[str | None, str]]) -> dict[str, dict[str, Any]]:
    """Share of each outcome: ``all`` expressions and per expression type.

    Args:
        outcomes: (expression type or None, outcome) per expression with targets.

    Returns:
        ``{"all": {"count": n, "exact": share, ...}, "<type>": {...}, ...}``; shares of each
        group sum to 1.
    """
    groups: dict[str, list[str]] = {"all": [outcome for _, outcome in outcomes]}
    for kind, outcome in outcomes:
        if kind:
            groups.setdefault(kind, []).append(outcome)
    out: dict[str, dict[str, Any]] = {}
    for name in ["all", *sorted(k for k in groups if k != "all")]:
        found = groups[name]
        out[name] = {"count": len(found)}
        out[name].update({o: found.count(o) / len(found) for o in OUTCOMES})
    return out
