"""Compositional referring (opt-in): ordinals, extremes, relations and sets over instances.

A referring segmenter answers "all squares" more reliably than "the second square from the
top"; a detector-first pipeline has no notion of rank at all. This strategy reads an
expression with the phrase parser (backends/parser.py) into a plan, asks the preset for the
set the plan needs, splits the answer into instances and composes them:

- ordinal / extreme: "the second square from the top", "the triangle first from the right",
  "counting from the left, the 2nd person", "the leftmost car", "the square nearest the top",
  "of the large items, the one highest up", "the last dog from the left": the members'
  instances sorted by box centre along the direction, the one at the rank;
- relation: "the circle left of the blue square", "the man that is to the right of the red
  car", "beneath the blue square, the circle": the subject's instances on that side of the
  anchor's (the largest instance of the anchor's answer), the one nearest the anchor (all
  of them when the subject is plural);
- set: "every triangle", "each red shape", "both cats", "the three dogs", "all objects that
  are tiny": every instance of the members.

The cue words (ordinals, directions, prepositions of place, quantifiers) are general English;
everything else of the expression (the members' and the anchor's description, before or after
the noun) is passed to the preset as it is, with its head noun in the plural for a set. An
expression with no cue (or one the parser cannot split) gets None: the task then asks the
preset for it directly. Works with any preset that answers referring expressions: a
[SEG] model's one mask of a set is split into connected pieces (and at necks); a detector's
boxes are instances already.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelground.backends.base import Parser
from pixelground.core.boxes import box_centres
from pixelground.core.errors import require
from pixelground.core.masks import as_mask_stack, mask_pieces, masks_to_boxes, split_at_necks

#: An expression's (H, W) bool masks; [] for none.
Segment = Callable[[str], list[np.ndarray]]

#: A piece of a set's mask smaller than this share of the image is not an instance.
MIN_INSTANCE_FRACTION = 0.0005
#: Touching instances are split where they narrow, eroding by up to this share of the
#: shorter side (``core.masks.split_at_necks``).
NECK_DEPTH_FRACTION = 0.015
#: An instance with at least this share of its area inside the anchor is the anchor itself.
ANCHOR_OVERLAP = 0.5

_SIDES = "left|right|top|bottom"
_ORDINALS = "first second third fourth fifth sixth seventh eighth ninth tenth".split()
_NUMBERS = "two three four five six seven eight nine ten".split()
_OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
_SUPERLATIVES = {
    "leftmost": "left",
    "rightmost": "right",
    "topmost": "top",
    "uppermost": "top",
    "highest": "top",
    "bottommost": "bottom",
    "lowest": "bottom",
    "lowermost": "bottom",
}
#: Cue patterns over the lowercased expression; each names a direction group or a side.
_DIRECTION = [
    rf"(?:counting |numbering )?from (?:the )?(?P<side>{_SIDES})(?: side| edge)?",
    rf"(?:furthest|farthest|nearest|closest|most)(?: to)?(?: the)? (?P<side>{_SIDES})"
    r"(?: side| edge)?",
    r"(?P<up>highest up|uppermost|topmost|highest)",
    r"(?P<down>lowest down|bottommost|lowermost|lowest)",
    r"(?P<sup>leftmost|rightmost)",
]
_RANK = rf"\b(?P<rank>{'|'.join(_ORDINALS)}|\d+(?:st|nd|rd|th)|last)\b"
_RELATIONS = {
    "left of": r"(?:to |on )?the left of|left of",
    "right of": r"(?:to |on )?the right of|right of",
    "above": r"above|over|higher(?: up)? than",
    "below": r"below|under|underneath|beneath|lower(?: down)? than",
}
_SET = rf"^(?:all(?: of)?(?: the)?|every|each|both|(?:the )?(?:{'|'.join(_NUMBERS)}|\d+))(?= |$)"
#: Tags that end the words before a head noun (a preposition, a relative clause, a verb).
_POSTMODIFIER_TAGS = {"IN", "TO", "WDT", "WP", "VBZ", "VBP", "VBD", "VBN", "VBG", ","}
_FILLER = re.compile(r"\b(?:that|which|who)(?: (?:is|are))?$|\b(?:is|are|one|ones)$")


@dataclass(frozen=True)
class Plan:
    """What a compositional expression asks for.

    Attributes:
        form: "ordinal", "relation" or "set".
        members: the expression of the set to split ("all large squares").
        direction: ordinal: the side counted from.
        rank: ordinal: 1-based rank from that side.
        relation: relation: "left of", "right of", "above" or "below".
        anchor: relation: the expression of the anchor ("the blue square").
        plural: relation: the subject is plural (every instance on that side is answered).
    """

    form: str
    members: str
    direction: str = ""
    rank: int = 1
    relation: str = ""
    anchor: str = ""
    plural: bool = False


def _clean(text: str) -> str:
    return " ".join(text.lower().replace(",", " , ").split()).strip(" ,.?!")


def members_of(subject: str, parser: Parser) -> str:
    """The set request of a noun phrase: its determiner off, its head noun in the plural,
    "all" before it ("the tiny red figure" -> "all tiny red figures", "shape in green" ->
    "all shapes in green")."""
    text = re.sub(r"^(?:of|among|out of) ", "", _clean(subject))
    text = re.sub(rf"{_SET}|^(?:the|a|an)\b", "", text).strip(" ,")
    tokens = parser.tag(text) if text else []
    head = None
    for i, token in enumerate(tokens):
        after_noun = head is not None and tokens[head].tag.startswith("NN")
        if head is not None and (
            token.tag in _POSTMODIFIER_TAGS or (after_noun and token.text.endswith("ed"))
        ):
            break  # "shape in green", "object coloured red", "figure located ..."
        if token.tag.startswith(("NN", "JJ")) or token.tag == "CD":
            head = i
    if head is None:
        return f"all {text}".strip()
    word = tokens[head].text
    if tokens[head].tag not in ("NNS", "NNPS"):
        textblob: Any = require("textblob", "models")
        word = str(textblob.Word(word).pluralize())
    start, end = tokens[head].start, tokens[head].end
    return f"all {text[:start]}{word}{text[end:]}"


def _subject(text: str, parser: Parser) -> str:
    """The noun phrase left when cue words are cut out: the longest comma-separated piece,
    trailing relative pronouns, copulas and participles ("lying", "located") dropped; "of the
    X, the one ..." gives "the X"."""
    pieces = [p.strip() for p in text.split(",") if p.strip()]
    led = [p for p in pieces if re.match(r"(?:of|among|out of) ", p)]
    chosen = led[0] if led else max(pieces, key=len, default="")
    while True:
        tokens = parser.tag(chosen)
        if len(tokens) > 1 and tokens[-1].tag in ("VBN", "VBG"):
            chosen = chosen[: tokens[-1].start].strip()
        elif _FILLER.search(chosen):
            chosen = _FILLER.sub("", chosen).strip()
        else:
            return chosen


