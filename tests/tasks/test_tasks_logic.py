"""Task logic with deterministic fakes: selection, spans, fusion, labels, errors."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import (
    BoxSegmenter,
    EchoCaptioner,
    FixedVLM,
    HashScorer,
    TableDetector,
    WordParser,
    colour_squares_image,
)

from pixelground.core.errors import InputError
from pixelground.core.prompts import Box, Point
from pixelground.core.result import GroundedResult
from pixelground.tasks.chat import Chat
from pixelground.tasks.common import parse_marked_phrases, wants_many
from pixelground.tasks.entity import EntitySegmentation, corner_crops, mask_nms, resolve_overlaps
from pixelground.tasks.gcg import GroundedCaptioning
from pixelground.tasks.grounding import PhraseGrounding
from pixelground.tasks.referring import ReferringSegmentation
from pixelground.tasks.region import RegionUnderstanding
from pixelground.tasks.semseg import OpenVocabSegmentation, parse_classes

IMAGE = colour_squares_image()
RED, GREEN, BLUE = (10, 20, 40, 50), (60, 20, 90, 50), (120, 70, 150, 100)
DETECTOR = TableDetector(
    {
        "the red square": [(RED, 0.9), (GREEN, 0.4)],
        "all squares": [(RED, 0.8), (GREEN, 0.7), (BLUE, 0.6), ((11, 21, 41, 51), 0.5)],
        "the purple square": [(BLUE, 0.1)],
        "a red square": [(RED, 0.9)],
        "a blue square": [(BLUE, 0.8)],
    }
)


def box_mask(box):
    mask = np.zeros(IMAGE.shape[:2], dtype=bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return mask


def test_referring_single_target_keeps_best_box():
    task = ReferringSegmentation(BoxSegmenter(), DETECTOR, parser=WordParser())
    result = task(IMAGE, "the red square")
    assert len(result) == 1
    assert np.array_equal(result[0].mask, box_mask(RED))
    assert result[0].span == (0, len("the red square")) and result.text == "the red square"
    assert result[0].score == pytest.approx(0.9)


def test_referring_multi_target_keeps_all_after_nms():
    result = ReferringSegmentation(BoxSegmenter(), DETECTOR, parser=WordParser())(
        IMAGE, "all squares"
    )
    assert len(result) == 3  # the near-duplicate red box is suppressed
    union = result.union_mask()
    assert union.sum() == sum(box_mask(b).sum() for b in (RED, GREEN, BLUE))


def test_referring_no_target_is_empty():
    result = ReferringSegmentation(BoxSegmenter(), DETECTOR, parser=WordParser())(
        IMAGE, "the purple square"
    )
    assert len(result) == 0 and result.task == "segment"
    assert GroundedResult.from_dict(result.to_dict()).to_dict() == result.to_dict()


@pytest.mark.parametrize("text", ["", "   ", "?!", None])
def test_referring_rejects_empty_text(text):
    with pytest.raises(InputError):
        ReferringSegmentation(BoxSegmenter(), DETECTOR)(IMAGE, text)


def test_marked_phrases_give_spans_into_clean_text():
    text, phrases = parse_marked_phrases("<p>a red square</p> next to <p>a blue square</p>.")
    assert text == "a red square next to a blue square."
    assert [text[p.start : p.end] for p in phrases] == ["a red square", "a blue square"]


def test_wants_many_uses_quantifiers_and_parser():
    assert wants_many("all the cats", None)
    assert wants_many("two dogs", None)
    assert not wants_many("the dog", WordParser())
    assert wants_many("the dogs", WordParser())


def test_phrase_grounding_detector_first():
    task = PhraseGrounding(BoxSegmenter(), WordParser(), detector=DETECTOR)
    result = task(IMAGE, "<p>a red square</p> next to <p>a blue square</p>.")
    groups = result.by_phrase()
    assert list(groups) == ["a red square", "a blue square"]
    assert np.array_equal(groups["a blue square"][0].mask, box_mask(BLUE))
    for region in result:
        assert result.text[region.span[0] : region.span[1]] == region.phrase


def test_phrase_grounding_parses_phrases_without_markup():
    result = PhraseGrounding(BoxSegmenter(), WordParser(), detector=DETECTOR)(
        IMAGE, "a red square next to a blue square"
    )
    assert result.phrases == ["a red square", "a blue square"]


def test_phrase_grounding_without_phrases_is_an_error():
    with pytest.raises(InputError, match="no noun phrase"):
        PhraseGrounding(BoxSegmenter(), WordParser(), detector=DETECTOR)(IMAGE, "hello there")


def test_entity_segmentation_fuses_views_without_overlap():
    task = EntitySegmentation(BoxSegmenter(), points_per_side=4, quality_threshold=0.5, min_area=16)
    result = task(IMAGE)
    assert len(result) > 0
    masks = result.masks
    assert masks.sum(axis=0).max() == 1  # no pixel belongs to two entities
    assert result.task == "entities"


def test_corner_crops_cover_image_and_inner_edges():
    crops = corner_crops(100, 50, 0.6)
    assert crops[0] == (0, 0, 100, 50) and len(crops) == 5
    assert crops[4] == (40, 20, 100, 50)


def test_mask_nms_and_overlap_resolution():
    a = np.zeros((10, 10), bool)
    a[:5] = True
    b = a.copy()
    b[5] = True  # IoU(a, b) = 50/60
    c = np.zeros((10, 10), bool)
    c[4:] = True
    keep = mask_nms([a, b, c], np.array([0.9, 0.8, 0.7]), 0.7)
    assert keep == [0, 2]
    resolved = resolve_overlaps([a, b, c], keep, min_area=1, min_kept_fraction=0.5)
    assert [i for i, _ in resolved] == [0, 2]
    assert resolved[1][1].sum() == 50  # c lost its first row to a


def test_entity_first_grounding_associates_colours():
    task = PhraseGrounding(
        BoxSegmenter(),
        WordParser(),
        scorer=HashScorer(),
        strategy="entity",
        entity_options={"points_per_side": 8, "quality_threshold": 0.5, "min_area": 16},
    )
    result = task(IMAGE, "<p>the green square</p> and <p>the blue square</p>")
    for phrase, colour in (("the green square", (0, 255, 0)), ("the blue square", (0, 0, 255))):
        regions = result.by_phrase()[phrase]
        assert len(regions) == 1
        pixels = IMAGE[regions[0].mask]
        coloured = pixels[pixels.any(axis=1)]  # the fake's square masks also cover black
        assert (coloured == colour).all(axis=1).mean() > 0.5


def test_grounded_caption_two_stage():
    grounding = PhraseGrounding(
        BoxSegmenter(), WordParser(), detector=TableDetector({"a red square": [(RED, 0.9)]})
    )
    task = GroundedCaptioning(captioner=EchoCaptioner(), grounding=grounding)
    result = task(IMAGE[10:60, 0:50], grounded=True)
    assert result.text.startswith("a red square")
    assert result.task == "caption" and result.phrases[0] == "a red square"
    plain = task(IMAGE, grounded=False)
    assert len(plain) == 0 and plain.text


def test_region_understanding_from_point_box_and_mask():
    task = RegionUnderstanding(EchoCaptioner(), BoxSegmenter())
    by_box = task(IMAGE, box=Box(*BLUE))
    assert by_box[0].label == "blue square"
    assert np.array_equal(by_box[0].mask, box_mask(BLUE))
    assert set(by_box[0].attributes) == {"short_caption", "detailed_caption"}
    assert by_box.text == by_box[0].attributes["detailed_caption"]
    by_point = task(IMAGE, point=Point(25, 35))
    assert by_point[0].mask[35, 25]
    by_mask = task(IMAGE, mask=box_mask(GREEN))
    assert by_mask[0].label == "green square"


def test_region_prompted_captioner_describes_the_mask_in_the_whole_image():
    class MaskCaptioner(EchoCaptioner):
        def describe_mask(self, image, mask):
            assert image.shape == IMAGE.shape  # the whole image, not a crop
            return f"region of {int(mask.sum())} pixels"

    result = RegionUnderstanding(MaskCaptioner(), BoxSegmenter())(IMAGE, box=Box(*GREEN))
    expected = f"region of {int(box_mask(GREEN).sum())} pixels"
    assert result[0].attributes == {"short_caption": expected, "detailed_caption": expected}
    assert result[0].label == "green square" and result.text == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"box": Box(*RED), "point": Point(1, 1)},
        {"box": Box(500, 500, 600, 600)},
        {"point": Point(-1, 3)},
    ],
)
def test_region_understanding_rejects_bad_prompts(kwargs):
    with pytest.raises(InputError):
        RegionUnderstanding(EchoCaptioner(), BoxSegmenter())(IMAGE, **kwargs)


def test_semseg_dense_labels_colours():
    result = OpenVocabSegmentation(HashScorer(), mode="dense")(
        IMAGE, "red thing, blue thing, green thing"
    )
    labels = result.label_map(["red thing", "blue thing", "green thing"])
    assert labels.shape == IMAGE.shape[:2]
    assert labels[35, 25] == 0 and labels[85, 135] == 1 and labels[35, 75] == 2
    assert result.model["classes"] == ["red thing", "blue thing", "green thing"]


def test_semseg_entity_mode_classifies_entities():
    task = OpenVocabSegmentation(
        HashScorer(),
        BoxSegmenter(),
        mode="entity",
        entity_options={"points_per_side": 8, "quality_threshold": 0.5, "min_area": 16},
    )
    result = task(IMAGE, ["red", "green", "blue"])
    labels = result.label_map(["red", "green", "blue"])
    assert labels[35, 25] == 0 and labels[85, 135] == 2


@pytest.mark.parametrize("classes", ["", " , ,", []])
def test_semseg_rejects_empty_classes(classes):
    with pytest.raises(InputError):
        parse_classes(classes)


def test_chat_grounds_answer_phrases():
    grounding = PhraseGrounding(BoxSegmenter(), WordParser(), detector=DETECTOR)
    vlm = FixedVLM("I see a red square and a blue square.")
    result = Chat(vlm=vlm, grounding=grounding)(IMAGE, "What is there?", history=[("hi", "hello")])
    assert result.text == "I see a red square and a blue square."
    assert result.phrases == ["a red square", "a blue square"]
    assert vlm.seen == [("What is there?", (("hi", "hello"),))]
    ungrounded = Chat(vlm=vlm, grounding=grounding)(IMAGE, "What?", ground_answer=False)
    assert len(ungrounded) == 0


def test_degenerate_and_outside_boxes_are_dropped():
    detector = TableDetector(
        {"the red square": [((30, 30, 30, 30), 0.99), ((-50, -50, -10, -10), 0.98), (RED, 0.5)]}
    )
    result = ReferringSegmentation(BoxSegmenter(), detector)(IMAGE, "the red square")
    assert len(result) == 1 and np.array_equal(result[0].mask, box_mask(RED))


def test_grounded_caption_end_to_end_uses_the_models_own_instruction():
    from pixelground.backends.base import GroundedText, Phrase

    class Model:
        gcg_prompt = "Describe the shapes."

        def __init__(self):
            self.prompts = []

        def ground(self, image, prompt):
            self.prompts.append(prompt)
            return GroundedText(
                text="a blue square here",
                phrases=[Phrase("a blue square", 0, 13)],
                masks=[box_mask(BLUE)],
            )

    model = Model()
    result = GroundedCaptioning(grounding_model=model)(IMAGE, grounded=True)
    assert model.prompts == ["Describe the shapes."]
    assert result.phrases == ["a blue square"] and np.array_equal(result[0].mask, box_mask(BLUE))
