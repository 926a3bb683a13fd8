"""``set_fallback``: a refused "the large red star" answered from "all red shapes" and "all
large stars", and a refused "the red square left of the circle" from the red squares and the
circle, when the instance found reads as the words."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from drawing import square

from pixelground.core.errors import InputError
from pixelground.models.backend import SegTokenModelBackend
from pixelground.models.colour_sets import ColourSplit, instances_in_both, parse_colour_split
from pixelground.models.config import SegModelConfig

KNOWN = ("large", "small", "striped", "red", "green", "blue", "star", "square", "triangle")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (
            "the large red star",
            ColourSplit("all red shapes", "all large stars", ("large", "red", "star")),
        ),
        (
            "The small  striped green triangle.",
            ColourSplit(
                "all green shapes",
                "all small striped triangles",
                ("small", "striped", "green", "triangle"),
            ),
        ),
        (
            "the large blue shape",
            ColourSplit("all blue shapes", "all large shapes", ("large", "blue", "shape")),
        ),
    ],
)
def test_an_attribute_expression_is_split_into_its_colour_and_the_rest(expression, expected):
    assert parse_colour_split(expression, KNOWN) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "the large star",  # no colour
        "the red green star",  # two colours
        "the star red",  # the colour is not before the noun
        "the red star left of the square",  # words the heads do not know: a relation
        "all red stars",  # not "the ..."
        "the red",
        "",
    ],
)
def test_other_expressions_are_not_split(expression):
    assert parse_colour_split(expression, KNOWN) is None


def test_the_set_noun_is_the_checkpoints():
    split = parse_colour_split("the red box", (*KNOWN, "box"), set_noun="object")
    assert split is not None and split.colour_set == "all red objects"
    assert split.rest_set == "all boxes"


def test_the_instances_of_the_rest_inside_the_colour_are_kept_most_inside_first():
    star, other, third = square(2, 2), square(2, 20), square(25, 10)
    rest = star | other | third  # one mask: split into its pieces
    colour = square(0, 0, size=9) | square(24, 9, size=5)  # all of star, 16 of third's 36 pixels
    kept = instances_in_both(colour, rest)
    assert len(kept) == 1 and np.array_equal(kept[0], star)
    colour |= square(24, 9, size=7)  # 25 of 36: third is kept too, after star
    kept = instances_in_both(colour, rest)
    assert len(kept) == 2 and np.array_equal(kept[0], star) and np.array_equal(kept[1], third)
    # several masks of the colour's set are one set; several of the rest's, one instance each
    colours = np.stack([square(24, 9, size=8), square(30, 30)])
    kept = instances_in_both(colours, np.stack([star, third]))
    assert len(kept) == 1 and np.array_equal(kept[0], third)


def test_nothing_is_kept_when_no_instance_is_mostly_of_the_colour():
    star = square(2, 2)
    colour = square(2, 2, size=2)  # 4 of its 36 pixels
    assert instances_in_both(colour, star).shape == (0, 40, 40)
    assert instances_in_both(colour, np.zeros((40, 40), bool)).shape == (0, 40, 40)


def test_the_threshold_must_be_a_probability_and_the_set_noun_one_word():
    with pytest.raises(InputError, match="set_fallback"):
        SegModelConfig(set_fallback=1.5)
    assert SegModelConfig(set_fallback=0.25).set_fallback == 0.25
    for bad in ("", "red shape"):
        with pytest.raises(InputError, match="set_noun must be one word"):
            SegModelConfig(set_noun=bad)


@pytest.fixture
def colour_backend(seeded_model, tmp_path) -> SegTokenModelBackend:
    model = seeded_model(word_loss_weight=0.5, phrase_words=["red", "square"], set_fallback=0.25)
    model.save_pretrained(tmp_path / "ckpt")
    return SegTokenModelBackend(tmp_path / "ckpt", device="cpu")


def test_the_option_is_saved_with_the_checkpoint(colour_backend):
    config = json.loads((colour_backend.checkpoint / "config.json").read_text())
    assert config["set_fallback"] == 0.25 and config["set_noun"] == "shape"


def _fake_answers(backend, monkeypatch, fit: float, own: list[np.ndarray]) -> list[str]:
    red, other = square(10, 4, side=64), square(12, 40, side=64)
    answers = {"all red shapes": [red], "all squares": [red | other]}
    asked: list[str] = []

    def answer(pixels, expression):
        asked.append(expression)
        return answers.get(expression, own)

    monkeypatch.setattr(backend, "_answer_referring", answer)
    monkeypatch.setattr(
        "pixelground.models.target_decision.mask_word_fit",
        lambda model, image, mask, text, views: fit,
    )
    return asked


def test_a_refused_expression_is_answered_from_its_two_sets(colour_backend, monkeypatch):
    asked = _fake_answers(colour_backend, monkeypatch, fit=math.log(0.3), own=[])
    masks = colour_backend.segment_expression(np.zeros((64, 64, 3), np.uint8), "the red square")
    assert asked == ["the red square", "all red shapes", "all squares"]
    assert len(masks) == 1 and np.array_equal(masks[0], square(10, 4, side=64))


def test_the_refusal_stands_when_the_instance_does_not_read_as_the_words(
    colour_backend, monkeypatch
):
    _fake_answers(colour_backend, monkeypatch, fit=math.log(0.2), own=[])
    assert (
        colour_backend.segment_expression(np.zeros((64, 64, 3), np.uint8), "the red square") == []
    )


def test_an_answered_expression_is_not_asked_again(colour_backend, monkeypatch):
    own = [np.ones((64, 64), bool)]
    asked = _fake_answers(colour_backend, monkeypatch, fit=0.0, own=own)
    masks = colour_backend.segment_expression(np.zeros((64, 64, 3), np.uint8), "the red square")
    assert asked == ["the red square"] and masks[0].all()


def test_without_the_option_a_refusal_stands(seeded_model, tmp_path, monkeypatch):
    seeded_model(word_loss_weight=0.5, phrase_words=["red", "square"]).save_pretrained(
        tmp_path / "c"
    )
    backend = SegTokenModelBackend(tmp_path / "c", device="cpu")
    asked = _fake_answers(backend, monkeypatch, fit=0.0, own=[])
    assert backend.segment_expression(np.zeros((64, 64, 3), np.uint8), "the red square") == []
    assert asked == ["the red square"]


def test_mask_word_fit_reads_the_phrase_word_head_on_the_region(seeded_model, tiny_data):
    from pixelground.core.media import load_image
    from pixelground.models.target_decision import mask_word_fit

    model = seeded_model(word_loss_weight=0.5, phrase_words=["red", "square"]).eval()
    image = load_image(tiny_data.parent / "images" / "000.png").pixels
    mask = np.zeros(image.shape[:2], bool)
    mask[: image.shape[0] // 2, : image.shape[1] // 2] = True  # the top-left quarter
    embed = model.encode_image(model.preprocess([image])).embed[0]
    side = embed.shape[-1]
    weights = torch.zeros(side, side)
    weights[: side // 2, : side // 2] = 1
    region = (embed * weights).sum((1, 2)) / weights.sum()
    with torch.no_grad():
        log_p = torch.nn.functional.logsigmoid(model.word_heads[0](region))
    words = model.tokenizer.convert_tokens_to_ids(["red", "square"])
    fit = mask_word_fit(model, image, mask, "the red square")
    assert fit == pytest.approx(float(log_p[words].min()), abs=1e-4) and fit < 0
    assert mask_word_fit(model, image, mask, "the thing") == 0.0  # no word it knows
    with pytest.raises(InputError, match="empty"):
        mask_word_fit(model, image, np.zeros_like(mask), "the red square")


def test_the_real_model_answers_with_image_sized_masks(colour_backend, tiny_data):
    from pixelground.core.media import load_image

    image = load_image(tiny_data.parent / "images" / "000.png").pixels
    for expression in ("the red square", "the small red square"):
        for mask in colour_backend.segment_expression(image, expression):
            assert mask.dtype == bool and mask.shape == image.shape[:2]
