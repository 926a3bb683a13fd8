"""Attribute expressions answered from two sets that split the colour from the rest.

A model trained on scenes where some colour never comes with some kind ("red star") reads
"the large red star" as naming nothing even when the shape is there: the colour and the kind
were never seen together. Each half was: "all red shapes" and "all large stars" are familiar
requests. ``parse_colour_split`` reads an attribute expression into those two sets and
``instances_in_both`` finds the instances of the second that lie inside the first.

Forms read (case and a final full stop are ignored): "the <words>", where the words name
exactly one colour, end in a noun that is not a colour, and are all words the model's
phrase-word heads know (or the set noun, "shape").
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from pixelground.models.ordinals import pluralize, split_instances

#: Basic colour terms of English (Berlin and Kay's eleven, with the usual spellings).
COLOUR_WORDS: frozenset[str] = frozenset(
    "black white red green yellow blue brown orange pink purple grey gray".split()
)
#: Share of an instance of the rest's set that must lie inside the colour's set.
MIN_COVER = 0.5


@dataclass(frozen=True)
class ColourSplit:
    """An attribute expression as two sets whose common instance it names.

    Attributes:
        colour_set: the expression for the colour's set ("all red shapes").
        rest_set: the expression for the set of the other words ("all large stars").
        words: the expression's noun-phrase words ("large", "red", "star").
    """

    colour_set: str
    rest_set: str
    words: tuple[str, ...]


def knows_words(words: Collection[str], known_words: Collection[str], set_noun: str) -> bool:
    """Whether every word is one the phrase-word heads know, or the set noun."""
    return all(word in known_words or word == set_noun for word in words)


def parse_colour_split(
    expression: str, known_words: Collection[str], set_noun: str = "shape"
) -> ColourSplit | None:
    """The two sets of ``expression``, or None when it is not of the form read here.

    Args:
        expression: a referring expression ("the large red star").
        known_words: the words the model's phrase-word heads were trained on.
        set_noun: the noun of a set named by colour alone ("all red shapes").
    """
    words = " ".join(expression.lower().split()).rstrip(".?!").split()
    if len(words) < 3 or words[0] != "the":
        return None
    noun_phrase = tuple(words[1:])
    colours = [word for word in noun_phrase if word in COLOUR_WORDS]
    if len(colours) != 1 or noun_phrase[-1] in COLOUR_WORDS:
        return None
    if not knows_words(noun_phrase, known_words, set_noun):
        return None
    rest = [word for word in noun_phrase if word not in COLOUR_WORDS]
    return ColourSplit(
        colour_set=f"all {colours[0]} {pluralize(set_noun)}",
        rest_set=f"all {pluralize(' '.join(rest))}",
        words=noun_phrase,
    )


def instances_in_both(
    colour_masks: np.ndarray, rest_masks: np.ndarray, min_cover: float = MIN_COVER
) -> np.ndarray:
    """The instances of the rest's set that lie inside the colour's set, most inside first.

    The rest's set gives the instances (its masks follow the shapes: "all stars"); the colour's
    set only says which of them are of the colour.

    Args:
        colour_masks: (N, H, W) or (H, W) masks of the colour's set.
        rest_masks: (M, H, W) or (H, W) masks of the rest's set (split as
            ``ordinals.split_instances`` splits a set).
        min_cover: the least share of an instance's area inside the colour's set.

    Returns:
        (K, H, W) bool instances, K >= 0, by the share of their area inside the colour's set,
        highest first.
    """
    colour = np.asarray(colour_masks, dtype=bool)
    colour = colour.any(axis=0) if colour.ndim == 3 else colour
    instances = split_instances(rest_masks)
    cover = (instances & colour).sum(axis=(1, 2)) / np.maximum(instances.sum(axis=(1, 2)), 1)
    order = np.argsort(-cover, kind="stable")
    return instances[order[cover[order] >= min_cover]]
