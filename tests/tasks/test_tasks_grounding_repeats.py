"""Detector-first grounding detects a phrase that the text repeats only once."""

from __future__ import annotations

import numpy as np
from fakes import BoxSegmenter, TableDetector, WordParser, colour_squares_image

from pixelground.tasks.grounding import PhraseGrounding

IMAGE = colour_squares_image()
RED, BLUE = (10, 20, 40, 50), (120, 70, 150, 100)


class CountingDetector(TableDetector):
    """A TableDetector that records the queries of every call."""

    def __init__(self, table):
        super().__init__(table)
        self.queries: list[list[str]] = []

    def detect(self, image, queries, threshold=0.2):
        self.queries.append(list(queries))
        return super().detect(image, queries, threshold)


def test_repeated_phrases_are_detected_once_and_all_grounded():
    detector = CountingDetector({"a red square": [(RED, 0.9)], "a blue square": [(BLUE, 0.8)]})
    task = PhraseGrounding(BoxSegmenter(), WordParser(), detector=detector)
    text = "<p>a red square</p> and <p>a blue square</p>, then <p>a red square</p> again"
    result = task(IMAGE, text)

    assert detector.queries == [["a red square", "a blue square"]]
    assert [r.phrase for r in result] == ["a red square", "a blue square", "a red square"]
    spans = [r.span for r in result]
    assert spans[0] != spans[2]  # each occurrence keeps its own span
    for region in result:
        assert result.text[region.span[0] : region.span[1]] == region.phrase
    assert np.array_equal(result[0].mask, result[2].mask)
    assert result[1].mask[80, 130] and not result[0].mask[80, 130]
