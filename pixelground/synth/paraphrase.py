"""A second, independent wording of referring queries, for the ``paraphrase`` test split.

``language.expression_text`` words every query one way ("the small red triangle", "the circle
left of the blue square", "the second square from the top", "all green shapes"); a model
trained on those words can learn the templates rather than the language. ``paraphrase``
words the same query with templates of its own, never used for training or for choosing
options, so that a figure on them says how far the model reads the meaning:

- attributes after the noun or in a relative clause ("the triangle that is small and red",
  "the triangle in red with stripes", "the only hexagon"), or a fronted set ("among the
  triangles, the red one");
- relations in a relative clause, fronted, or with a participle and other prepositions
  ("the circle that is under the blue square", "to the left of the blue square, the circle",
  "the circle lying beneath the blue square");
- ordinals after the noun, in a relative clause, fronted, as numerals or as superlatives of
  distance ("the triangle first from the right", "counting from the top, the second square",
  "the 2nd square from the top", "the square nearest the top");
- sets with "every" / "each", numerals ("the three green shapes", "both green shapes") and
  relative clauses ("all shapes that are green");
- words outside the training vocabulary ("big", "little", "spotted", "oval", "disc",
  "object", "beneath", ...).

A paraphrase means exactly what the query means (``language.resolve`` is unchanged): the
templates only change the words. Numerals name the number of targets, so they are used only
for sets that have targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pixelground.synth.language import expression_text

Rng = np.random.Generator

SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little", "tiny"),
    "medium": ("medium", "medium-sized", "mid-sized"),
    "large": ("large", "big"),
}
TEXTURE_WORDS: dict[str, tuple[str, ...]] = {
    "solid": ("solid", "plain", "unpatterned"),
    "striped": ("striped", "stripy"),
    "dotted": ("dotted", "spotted", "polka-dot"),
}
#: Textures as a phrase after the noun.
TEXTURE_PHRASES: dict[str, tuple[str, ...]] = {
    "solid": ("without a pattern", "with no pattern"),
    "striped": ("with stripes",),
    "dotted": ("with dots", "with spots"),
}
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc"),
    "square": ("square",),
    "triangle": ("triangle",),
    "star": ("star",),
    "hexagon": ("hexagon", "six-sided shape"),
    "ellipse": ("ellipse", "oval"),
}
#: The noun of a description without a kind.
GENERIC_NOUNS: tuple[str, ...] = ("object", "figure", "item", "shape")
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "on the left of", "left of"),
    "right of": ("to the right of", "on the right of", "right of"),
    "above": ("above", "higher up than", "over"),
    "below": ("below", "under", "beneath", "lower down than"),
}
#: Ordinal direction -> phrases that name the first from that side.
NEAREST_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("furthest to the left", "nearest the left edge", "farthest left"),
    "right": ("furthest to the right", "nearest the right edge", "farthest right"),
    "top": ("nearest the top", "highest up", "closest to the top edge"),
    "bottom": ("nearest the bottom", "lowest down", "closest to the bottom edge"),
}
ORDINAL_WORDS: tuple[str, ...] = ("first", "second", "third", "fourth", "fifth", "sixth")
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six")
PARTICIPLES: tuple[str, ...] = ("lying", "placed", "sitting", "located")
#: Draws of a template before giving up on wording a query differently from training.
MAX_TRIES = 20


def _pick(rng: Rng, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _numbered(index: int) -> str:
    """1 -> "1st", 2 -> "2nd", 3 -> "3rd", 4 -> "4th"."""
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(index if index < 20 else index % 10, "th")
    return f"{index}{suffix}"


def _and(words: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _noun(rng: Rng, desc: dict[str, str], plural: bool = False) -> str:
    kind = desc.get("kind")
    noun = _pick(rng, KIND_WORDS[kind] if kind else GENERIC_NOUNS)
    return f"{noun}s" if plural else noun


def _adjectives(rng: Rng, desc: dict[str, str]) -> list[str]:
    """The description's size, texture and colour as adjectives, in that order."""
    words = []
    if desc.get("size"):
        words.append(_pick(rng, SIZE_WORDS[desc["size"]]))
    if desc.get("texture"):
        words.append(_pick(rng, TEXTURE_WORDS[desc["texture"]]))
    if desc.get("colour"):
        words.append(desc["colour"])
    return words


