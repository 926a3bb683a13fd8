"""Referring expressions over scenes, each with the exact set of shapes it refers to.

Every expression is built from a structured query and checked with ``resolve``, the single
definition of what a query means:

- ``attribute``: "the small striped red triangle": the shapes with all named attribute values
  (a description without a kind uses the noun "shape").
- ``relation``: "the circle left of the blue square": shapes (other than the anchor) that match
  the description and whose centre is left of / right of / above / below the anchor's centre;
  the anchor description must match exactly one shape.
- ``ordinal``: "the second square from the top", "the leftmost red shape": the k-th matching
  shape when matching shapes are sorted by centre x (from the left/right) or y (from the
  top/bottom).
- ``multi``: "all green shapes": every matching shape.
- ``no_target``: any of the above forms that matches no shape.

Positions are shape centres (``Shape.cx``, ``Shape.cy``), y grows down. A query is ambiguous,
and never emitted, if a centre it compares is closer than ``margin`` pixels to the one it is
compared with (relations: any candidate vs. the anchor; ordinals: neighbours in the order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from itertools import combinations
from typing import Any

import numpy as np

from pixelground.synth.scene import ATTRIBUTES, Shape

RELATIONS: dict[str, tuple[str, int]] = {
    "left of": ("cx", -1),
    "right of": ("cx", 1),
    "above": ("cy", -1),
    "below": ("cy", 1),
}
OPPOSITE_RELATIONS: dict[str, str] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
}
#: Ordinal direction -> (centre coordinate, sort sign): "from the right" sorts by -cx.
DIRECTIONS: dict[str, tuple[str, int]] = {
    "left": ("cx", 1),
    "right": ("cx", -1),
    "top": ("cy", 1),
    "bottom": ("cy", -1),
}
ORDINALS: tuple[str, ...] = ("first", "second", "third", "fourth")
SUPERLATIVES: dict[str, str] = {
    "left": "leftmost",
    "right": "rightmost",
    "top": "topmost",
    "bottom": "bottommost",
}
FORMS: tuple[str, ...] = ("attribute", "relation", "ordinal", "multi")
#: Default mix of expression types (``no_target`` is any form with no match).
DEFAULT_MIX: dict[str, float] = {
    "attribute": 0.25,
    "relation": 0.2,
    "ordinal": 0.15,
    "multi": 0.15,
    "no_target": 0.25,
}


class AmbiguousError(ValueError):
    """A query whose meaning depends on centres closer than the margin."""


@dataclass(frozen=True)
class Desc:
    """A conjunction of attribute values; None means "any". No kind -> the noun "shape"."""

    size: str | None = None
    texture: str | None = None
    colour: str | None = None
    kind: str | None = None

    def matches(self, shape: Shape) -> bool:
        """True if the shape has every value this description names."""
        return all(
            getattr(self, name) is None or getattr(self, name) == shape.attribute(name)
            for name in ATTRIBUTES
        )

    def text(self, plural: bool = False) -> str:
        """Words without an article: "small striped red triangle", "green shapes"."""
        noun = self.kind or "shape"
        if plural:
            noun += "s"
        words = [getattr(self, name) for name in ("size", "texture", "colour")]
        return " ".join([w for w in words if w is not None] + [noun])

    @property
    def pair(self) -> tuple[str, str] | None:
        """(colour, kind) if the description names both, else None."""
        return (self.colour, self.kind) if self.colour and self.kind else None

    def to_dict(self) -> dict[str, str]:
        """The named values only."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    @classmethod
    def of(cls, shape: Shape, names: Sequence[str]) -> Desc:
        """The description of ``shape`` by the attributes in ``names``."""
        return cls(**{name: shape.attribute(name) for name in names})


@dataclass(frozen=True)
class Expression:
    """A referring expression and the shapes it refers to.

    Attributes:
        text: the expression, e.g. "the second square from the top".
        targets: ids of the shapes it refers to, ascending; empty for no-target expressions.
        type: "attribute", "relation", "ordinal", "multi" or "no_target" (and "motion" for
            videos).
        query: the structured query (see module docstring); ``resolve(query)`` == targets.
    """

    text: str
    targets: tuple[int, ...]
    type: str
    query: dict[str, Any]

    @property
    def no_target(self) -> bool:
        """True if the expression refers to nothing in its scene."""
        return not self.targets


def _desc(data: dict[str, Any]) -> Desc:
    return Desc(**data)