def _direction(text: str) -> tuple[str, str, int] | None:
    """(the text without the direction cue, the side, its start) or None."""
    for pattern in _DIRECTION:
        match = re.search(rf"\b{pattern}\b", text)
        if match is None:
            continue
        groups = match.groupdict()
        if groups.get("side"):
            side = groups["side"]
        elif groups.get("up"):
            side = "top"
        elif groups.get("down"):
            side = "bottom"
        else:
            side = _SUPERLATIVES[groups["sup"]]
        return text[: match.start()] + text[match.end() :], side, match.start()
    return None


def _ordinal(text: str, parser: Parser) -> Plan | None:
    found = _direction(text)
    if found is None:
        return None
    rest, side, _ = found
    rank, match = 1, re.search(_RANK, rest)
    if match is not None:
        word = match.group("rank")
        if word == "last":
            side = _OPPOSITE[side]
        elif word in _ORDINALS:
            rank = _ORDINALS.index(word) + 1
        else:
            rank = int(word[:-2])
        rest = rest[: match.start()] + rest[match.end() :]
    subject = _subject(" ".join(rest.split()), parser)
    if rank < 1 or not subject:
        return None
    return Plan("ordinal", members_of(subject, parser), direction=side, rank=rank)


def _relation(text: str, parser: Parser) -> Plan | None:
    for relation, pattern in _RELATIONS.items():
        match = re.search(rf"\b(?:{pattern})\b", text)
        if match is None:
            continue
        before, after = text[: match.start()].strip(" ,"), text[match.end() :].strip(" ,")
        if not before or before.endswith(","):  # fronted: "left of the car, the man"
            anchor, _, subject = after.partition(",")
        else:
            anchor, subject = after, before
        subject = _subject(subject, parser)
        if not anchor.strip() or not subject:
            return None
        plural = bool(re.match(_SET, subject)) or any(
            p.plural for p in parser.noun_phrases(subject)[:1]
        )
        return Plan(
            "relation",
            members_of(subject, parser),
            relation=relation,
            anchor=anchor.strip(),
            plural=plural,
        )
    return None


