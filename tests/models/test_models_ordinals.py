"""``ordinal_by_instances``: "the second square from the top" answered by asking for "all
squares", splitting the answer into instances and sorting them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from drawing import square

from pixelground.models.backend import SegTokenModelBackend
from pixelground.models.ordinals import (
    OrdinalExpression,
    parse_ordinal,
    pick_ordinal,
    pluralize,
    split_instances,
)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("the leftmost circle", OrdinalExpression("all circles", "left", 1)),
        ("The topmost yellow shape.", OrdinalExpression("all yellow shapes", "top", 1)),
        ("the lowest small box", OrdinalExpression("all small boxes", "bottom", 1)),
        ("the second square from the right", OrdinalExpression("all squares", "right", 2)),
        ("the first blue shape from the top", OrdinalExpression("all blue shapes", "top", 1)),
        ("the 3rd  person from the left", OrdinalExpression("all people", "left", 3)),
        ("the tenth ellipse from the bottom", OrdinalExpression("all ellipses", "bottom", 10)),
    ],
)
def test_ordinal_forms_are_read_into_a_set_a_side_and_a_rank(expression, expected):
    assert parse_ordinal(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "the small red triangle",
        "all green shapes",
        "the circle left of the blue square",
        "the second square",  # no side to count from
        "the 0th square from the left",
        "leftmost",
        "",
    ],
)
def test_other_expressions_are_not_ordinals(expression):
    assert parse_ordinal(expression) is None


def test_pluralize_puts_the_last_word_in_the_plural():
    assert pluralize("shape") == "shapes"
    assert pluralize("large striped box") == "large striped boxes"
    assert pluralize("tall man") == "tall men"


def test_a_single_mask_is_split_into_its_pieces_and_specks_are_dropped():
    union = square(2, 2) | square(2, 20) | square(30, 30, size=1)
    instances = split_instances(union, min_fraction=0.01)  # 16 of 1,600 pixels
    assert instances.shape == (2, 40, 40)
    assert sorted(int(m.sum()) for m in instances) == [36, 36]
    assert not (instances[0] & instances[1]).any()
    assert split_instances(np.zeros((40, 40), bool)).shape == (0, 40, 40)


def test_two_touching_shapes_in_one_mask_are_two_instances():
    first, second = square(10, 4, size=10, side=64), square(10, 15, size=10, side=64)
    mask = first | second
    mask[14:16, 14] = True  # they touch through a 2-pixel neck
    instances = split_instances(mask)
    assert len(instances) == 2
    assert sum(int(m.sum()) for m in instances) == mask.sum()
    assert {(bool(m[first].all()), bool(m[second].all())) for m in instances} == {
        (True, False),
        (False, True),
    }


def test_several_masks_are_one_instance_each_even_when_they_touch():
    touching = np.stack([square(2, 2), square(2, 8), np.zeros((40, 40), bool)])
    instances = split_instances(touching)
    assert len(instances) == 2  # the empty one is dropped, the touching two are kept apart
    assert np.array_equal(instances[1], touching[1])


def test_pick_ordinal_counts_from_the_named_side_by_box_centre():
    left, middle, right = square(30, 2), square(2, 17), square(16, 32)
    instances = np.stack([middle, right, left])
    assert np.array_equal(pick_ordinal(instances, "left", 1), left)
    assert np.array_equal(pick_ordinal(instances, "left", 2), middle)
    assert np.array_equal(pick_ordinal(instances, "right", 1), right)
    assert np.array_equal(pick_ordinal(instances, "top", 1), middle)
    assert np.array_equal(pick_ordinal(instances, "bottom", 1), left)
    assert np.array_equal(pick_ordinal(instances, "bottom", 3), middle)
    assert pick_ordinal(instances, "left", 4) is None


@pytest.fixture
def ordinal_backend(seeded_model, tmp_path) -> SegTokenModelBackend:
    seeded_model(ordinal_by_instances=True).save_pretrained(tmp_path / "ckpt")
    return SegTokenModelBackend(tmp_path / "ckpt", device="cpu")


def test_the_option_is_saved_with_the_checkpoint(ordinal_backend):
    config = json.loads((ordinal_backend.checkpoint / "config.json").read_text())
    assert config["ordinal_by_instances"] is True
    assert ordinal_backend.config.ordinal_by_instances is True


def test_an_ordinal_is_answered_from_the_instances_of_its_set(ordinal_backend, monkeypatch):
    left, right = square(10, 4, side=64), square(12, 40, side=64)
    asked: list[str] = []

    def answer(pixels, expression):
        asked.append(expression)
        return [left | right] if expression == "all squares" else [np.ones((64, 64), bool)]

    monkeypatch.setattr(ordinal_backend, "_answer_referring", answer)
    image = np.zeros((64, 64, 3), np.uint8)
    masks = ordinal_backend.segment_expression(image, "the second square from the left.")
    assert asked == ["all squares"]
    assert len(masks) == 1 and np.array_equal(masks[0], right)
    # fewer instances than the rank: the model answers the expression itself
    masks = ordinal_backend.segment_expression(image, "the third square from the left")
    assert asked[1:] == ["all squares", "the third square from the left"]
    assert masks[0].all()
    # not an ordinal: asked as it is
    ordinal_backend.segment_expression(image, "the red square")
    assert asked[3:] == ["the red square"]


def test_without_the_option_the_model_answers_ordinals_itself(seeded_model, tmp_path, monkeypatch):
    seeded_model().save_pretrained(tmp_path / "plain")
    backend = SegTokenModelBackend(tmp_path / "plain", device="cpu")
    assert backend.config.ordinal_by_instances is False
    asked: list[str] = []
    monkeypatch.setattr(backend, "_answer_referring", lambda p, e: asked.append(e) or [])
    assert backend.segment_expression(np.zeros((64, 64, 3), np.uint8), "the leftmost circle") == []
    assert asked == ["the leftmost circle"]


def test_the_real_model_answers_an_ordinal_with_image_sized_masks(ordinal_backend, tiny_data):
    from pixelground.core.media import load_image

    image = load_image(tiny_data.parent / "images" / "000.png").pixels
    masks = ordinal_backend.segment_expression(image, "the leftmost square")
    for mask in masks:
        assert mask.dtype == bool and mask.shape == image.shape[:2]


def test_a_triangle_is_placed_by_its_box_centre_not_its_centroid():
    rows, cols = np.indices((40, 40))
    triangle = (rows >= 10) & (rows < 30) & (abs(cols - 10) <= (rows - 10) / 2)  # apex up
    small = square(19, 30, size=4)  # box centre y 21: below the triangle's box centre (20)
    instances = np.stack([small, triangle])
    assert np.nonzero(triangle)[0].mean() > 21  # its centroid lies below the small box
    assert np.array_equal(pick_ordinal(instances, "top", 1), triangle)