def noun_phrase(
    rng: Rng, desc: dict[str, str], plural: bool = False, postposed: bool | None = None
) -> str:
    """A description's words without an article, attributes before or after the noun
    (``postposed``; None: either, at random): "big spotted red star", "star in red with
    spots", "big star coloured red"."""
    noun = _noun(rng, desc, plural)
    if postposed is None:
        postposed = bool(rng.random() < 0.5)
    if not postposed:
        return " ".join([*_adjectives(rng, desc), noun])
    words = [_pick(rng, SIZE_WORDS[desc["size"]])] if desc.get("size") else []
    words.append(noun)
    if desc.get("colour"):
        words.append(_pick(rng, (f"in {desc['colour']}", f"coloured {desc['colour']}")))
    if desc.get("texture"):
        words.append(_pick(rng, TEXTURE_PHRASES[desc["texture"]]))
    return " ".join(words)


def _attribute(rng: Rng, query: dict[str, Any], count: int) -> str:
    desc = query["desc"]
    adjectives = _adjectives(rng, desc)
    if not adjectives:  # the kind alone names one shape
        return f"the only {_noun(rng, desc)}"
    noun = _noun(rng, desc)
    templates = [
        lambda: f"the {noun} {_pick(rng, ('that', 'which'))} is {_and(adjectives)}",
        lambda: f"the {noun_phrase(rng, desc, postposed=True)}",
        lambda: f"among the {_noun(rng, desc, plural=True)}, the {' '.join(adjectives)} one",
    ]
    return templates[int(rng.integers(len(templates)))]()


def _relation(rng: Rng, query: dict[str, Any], count: int) -> str:
    subject = noun_phrase(rng, query["desc"])
    anchor = f"the {noun_phrase(rng, query['anchor'])}"
    where = _pick(rng, RELATION_WORDS[query["relation"]])
    templates = [
        lambda: f"the {subject} that is {where} {anchor}",
        lambda: f"{where} {anchor}, the {subject}",
        lambda: f"the {subject} {_pick(rng, PARTICIPLES)} {where} {anchor}",
    ]
    return templates[int(rng.integers(len(templates)))]()


def _ordinal(rng: Rng, query: dict[str, Any], count: int) -> str:
    desc, direction, index = query["desc"], query["direction"], int(query["index"])
    subject = noun_phrase(rng, desc)
    if index == 1 and rng.random() < 0.5:
        nearest = _pick(rng, NEAREST_WORDS[direction])
        if rng.random() < 0.5:
            return f"the {subject} {nearest}"
        return f"of the {noun_phrase(rng, desc, plural=True)}, the one {nearest}"
    word = ORDINAL_WORDS[index - 1]
    side = f"from the {direction}"
    templates = [
        lambda: f"the {subject} {word} {side}",
        lambda: f"the {subject} that is {word} {side}",
        lambda: f"counting {side}, the {word} {subject}",
        lambda: f"the {_numbered(index)} {subject} {side}",
    ]
    return templates[int(rng.integers(len(templates)))]()


def _multi(rng: Rng, query: dict[str, Any], count: int) -> str:
    desc = query["desc"]
    adjectives = _adjectives(rng, desc)
    templates = [
        lambda: f"{_pick(rng, ('every', 'each'))} {noun_phrase(rng, desc)}",
        lambda: f"all of the {noun_phrase(rng, desc, plural=True)}",
    ]
    if adjectives:
        noun = _noun(rng, desc, plural=True)
        templates.append(lambda: f"all {noun} that are {_and(adjectives)}")
    if 2 <= count < len(NUMBER_WORDS):  # numerals say how many there are
        number = "both" if count == 2 and rng.random() < 0.5 else f"the {NUMBER_WORDS[count]}"
        templates.append(lambda: f"{number} {noun_phrase(rng, desc, plural=True)}")
    return templates[int(rng.integers(len(templates)))]()


_TEMPLATES: dict[str, Callable[[Rng, dict[str, Any], int], str]] = {
    "attribute": _attribute,
    "relation": _relation,
    "ordinal": _ordinal,
    "multi": _multi,
}


def paraphrase(query: dict[str, Any], count: int, rng: Rng) -> str:
    """The query worded by this module's templates.

    Args:
        query: a query of ``language`` (forms attribute, relation, ordinal, multi).
        count: how many shapes it refers to (numerals are used only for sets with targets).
        rng: the source of every choice of template and word.

    Returns:
        The expression, e.g. "counting from the top, the second big square"; never the
        training wording of the query (``language.expression_text``).

    Raises:
        ValueError: an unknown query form.
    """
    form = query["form"]
    if form not in _TEMPLATES:
        raise ValueError(f"unknown query form {form!r}")
    trained = expression_text(query)
    for _ in range(MAX_TRIES):
        text = _TEMPLATES[form](rng, query, count)
        if text != trained:
            return text
    raise ValueError(f"no paraphrase of {trained!r} differs from it")