def read_plan(expression: str, parser: Parser) -> Plan | None:
    """The plan of a compositional expression, or None for any other (see module doc)."""
    text = _clean(expression)
    plan = _ordinal(text, parser) or _relation(text, parser)
    if plan is not None:
        return plan
    if re.match(_SET, text) and not text.startswith("all "):
        return Plan("set", members_of(text, parser))
    return None


def split_instances(masks: np.ndarray, min_fraction: float = MIN_INSTANCE_FRACTION) -> np.ndarray:
    """The instances of a set given as masks: several masks are one instance each; a single
    mask is split into its 8-connected pieces and each piece again where it narrows
    (``core.masks.split_at_necks``). Pieces under ``min_fraction`` of the image are dropped.

    Args:
        masks: (N, H, W) or (H, W) masks; nonzero is inside.
        min_fraction: the smallest instance, as a share of H * W.

    Returns:
        (K, H, W) bool instances.
    """
    stack = as_mask_stack(masks)
    height, width = stack.shape[1:]
    min_area = max(1.0, min_fraction * height * width)
    if len(stack) != 1:
        return stack[stack.sum(axis=(1, 2)) >= min_area]
    labels, areas = mask_pieces(stack[0])
    depth = max(1, round(NECK_DEPTH_FRACTION * min(height, width)))
    parts = [
        part
        for label in np.flatnonzero(areas >= min_area)
        for part in split_at_necks(labels == label, depth, int(min_area))
    ]
    return np.stack(parts) if parts else np.zeros((0, height, width), bool)


def _centres(instances: np.ndarray) -> np.ndarray:
    return box_centres(masks_to_boxes(instances))


def pick_ordinal(instances: np.ndarray, direction: str, rank: int) -> list[np.ndarray]:
    """[the instance at ``rank`` from ``direction`` by box centre], or [] when too few."""
    if rank > len(instances):
        return []
    x, y = _centres(instances).T
    key = {"left": x, "right": -x, "top": y, "bottom": -y}[direction]
    return [instances[np.argsort(key, kind="stable")[rank - 1]]]


def pick_related(
    candidates: np.ndarray, anchor: np.ndarray, relation: str, plural: bool = False
) -> list[np.ndarray]:
    """The candidates (not the anchor itself) whose box centre lies on the ``relation`` side
    of the anchor's: the one nearest the anchor, or every one when ``plural``."""
    if not len(candidates):
        return []
    inside = (candidates & anchor).sum(axis=(1, 2)) / candidates.sum(axis=(1, 2))
    candidates = candidates[inside < ANCHOR_OVERLAP]
    if not len(candidates):
        return []
    (ax, ay), centres = _centres(anchor[None])[0], _centres(candidates)
    dx, dy = centres[:, 0] - ax, centres[:, 1] - ay
    side = {"left of": dx < 0, "right of": dx > 0, "above": dy < 0, "below": dy > 0}[relation]
    found = np.flatnonzero(side)
    if plural or len(found) <= 1:
        return [candidates[i] for i in found]
    nearest = found[np.argmin(np.hypot(dx[found], dy[found]))]
    return [candidates[nearest]]


def compose(expression: str, parser: Parser, segment: Segment) -> list[np.ndarray] | None:
    """Answer a compositional expression from the preset's answers to its parts.

    Args:
        expression: the referring expression.
        parser: the phrase parser (tags and noun phrases).
        segment: the preset's own answer to an expression, (H, W) bool masks.

    Returns:
        (H, W) bool masks ([] for no target), or None when the expression is not
        compositional (the caller answers it directly).
    """
    plan = read_plan(expression, parser)
    if plan is None:
        return None
    answer = segment(plan.members)
    if not answer:
        return []
    members = split_instances(np.stack(answer))
    if plan.form == "set":
        return list(members)
    if plan.form == "ordinal":
        return pick_ordinal(members, plan.direction, plan.rank)
    anchors = segment(plan.anchor)
    anchor = split_instances(np.stack(anchors)) if anchors else np.zeros((0,))
    if not len(anchor):
        return []
    largest = anchor[int(np.argmax(anchor.sum(axis=(1, 2))))]
    return pick_related(members, largest, plan.relation, plan.plural)
