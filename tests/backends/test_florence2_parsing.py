"""Florence-2 output parsers on fixed strings, malformed ones included."""

from __future__ import annotations

import sys

import pytest

from pixelground.backends import florence2_parsing as fp


def test_module_does_not_import_torch() -> None:
    source = open(fp.__file__, encoding="utf-8").read()
    assert "import torch" not in source and "torch" not in fp.__dict__
    assert "pixelground.backends.florence2_parsing" in sys.modules


@pytest.mark.parametrize(
    ("bin_index", "size", "expected"),
    [(0, 1000, 0.5), (999, 1000, 999.5), (500, 854, 427.427), (1234, 100, 99.95), (-3, 100, 0.05)],
)
def test_dequantize_is_bin_centre(bin_index: int, size: int, expected: float) -> None:
    assert fp.dequantize(bin_index, size) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("coord", "size", "expected"),
    [(0.0, 854, 0), (853.9, 854, 999), (854.0, 854, 999), (427.0, 854, 500), (-5.0, 480, 0)],
)
def test_quantize_matches_florence_processor(coord: float, size: int, expected: int) -> None:
    # Florence2PostProcessor.quantize: floor(coord / (size / 1000)) clamped to [0, 999].
    assert fp.quantize(coord, size) == expected


def test_quantize_rejects_empty_size() -> None:
    with pytest.raises(ValueError):
        fp.quantize(3.0, 0)


def test_quantize_dequantize_round_trip_within_one_bin() -> None:
    for size in (480, 854, 1000):
        for coord in (0.0, 13.7, size / 3, size - 1.0):
            back = fp.dequantize(fp.quantize(coord, size), size)
            assert abs(back - coord) <= size / 1000


def test_box_to_location_tokens() -> None:
    assert fp.box_to_location_tokens((0, 0, 854, 480), 854, 480) == (
        "<loc_0><loc_0><loc_999><loc_999>"
    )
    assert fp.box_to_location_tokens((427, 120, 500.5, 240), 854, 480) == (
        "<loc_500><loc_250><loc_586><loc_500>"
    )
    with pytest.raises(ValueError):
        fp.box_to_location_tokens((1, 2, 3), 10, 10)


def test_location_bins_and_clean_text() -> None:
    text = "</s><s>a cat<loc_1><loc_2><loc_3><loc_4000></s><pad>"
    assert fp.location_bins(text) == [1, 2, 3, 999]
    assert fp.clean_text(text) == "a cat"
    assert fp.clean_text("<s>A black swan  swimming\n on water.</s>") == (
        "A black swan swimming on water."
    )
    assert fp.clean_text("") == ""


def test_lex_keeps_stray_angle_brackets_as_text() -> None:
    pieces = fp.lex("a < b<loc_5> <sep> c")
    assert [p.kind for p in pieces] == ["text", "loc", "text", "tag", "text"]
    assert pieces[0].value == "a < b" and pieces[1].loc_index == 0 and pieces[3].value == "<sep>"


def test_phrase_boxes_two_phrases_and_multiple_boxes() -> None:
    text = (
        "</s>a cat<loc_0><loc_0><loc_499><loc_999>"
        "two dogs<loc_500><loc_0><loc_999><loc_499><loc_500><loc_500><loc_999><loc_999></s>"
    )
    found = fp.parse_phrase_boxes(text, 1000, 2000)
    assert [p.phrase for p in found] == ["a cat", "two dogs"]
    assert found[0].boxes[0].coords == pytest.approx((0.5, 1.0, 499.5, 1999.0))
    assert len(found[1].boxes) == 2
    assert [b.loc_index for b in found[1].boxes] == [4, 8]
    assert found[1].boxes[1].coords == pytest.approx((500.5, 1001.0, 999.5, 1999.0))


def test_phrase_boxes_drop_partial_boxes_empty_and_banned_phrases() -> None:
    text = "<loc_1><loc_2><loc_3><loc_4>it<loc_1><loc_2><loc_3><loc_4>swan<loc_1><loc_2><loc_3>"
    assert fp.parse_phrase_boxes(text, 100, 100, banned=("It",)) == []
    kept = fp.parse_phrase_boxes(text, 100, 100, allow_empty=True)
    assert [p.phrase for p in kept] == ["", "it"]  # "swan" has only 3 of 4 tokens
    assert fp.parse_boxes(text, 100, 100) == [
        pytest.approx((0.15, 0.25, 0.35, 0.45)),
        pytest.approx((0.15, 0.25, 0.35, 0.45)),
    ]


def test_phrase_boxes_on_garbage() -> None:
    for text in ("", "no locations here", "<loc_>x<loc_a>", "<<<>>>", "<loc_1"):
        assert fp.parse_phrase_boxes(text, 100, 100) == []


def test_quad_boxes() -> None:
    text = "</s>HELLO<loc_0><loc_0><loc_9><loc_0><loc_9><loc_9><loc_0><loc_9>bye<loc_1><loc_2>"
    quads = fp.parse_quad_boxes(text, 1000, 1000)
    assert len(quads) == 1
    label, quad = quads[0]
    assert label == "HELLO"
    assert quad == pytest.approx((0.5, 0.5, 9.5, 0.5, 9.5, 9.5, 0.5, 9.5))


def test_polygons_referring_segmentation_output() -> None:
    # What <REFERRING_EXPRESSION_SEGMENTATION> writes: no label, polygons split by <sep>.
    text = (
        "</s><loc_0><loc_0><loc_999><loc_0><loc_999><loc_999>"
        "<sep><loc_10><loc_10><loc_20><loc_10><loc_20><loc_20><loc_5></s>"
    )
    objects = fp.parse_polygons(text, 1000, 500)
    assert len(objects) == 1 and objects[0].label == ""
    first, second = objects[0].polygons
    assert first == pytest.approx([0.5, 0.25, 999.5, 0.25, 999.5, 499.75])
    assert len(second) == 6  # the odd trailing coordinate is dropped


def test_polygons_labels_and_poly_wrappers() -> None:
    text = (
        "cat<poly><loc_0><loc_0><loc_9><loc_0><loc_9><loc_9></poly>"
        "<poly><loc_50><loc_50><loc_60><loc_50><loc_60><loc_60></poly>"
        "dog<loc_1><loc_1><loc_2><loc_1><loc_2><loc_2>"
    )
    objects = fp.parse_polygons(text, 1000, 1000)
    assert [o.label for o in objects] == ["cat", "cat", "dog"]
    assert all(len(o.polygons) == 1 for o in objects)


def test_polygons_too_short_or_malformed_are_dropped() -> None:
    assert fp.parse_polygons("<loc_1><loc_2><loc_3><loc_4>", 10, 10) == []
    assert fp.parse_polygons("", 10, 10) == []
    assert fp.parse_polygons("<sep><poly></poly>just words", 10, 10) == []
