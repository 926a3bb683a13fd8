"""The opt-in compositional referring strategy: plans read with the real phrase parser from
rewordings of each form, composition over instances of a detector-first pipeline (fakes) and
of one [SEG]-style union mask, and the opt-in per call and per preset."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from fakes import BoxSegmenter, TableDetector, colour_squares_image

import pixelground
from pixelground.backends.parser import TextBlobParser
from pixelground.core.errors import InputError
from pixelground.pipeline import Pipeline
from pixelground.tasks.compose import Plan, compose, read_plan, split_instances
from pixelground.tasks.referring import ReferringSegmentation

IMAGE = colour_squares_image()
RED, GREEN, BLUE = (10, 20, 40, 50), (60, 20, 90, 50), (120, 70, 150, 100)
DETECTOR = TableDetector(
    {
        "all squares": [(RED, 0.8), (GREEN, 0.7), (BLUE, 0.6)],
        "the red square": [(RED, 0.9)],
        "the second square from the left": [(BLUE, 0.9)],  # what a detector alone says
    }
)


@pytest.fixture(scope="module")
def parser() -> TextBlobParser:
    return TextBlobParser()


def box_mask(box, shape=IMAGE.shape[:2]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return mask


@pytest.mark.parametrize(
    "text",
    [
        "the second square from the left",
        "the square second from the left",
        "the square that is second from the left",
        "counting from the left, the 2nd square",
        "the second square counting from the left side",
    ],
)
def test_ordinal_rewordings_read_as_one_plan(parser, text):
    assert read_plan(text, parser) == Plan("ordinal", "all squares", direction="left", rank=2)


@pytest.mark.parametrize(
    ("text", "direction"),
    [
        ("the triangle first from the right", "right"),
        ("the rightmost triangle", "right"),
        ("the triangle furthest to the right", "right"),
        ("the last triangle from the left", "right"),
        ("of the triangles, the one highest up", "top"),
        ("the triangle nearest the bottom edge", "bottom"),
        ("the lowest triangle", "bottom"),
    ],
)
def test_extremes_read_as_rank_one(parser, text, direction):
    assert read_plan(text, parser) == Plan("ordinal", "all triangles", direction=direction)


@pytest.mark.parametrize(
    ("text", "relation"),
    [
        ("the circle left of the blue square", "left of"),
        ("the circle to the left of the blue square", "left of"),
        ("the circle that is on the left of the blue square", "left of"),
        ("to the left of the blue square, the circle", "left of"),
        ("the circle lying beneath the blue square", "below"),
        ("circle below the blue square", "below"),
        ("the circle higher up than the blue square", "above"),
    ],
)
def test_relation_rewordings(parser, text, relation):
    plan = read_plan(text, parser)
    assert plan == Plan("relation", "all circles", relation=relation, anchor="the blue square")


@pytest.mark.parametrize(
    ("text", "members"),
    [
        ("every triangle", "all triangles"),
        ("each red shape", "all red shapes"),
        ("both cats", "all cats"),
        ("the three dotted figures", "all dotted figures"),
        ("every item in purple", "all items in purple"),
        ("the man in the red jacket", None),  # not compositional: asked as it is
        ("all green shapes", None),  # already a set request
        ("the six-sided shape", None),
    ],
)
def test_sets_and_other_expressions(parser, text, members):
    plan = read_plan(text, parser)
    assert (plan.members if plan else None) == members


def test_postposed_descriptions_keep_their_words(parser):
    plan = read_plan("the object coloured red lying above the triangle with spots", parser)
    assert (plan.members, plan.anchor) == ("all objects coloured red", "the triangle with spots")
    assert read_plan("the people right of the car", parser).plural


def test_detector_first_pipeline_answers_ordinals_and_relations_by_instances(parser):
    plain = ReferringSegmentation(BoxSegmenter(), DETECTOR, parser=parser)
    composed = replace(plain, compose=True)
    text = "the second square from the left"
    assert np.array_equal(plain(IMAGE, text).union_mask(), box_mask(BLUE))
    result = composed(IMAGE, text)
    assert len(result) == 1 and np.array_equal(result[0].mask, box_mask(GREEN))
    assert result[0].attributes == {"strategy": "compose"}
    assert result.model["strategy"] == "compose"
    nearest = composed(IMAGE, "the square to the right of the red square")
    assert np.array_equal(nearest.union_mask(), box_mask(GREEN))
    assert len(composed(IMAGE, "every square")) == 3
    assert len(composed(IMAGE, "the fifth square from the top")) == 0


def test_one_union_mask_is_split_into_instances(parser):
    union = box_mask(RED) | box_mask(GREEN) | box_mask(BLUE)
    answers = {"all squares": [union], "the red square": [box_mask(RED)]}

    def segment(text: str) -> list[np.ndarray]:
        return answers.get(text, [])

    assert len(split_instances(union)) == 3
    assert np.array_equal(compose("the rightmost square", parser, segment)[0], box_mask(BLUE))
    assert np.array_equal(
        compose("the square under the red square", parser, segment)[0], box_mask(BLUE)
    )
    assert compose("the star left of the red square", parser, segment) == []
    assert compose("the red square", parser, segment) is None


def test_compose_needs_a_parser():
    with pytest.raises(InputError, match="needs a phrase parser"):
        ReferringSegmentation(BoxSegmenter(), DETECTOR, compose=True)


@pytest.mark.slow
def test_opt_in_per_call_and_per_preset_with_the_shapes_model():
    image = str(pixelground.__path__[0]) + "/../examples/shapes.png"
    pipe = pixelground.load("shapes")
    text = "the shape furthest to the left"
    assert "strategy" not in pipe.segment(image, text).model
    assert pipe.segment(image, text, compose=True).model["strategy"] == "compose"
    opted = Pipeline(replace(pipe.preset, compose=True))
    result = opted.segment(image, text)
    assert result.model["strategy"] == "compose" and len(result) == 1
    assert "strategy" not in opted.segment(image, text, compose=False).model
