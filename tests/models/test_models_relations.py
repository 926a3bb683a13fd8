"""Relations: "the red square left of the circle" answered from the instances of the subject's
set and the anchor (``set_fallback``), and answers checked against the anchor
(``relation_check``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from drawing import square

from pixelground.models.backend import SegTokenModelBackend
from pixelground.models.relations import (
    RelationExpression,
    on_side,
    parse_relation,
    pick_related,
)


def _box(top: int, left: int, size: int = 6) -> np.ndarray:
    return square(top, left, size, side=64)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (
            "the small red square left of the blue circle",
            RelationExpression("small red square", "left of", "the blue circle"),
        ),
        (
            "The star to the right of the hexagon.",
            RelationExpression("star", "right of", "the hexagon"),
        ),
        ("the shape above the star", RelationExpression("shape", "above", "the star")),
        (
            "the circle below the square left of the star",  # the anchor keeps its own relation
            RelationExpression("circle", "below", "the square left of the star"),
        ),
    ],
)
def test_relation_forms_are_read_into_subject_side_and_anchor(expression, expected):
    assert parse_relation(expression) == expected


@pytest.mark.parametrize(
    "expression", ["the red square", "the second square from the left", "left of the circle", ""]
)
def test_other_expressions_are_not_relations(expression):
    assert parse_relation(expression) is None


def test_the_one_candidate_on_the_side_is_picked():
    anchor = _box(30, 30)
    left, right, above = _box(30, 5), _box(30, 50), _box(5, 30)  # rows / columns of anchor
    candidates = np.stack([left, right, above])
    assert np.array_equal(pick_related(candidates, anchor, "left of"), left)
    assert np.array_equal(pick_related(candidates, anchor, "right of"), right)
    assert np.array_equal(pick_related(candidates, anchor, "above"), above)
    # below: none; the anchor itself among the candidates is not counted
    assert pick_related(np.stack([left, anchor]), anchor, "below") is None
    assert np.array_equal(pick_related(np.stack([anchor, left]), anchor, "left of"), left)


def test_two_candidates_on_the_side_pick_none():
    anchor = _box(30, 30)
    candidates = np.stack([_box(30, 2), _box(40, 12)])
    assert pick_related(candidates, anchor, "left of") is None
    assert pick_related(np.zeros((0, 64, 64), bool), anchor, "left of") is None


@pytest.fixture
def fallback_backend(seeded_model, tmp_path) -> SegTokenModelBackend:
    model = seeded_model(word_loss_weight=0.5, phrase_words=["red", "square"], set_fallback=0.25)
    model.save_pretrained(tmp_path / "ckpt")
    return SegTokenModelBackend(tmp_path / "ckpt", device="cpu")


def test_a_refused_relation_is_answered_from_its_subjects_and_anchor(fallback_backend, monkeypatch):
    left, right, circle = _box(30, 5), _box(31, 50), _box(30, 30)
    answers = {
        "all red shapes": [left | right],
        "all squares": [left | right],
        "the circle": [circle],
    }
    asked: list[str] = []
    fits: list[str] = []

    def answer(pixels, expression):
        asked.append(expression)
        return answers.get(expression, [])

    def fit(model, image, mask, text, views):
        fits.append(text)
        return math.log(0.3)

    monkeypatch.setattr(fallback_backend, "_answer_referring", answer)
    monkeypatch.setattr("pixelground.models.target_decision.mask_word_fit", fit)
    image = np.zeros((64, 64, 3), np.uint8)
    masks = fallback_backend.segment_expression(image, "the red square left of the circle")
    assert asked == [
        "the red square left of the circle",
        "all red shapes",
        "all squares",
        "the circle",
    ]
    assert len(masks) == 1 and np.array_equal(masks[0], left)
    assert fits == ["the red square"]  # the subject's words are read, not the anchor's
    # a subject of words the heads do not know is not asked for
    asked.clear()
    assert fallback_backend.segment_expression(image, "the big box left of the circle") == []
    assert asked == ["the big box left of the circle"]
    # no anchor: the refusal stands
    answers.pop("the circle")
    assert fallback_backend.segment_expression(image, "the square right of the circle") == []


def test_the_real_model_answers_relations_with_image_sized_masks(fallback_backend, tiny_data):
    from pixelground.core.media import load_image

    image = load_image(tiny_data.parent / "images" / "000.png").pixels
    for mask in fallback_backend.segment_expression(image, "the red square left of the square"):
        assert mask.dtype == bool and mask.shape == image.shape[:2]


def test_on_side_compares_box_centres_with_the_anchors():
    anchor = _box(30, 30)
    masks = np.stack([_box(30, 5), _box(30, 50), _box(5, 30), _box(50, 30)])
    assert on_side(masks, anchor, "left of").tolist() == [True, False, False, False]
    assert on_side(masks, anchor, "right of").tolist() == [False, True, False, False]
    assert on_side(masks, anchor, "above").tolist() == [False, False, True, False]
    assert on_side(masks, anchor, "below").tolist() == [False, False, False, True]


@pytest.mark.parametrize("check", [True, False])
def test_an_answer_off_the_named_side_of_the_anchor_is_refused(
    seeded_model, tmp_path, monkeypatch, check
):
    seeded_model(relation_check=check).save_pretrained(tmp_path / "ckpt")
    backend = SegTokenModelBackend(tmp_path / "ckpt", device="cpu")
    left, right, circle = _box(30, 5), _box(30, 50), _box(30, 30)
    answers = {"the square left of the circle": [right], "the square right of the circle": [right]}
    answers["the circle"] = [circle]
    monkeypatch.setattr(backend, "_answer_referring", lambda pixels, e: answers.get(e, []))
    image = np.zeros((64, 64, 3), np.uint8)
    wrong_side = backend.segment_expression(image, "the square left of the circle")
    assert (wrong_side == []) is check
    masks = backend.segment_expression(image, "the square right of the circle")
    assert len(masks) == 1 and np.array_equal(masks[0], right)
    # no anchor found: the answer stands
    answers["the star left of the hexagon"] = [right]
    masks = backend.segment_expression(image, "the star left of the hexagon")
    assert len(masks) == 1 and np.array_equal(masks[0], right)
    # not a relation: not checked
    answers["the square"] = [left]
    assert np.array_equal(backend.segment_expression(image, "the square")[0], left)