def resolve(query: dict[str, Any], shapes: Sequence[Shape], margin: float = 0.0) -> tuple[int, ...]:
    """The ids of the shapes a query refers to, ascending.

    Raises:
        AmbiguousError: a singular form matches several shapes, a relation's anchor is not
            unique, or compared centres are closer than ``margin``.
    """
    form = query["form"]
    desc = _desc(query["desc"])
    matching = [s for s in shapes if desc.matches(s)]
    if form == "multi":
        return tuple(sorted(s.id for s in matching))
    if form == "attribute":
        found = matching
    elif form == "relation":
        found = _resolve_relation(query, shapes, matching, margin)
    elif form == "ordinal":
        found = _resolve_ordinal(query, matching, margin)
    else:
        raise ValueError(f"unknown query form {form!r}")
    if len(found) > 1:
        raise AmbiguousError(f"{form} query matches {len(found)} shapes")
    return tuple(s.id for s in found)


def _resolve_relation(
    query: dict[str, Any], shapes: Sequence[Shape], matching: list[Shape], margin: float
) -> list[Shape]:
    anchors = [s for s in shapes if _desc(query["anchor"]).matches(s)]
    if len(anchors) != 1:
        raise AmbiguousError(f"relation anchor matches {len(anchors)} shapes")
    anchor = anchors[0]
    coord, sign = RELATIONS[query["relation"]]
    found = []
    for shape in matching:
        if shape.id == anchor.id:
            continue
        delta = getattr(shape, coord) - getattr(anchor, coord)
        if abs(delta) < margin:
            raise AmbiguousError("a candidate is too close to the anchor")
        if delta * sign > 0:
            found.append(shape)
    return found


def _resolve_ordinal(query: dict[str, Any], matching: list[Shape], margin: float) -> list[Shape]:
    coord, sign = DIRECTIONS[query["direction"]]
    ordered = sorted(matching, key=lambda s: sign * getattr(s, coord))
    values = [getattr(s, coord) for s in ordered]
    if any(abs(b - a) < margin for a, b in zip(values, values[1:], strict=False)):
        raise AmbiguousError("two candidates are too close to order")
    index = int(query["index"])
    return [ordered[index - 1]] if 1 <= index <= len(ordered) else []


def expression_text(query: dict[str, Any]) -> str:
    """The words of a query: the inverse of reading it."""
    form = query["form"]
    desc = _desc(query["desc"])
    if form == "attribute":
        return f"the {desc.text()}"
    if form == "multi":
        return f"all {desc.text(plural=True)}"
    if form == "relation":
        return f"the {desc.text()} {query['relation']} the {_desc(query['anchor']).text()}"
    if form == "ordinal":
        direction, index = query["direction"], int(query["index"])
        if query.get("superlative"):
            return f"the {SUPERLATIVES[direction]} {desc.text()}"
        return f"the {ORDINALS[index - 1]} {desc.text()} from the {direction}"
    raise ValueError(f"unknown query form {form!r}")


# ---------------------------------------------------------------- generation


@dataclass(frozen=True)
class ExpressionConfig:
    """How expressions are generated.

    Attributes:
        margin: minimum centre distance (pixels) that relations and ordinals rely on.
        mix: relative frequency of each type (keys of ``DEFAULT_MIX``).
        prefer_pair: chance that a positive description names both colour and kind when it
            can (the test split sets it high, to probe held-out colour+kind combinations).
        tries: candidates built per expression before giving up on its type.
    """

    margin: float = 12.0
    mix: tuple[tuple[str, float], ...] = tuple(DEFAULT_MIX.items())
    prefer_pair: float = 0.0
    tries: int = 12


SUBSETS: tuple[tuple[str, ...], ...] = tuple(
    c for n in range(len(ATTRIBUTES) + 1) for c in combinations(ATTRIBUTES, n)
)


def unique_descs(target: Shape, pool: Sequence[Shape]) -> list[Desc]:
    """Descriptions of ``target`` (empty one included) that no other shape of ``pool`` matches."""
    out = []
    for names in SUBSETS:
        desc = Desc.of(target, names)
        if all(s.id == target.id or not desc.matches(s) for s in pool):
            out.append(desc)
    return out


