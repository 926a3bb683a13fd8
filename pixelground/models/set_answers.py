"""Referring expressions answered from the model's answers to the sets they name.

A [SEG] model answers "all squares" or "all red shapes" better than "the second square from
the top" or "the large red star" when it never saw red stars. ``SetAnswers`` holds the
model's answers on one image and composes them:

- ``ordinal``: the instance of a set at a rank (ordinals.py);
- ``from_sets``: a refused attribute expression from its colour's set and the rest's
  (colour_sets.py), a refused relation from its subject's instances and its anchor
  (relations.py), answered when the instance found reads as the words;
- ``relation_holds``: whether an answered relation lies on the named side of its anchor.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np

from pixelground.models.colour_sets import (
    ColourSplit,
    instances_in_both,
    knows_words,
    parse_colour_split,
)
from pixelground.models.ordinals import OrdinalExpression, pick_ordinal, pluralize, split_instances
from pixelground.models.relations import RelationExpression, on_side, parse_relation, pick_related

#: An expression's (H, W) bool masks on the image; [] for a refusal.
Answer = Callable[[str], list[np.ndarray]]


@dataclass
class SetAnswers:
    """Answers composed from a model's answers on one image.

    Attributes:
        answer: the model's own answer to an expression.
        segment: the whole answer to an expression, these compositions included (a
            relation's anchor is found with it).
        reads_as: whether an (H, W) region reads as the words of a text (the phrase-word
            head's check).
        known_words: the words the model's phrase-word heads know.
        set_noun: the noun of a set named by its colour alone ("all red shapes").
        size: (H, W) of the image.
    """

    answer: Answer
    segment: Answer
    reads_as: Callable[[np.ndarray, str], bool]
    known_words: Collection[str]
    set_noun: str
    size: tuple[int, int]

    def _nothing(self) -> np.ndarray:
        return np.zeros((0, *self.size), bool)

    def ordinal(self, plan: OrdinalExpression) -> np.ndarray | None:
        """(H, W) the instance of the plan's set at its rank, or None when the set is refused
        or has fewer instances."""
        members = self.answer(plan.members)
        if not members:
            return None
        return pick_ordinal(split_instances(np.stack(members)), plan.direction, plan.rank)

    def from_sets(self, expression: str) -> np.ndarray | None:
        """(H, W) the answer to a refused attribute or relation expression from the sets it
        names, when it reads as the expression's words (a relation's: its subject's); else
        None."""
        relation = parse_relation(expression)
        if relation is None:
            split = self._colour_split(expression)
            found = self._in_colour_and_rest(split)[:1] if split is not None else []
            words = expression
        else:
            found = self._related(relation)
            words = f"the {relation.subject}"
        if not len(found) or not self.reads_as(found[0], words):
            return None
        return found[0]

    def relation_holds(self, expression: str, masks: list[np.ndarray]) -> bool:
        """False when ``expression`` is a relation and ``masks`` lie off the named side of
        its anchor; True otherwise, also when the anchor is not found."""
        relation = parse_relation(expression)
        anchor = self._anchor(relation) if relation is not None and masks else None
        if anchor is None:
            return True
        answered = np.any(np.stack(masks), axis=0)
        return bool(answered.any()) and bool(on_side(answered[None], anchor, relation.relation)[0])

    def _colour_split(self, expression: str) -> ColourSplit | None:
        return parse_colour_split(expression, self.known_words, self.set_noun)

    def _in_colour_and_rest(self, split: ColourSplit) -> np.ndarray:
        """(K, H, W) instances of the rest's set inside the colour's, most inside first."""
        colour = self.answer(split.colour_set)
        rest = self.answer(split.rest_set) if colour else []
        if not rest:
            return self._nothing()
        return instances_in_both(np.stack(colour), np.stack(rest))

    def _subjects(self, subject: str) -> np.ndarray:
        """(K, H, W) instances of the set a noun phrase names; none when it has a word the
        phrase-word heads do not know."""
        split = self._colour_split(f"the {subject}")
        if split is not None:
            return self._in_colour_and_rest(split)
        if not knows_words(subject.split(), self.known_words, self.set_noun):
            return self._nothing()
        members = self.answer(f"all {pluralize(subject)}")
        return split_instances(np.stack(members)) if members else self._nothing()

    def _related(self, relation: RelationExpression) -> np.ndarray:
        """(0 or 1, H, W): the one instance of the subject's set on the relation's side of
        the anchor."""
        subjects = self._subjects(relation.subject)
        anchor = self._anchor(relation) if len(subjects) else None
        found = pick_related(subjects, anchor, relation.relation) if anchor is not None else None
        return self._nothing() if found is None else found[None]

    def _anchor(self, relation: RelationExpression) -> np.ndarray | None:
        """(H, W) the largest instance of the answer to the relation's anchor, or None."""
        answer = self.segment(relation.anchor)
        anchors = split_instances(np.stack(answer)) if answer else self._nothing()
        if not len(anchors):
            return None
        return anchors[int(np.argmax(anchors.sum(axis=(1, 2))))]
