"""Sa2VA / GLaMM answer parsing on fixed strings, malformed ones included."""

from __future__ import annotations

import numpy as np
import pytest

from pixelground.backends.sa2va_parsing import (
    SegPhrase,
    as_mask,
    extra_masks,
    masks_per_seg,
    parse_seg_answer,
    strip_chat_tokens,
)


def _check_spans(answer) -> None:
    for phrase in answer.phrases:
        assert answer.text[phrase.start : phrase.end] == phrase.text


def test_gcg_answer() -> None:
    raw = "<p> A man </p> [SEG] stands next to <p> a red car </p> [SEG].<|im_end|>"
    answer = parse_seg_answer(raw)
    assert answer.text == "A man stands next to a red car."
    assert answer.phrases == [
        SegPhrase("A man", 0, 5, 0),
        SegPhrase("a red car", 21, 30, 1),
    ]
    assert answer.seg_count == 2 and answer.unowned == []
    _check_spans(answer)


def test_referring_answer_has_an_unowned_seg() -> None:
    answer = parse_seg_answer("Sure, [SEG].<|im_end|>")
    assert answer.text == "Sure."
    assert answer.phrases == [] and answer.seg_count == 1
    assert answer.unowned == [(0, 4)]


def test_phrase_without_seg_and_seg_without_phrase() -> None:
    answer = parse_seg_answer("<p>a cat</p> sits on <p>a mat</p> [SEG] near [SEG] it")
    assert answer.text == "a cat sits on a mat near it"
    assert [p.seg_index for p in answer.phrases] == [None, 0]
    assert answer.seg_count == 2
    assert answer.unowned == [(1, 24)]
    _check_spans(answer)


def test_no_space_markup_and_extra_segs() -> None:
    answer = parse_seg_answer("<p>cat</p>[SEG] and <p>dog</p>[SEG][SEG]")
    assert answer.text == "cat and dog"
    assert [p.seg_index for p in answer.phrases] == [0, 1]
    assert answer.seg_count == 3 and [i for i, _ in answer.unowned] == [2]


@pytest.mark.parametrize(
    ("raw", "text", "phrases", "segs"),
    [
        ("", "", [], 0),
        ("plain words only", "plain words only", [], 0),
        ("<p> </p> [SEG]", "", [], 1),
        ("<p>unclosed cat [SEG]", "unclosed cat", [], 1),
        ("stray </p> close", "stray close", [], 0),
        ("<p>a <p>nested</p> thing</p> [SEG]", "a nested thing", ["a nested"], 1),
        ("ASSISTANT: <p>A swan</p> [SEG] swims</s>", "A swan swims", ["A swan"], 1),
        ("<s>[SEG][SEG]</s>", "", [], 2),
        ("<p>\n multi\n line </p>  [SEG]\n\n ok", "multi line ok", ["multi line"], 1),
    ],
)
def test_malformed_and_odd_answers(raw: str, text: str, phrases: list[str], segs: int) -> None:
    answer = parse_seg_answer(raw)
    assert answer.text == text
    assert [p.text for p in answer.phrases] == phrases
    assert answer.seg_count == segs
    _check_spans(answer)


def test_strip_chat_tokens() -> None:
    assert strip_chat_tokens("USER: hi ASSISTANT: <p>x</p> [SEG]<|im_end|><|endoftext|>") == (
        "<p>x</p> [SEG]"
    )


def test_as_mask_accepts_model_mask_formats() -> None:
    frame = np.zeros((1, 4, 6), dtype=bool)
    frame[0, 1:3, 2:5] = True
    mask = as_mask(frame, 4, 6)
    assert mask.shape == (4, 6) and mask.dtype == bool and mask.sum() == 6
    probabilities = np.full((4, 6), 0.4, dtype=np.float32)
    probabilities[0, 0] = 0.9
    assert as_mask(probabilities, 4, 6).sum() == 1
    assert as_mask(np.ones((2, 3), dtype=np.uint8), 4, 6).all()  # resized up
    assert not as_mask(None, 4, 6).any()
    with pytest.raises(ValueError):
        as_mask(np.zeros(5), 4, 6)


def test_as_mask_accepts_torch() -> None:
    torch = pytest.importorskip("torch")
    assert as_mask(torch.ones(1, 4, 6, dtype=torch.bool), 4, 6).all()


def test_more_or_fewer_masks_than_segs() -> None:
    ones = [np.ones((1, 2, 2), dtype=bool)] * 3
    fewer = masks_per_seg(ones[:1], 2, 2, 2)
    assert len(fewer) == 2 and fewer[0].all() and not fewer[1].any()
    more = masks_per_seg(ones, 2, 2, 2)
    assert len(more) == 2
    assert extra_masks(ones, 2) == 1 and extra_masks(ones[:1], 2) == 0
    assert extra_masks(None, 0) == 0 and masks_per_seg(None, 1, 2, 2)[0].shape == (2, 2)