def pick_desc(rng: np.random.Generator, descs: Sequence[Desc], prefer_pair: float = 0.0) -> Desc:
    """A short, natural description: at most two words longer than the shortest; kinds and
    colours preferred, "solid" rarely named."""
    if not descs:
        raise ValueError("no description to pick from")
    if prefer_pair and rng.random() < prefer_pair:
        paired = [d for d in descs if d.pair is not None]
        descs = paired or descs
    lengths = [len(d.to_dict()) for d in descs]
    shortest = min(lengths)
    pool = [d for d, n in zip(descs, lengths, strict=True) if n <= shortest + 2]
    weights = np.array([_desc_weight(d, shortest) for d in pool])
    return pool[int(rng.choice(len(pool), p=weights / weights.sum()))]


def _desc_weight(desc: Desc, shortest: int) -> float:
    extra = len(desc.to_dict()) - shortest
    weight = (3.0 if desc.kind else 1.0) * (2.0 if desc.colour else 1.0)
    weight *= 0.3 if desc.texture == "solid" else 1.0
    return weight * (2.0, 1.0, 0.4)[extra]


def _attribute(
    rng: np.random.Generator, shapes: Sequence[Shape], focus: Sequence[Shape], cfg: ExpressionConfig
) -> dict | None:
    target = focus[int(rng.integers(len(focus)))]
    descs = [d for d in unique_descs(target, shapes) if d.to_dict()]
    if not descs:
        return None
    return {"form": "attribute", "desc": pick_desc(rng, descs, cfg.prefer_pair).to_dict()}


def _relation(
    rng: np.random.Generator, shapes: Sequence[Shape], focus: Sequence[Shape], cfg: ExpressionConfig
) -> dict | None:
    target = focus[int(rng.integers(len(focus)))]
    candidates = [s for s in shapes if s.id != target.id]
    if not candidates:
        return None
    anchor = candidates[int(rng.integers(len(candidates)))]
    anchor_descs = [d for d in unique_descs(anchor, shapes) if d.to_dict()]
    if not anchor_descs:
        return None
    relation = _relation_holding(rng, target, anchor, cfg.margin)
    if relation is None:
        return None
    others = [s for s in shapes if s.id != anchor.id]
    coord, sign = RELATIONS[relation]
    side = [s for s in others if (getattr(s, coord) - getattr(anchor, coord)) * sign > 0]
    descs = unique_descs(target, side)
    if not descs:
        return None
    informative = [d for d in descs if sum(d.matches(s) for s in others) >= 2]
    descs = informative if informative and rng.random() < 0.8 else descs
    return {
        "form": "relation",
        "desc": pick_desc(rng, descs, cfg.prefer_pair).to_dict(),
        "relation": relation,
        "anchor": pick_desc(rng, anchor_descs).to_dict(),
    }


def _relation_holding(
    rng: np.random.Generator, target: Shape, anchor: Shape, margin: float
) -> str | None:
    holding = [
        name
        for name, (coord, sign) in RELATIONS.items()
        if (getattr(target, coord) - getattr(anchor, coord)) * sign >= margin
    ]
    return str(holding[int(rng.integers(len(holding)))]) if holding else None


def _ordinal(
    rng: np.random.Generator, shapes: Sequence[Shape], focus: Sequence[Shape], cfg: ExpressionConfig
) -> dict | None:
    target = focus[int(rng.integers(len(focus)))]
    options = [Desc.of(target, names) for names in SUBSETS]
    options = [d for d in options if sum(d.matches(s) for s in shapes) >= 2]
    if not options:
        return None
    desc = pick_desc(rng, options)
    matching = [s for s in shapes if desc.matches(s)]
    direction = str(rng.choice(list(DIRECTIONS)))
    coord, sign = DIRECTIONS[direction]
    ordered = sorted(matching, key=lambda s: sign * getattr(s, coord))
    index = ordered.index(target) + 1
    if index > len(ORDINALS):
        return None
    superlative = index == 1 and bool(rng.random() < 0.5)
    return {
        "form": "ordinal",
        "desc": desc.to_dict(),
        "direction": direction,
        "index": index,
        "superlative": superlative,
    }


def _multi(
    rng: np.random.Generator, shapes: Sequence[Shape], focus: Sequence[Shape], cfg: ExpressionConfig
) -> dict | None:
    target = focus[int(rng.integers(len(focus)))]
    options = [Desc.of(target, names) for names in SUBSETS if names]
    options = [d for d in options if sum(d.matches(s) for s in shapes) >= 2]
    if not options:
        return None
    return {"form": "multi", "desc": pick_desc(rng, options).to_dict()}


def _no_target(
    rng: np.random.Generator,
    shapes: Sequence[Shape],
    cfg: ExpressionConfig,
    vocabulary: dict[str, tuple[str, ...]],
) -> dict | None:
    """A near miss worded as a target expression would be: a query of one form built around
    a present shape, then one named value changed so that no shape matches the description,
    or (relations, half the time) the relation turned round.

    Built by the same builders as the target expressions, a no-target description is as long
    as theirs and named with the same preferences, so that its length does not tell whether
    anything matches (describing a changed shape by a random subset of its attributes, as
    this once did, made long descriptions mostly no-target ones).
    """
    roll = rng.random()
    form = "relation" if roll < 0.25 else "multi" if roll > 0.85 else "attribute"
    source = shapes[int(rng.integers(len(shapes)))]
    query = _BUILDERS[form](rng, shapes, [source], cfg)
    if query is None:
        return None
    if form == "relation" and (not query["desc"] or rng.random() < 0.5):
        return {**query, "relation": OPPOSITE_RELATIONS[query["relation"]]}
    desc = _changed_to_match_nothing(rng, _desc(query["desc"]), shapes, vocabulary)
    return None if desc is None else {**query, "desc": desc.to_dict()}


def _changed_to_match_nothing(
    rng: np.random.Generator,
    desc: Desc,
    shapes: Sequence[Shape],
    vocabulary: dict[str, tuple[str, ...]],
) -> Desc | None:
    """``desc`` with one named value changed (a random one that works) so that it matches no
    shape of ``shapes``; None when no single change does."""
    named = list(desc.to_dict())
    for name in (named[int(i)] for i in rng.permutation(len(named))):
        values = [v for v in vocabulary.get(name, ()) if v != getattr(desc, name)]
        for value in (values[int(i)] for i in rng.permutation(len(values))):
            changed = replace(desc, **{name: str(value)})
            if not any(changed.matches(s) for s in shapes):
                return changed
    return None


_BUILDERS: dict[str, Callable[..., dict | None]] = {
    "attribute": _attribute,
    "relation": _relation,
    "ordinal": _ordinal,
    "multi": _multi,
}


def generate_expressions(
    rng: np.random.Generator,
    shapes: Sequence[Shape],
    count: int,
    vocabulary: dict[str, tuple[str, ...]],
    config: ExpressionConfig | None = None,
    accept: Callable[[Expression], bool] | None = None,
    focus: Sequence[Shape] | None = None,
) -> list[Expression]:
    """Up to ``count`` distinct, unambiguous expressions about a scene's shapes.

    Each expression's type is drawn from ``config.mix`` first, then up to ``tries`` candidates
    of that type are built, so the mix holds even when ``accept`` rejects many candidates.

    Args:
        rng: the source of every random choice.
        shapes: the scene's shapes.
        count: how many expressions to return (fewer if the scene does not allow them).
        vocabulary: attribute name -> values that may be named (for no-target near misses).
        config: margin, type mix and description preferences.
        accept: an extra filter (e.g. a split's held-out policy).
        focus: the shapes positive expressions are built around (default: all).

    Returns:
        Expressions whose targets equal ``resolve(query, shapes, margin)``.
    """
    config = config or ExpressionConfig()
    focus = list(focus) if focus is not None else list(shapes)
    kinds = [k for k, _ in config.mix]
    weights = np.array([w for _, w in config.mix], dtype=np.float64)
    out: list[Expression] = []
    seen: set[str] = set()
    for _ in range(count * 3):
        if len(out) >= count or not shapes:
            break
        wanted = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        if wanted != "no_target" and not focus:
            continue
        for _ in range(config.tries):
            if wanted == "no_target":
                query = _no_target(rng, shapes, config, vocabulary)
            else:
                query = _BUILDERS[wanted](rng, shapes, focus, config)
            expression = _finish(query, shapes, config.margin, wanted)
            if expression is None or expression.text in seen:
                continue
            if accept is not None and not accept(expression):
                continue
            seen.add(expression.text)
            out.append(expression)
            break
    return out


def _finish(
    query: dict | None, shapes: Sequence[Shape], margin: float, wanted: str
) -> Expression | None:
    """Resolve a candidate query; None if it is ambiguous or does not match the wanted type."""
    if query is None:
        return None
    try:
        targets = resolve(query, shapes, margin)
    except AmbiguousError:
        return None
    if (wanted == "no_target") != (not targets):
        return None
    if wanted == "multi" and len(targets) < 2:
        return None
    return Expression(text=expression_text(query), targets=targets, type=wanted, query=query)
