"""Owlv2Detector and GroundingDinoDetector: tiny random-weight models, real 480x854 image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pixelground.backends.base import Detection, Detector
from pixelground.backends.grounding_dino import GroundingDinoDetector, _phrase_spans
from pixelground.backends.owlv2 import Owlv2Detector
from pixelground.backends.tiny.vision import build_tiny_grounding_dino, build_tiny_owlv2
from pixelground.core.errors import CheckpointMissingError, InputError
from pixelground.core.media import load_image

QUERIES = ["a black swan", "water", "the tree"]


@pytest.fixture(scope="module")
def swan(swan_image_path: Path) -> np.ndarray:
    return load_image(swan_image_path).pixels


@pytest.fixture(scope="module")
def owlv2(tmp_path_factory) -> Owlv2Detector:
    return Owlv2Detector(str(build_tiny_owlv2(tmp_path_factory.mktemp("owlv2"))), device="cpu")


@pytest.fixture(scope="module")
def gdino(tmp_path_factory) -> GroundingDinoDetector:
    directory = build_tiny_grounding_dino(tmp_path_factory.mktemp("gdino"))
    return GroundingDinoDetector(str(directory), device="cpu")


@pytest.fixture(params=["owlv2", "gdino"])
def detector(request):
    return request.getfixturevalue(request.param)


def test_loads_through_constructor(detector):
    assert isinstance(detector, Detector)
    assert detector.info["class"] == type(detector).__name__
    assert Path(detector.info["checkpoint"]).is_dir()


def test_detections_are_valid_boxes_in_the_image(detector, swan):
    found = detector.detect(swan, QUERIES, threshold=0.0)
    assert found, "random weights still give boxes at threshold 0"
    for detection in found:
        assert isinstance(detection, Detection)
        x0, y0, x1, y1 = detection.box
        assert 0 <= x0 < x1 <= 854 and 0 <= y0 < y1 <= 480
        assert 0.0 <= detection.score <= 1.0
        assert 0 <= detection.query_index < len(QUERIES)
        assert detection.label == QUERIES[detection.query_index]
    scores = [d.score for d in found]
    assert scores == sorted(scores, reverse=True)


def test_threshold_keeps_only_confident_boxes(detector, swan):
    everything = detector.detect(swan, QUERIES, threshold=0.0)
    cut = float(np.median([d.score for d in everything]))
    confident = detector.detect(swan, QUERIES, threshold=cut)
    assert 0 < len(confident) < len(everything)
    assert all(d.score > cut for d in confident)


@pytest.mark.parametrize("queries", [[], [""], ["a swan", "   "]])
def test_empty_queries_are_input_errors(detector, swan, queries):
    with pytest.raises(InputError):
        detector.detect(swan, queries)


@pytest.mark.parametrize("cls", [Owlv2Detector, GroundingDinoDetector])
def test_missing_checkpoint_directory(cls, tmp_path):
    with pytest.raises(CheckpointMissingError):
        cls(str(tmp_path / "absent"))


# --------------------------------------------------------------------------- OWLv2


def test_owlv2_boxes_undo_the_square_padding(owlv2, swan):
    """OWLv2 pads 480x854 to 854x854: normalised boxes scale by 854 on both axes."""
    inputs = owlv2.processor(text=[QUERIES], images=swan, return_tensors="pt")
    with torch.inference_mode():
        outputs = owlv2.model(**inputs)
    scores = outputs.logits[0].sigmoid().max(dim=-1)
    best = int(scores.values.argmax())
    cx, cy, w, h = outputs.pred_boxes[0, best].tolist()
    expected = np.clip(np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * 854, 0, None)
    expected = np.minimum(expected, [854, 480, 854, 480])
    top = owlv2.detect(swan, QUERIES, threshold=0.0)[0]
    np.testing.assert_allclose(top.box, expected, rtol=1e-4, atol=1e-3)
    assert top.query_index == int(scores.indices[best])
    assert top.score == pytest.approx(float(scores.values[best]), rel=1e-5)


def test_owlv2_nms_removes_overlaps_within_a_query(tmp_path, swan):
    directory = build_tiny_owlv2(tmp_path / "owlv2")
    loose = Owlv2Detector(str(directory), device="cpu", nms_threshold=None)
    strict = Owlv2Detector(str(directory), device="cpu", nms_threshold=0.0)
    everything = loose.detect(swan, QUERIES, threshold=0.0)
    kept = strict.detect(swan, QUERIES, threshold=0.0)
    assert len(kept) <= len(everything)
    for query in range(len(QUERIES)):
        boxes = np.array([d.box for d in kept if d.query_index == query]).reshape(-1, 4)
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                overlap_w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
                overlap_h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
                assert overlap_w <= 1e-6 or overlap_h <= 1e-6


# --------------------------------------------------------------------------- Grounding DINO


def test_gdino_phrase_tokens_follow_the_caption(gdino):
    phrases = ["a black swan", "water", "the tree"]
    caption = ". ".join(phrases) + "."
    assert caption == "a black swan. water. the tree."
    spans = _phrase_spans(phrases)
    assert [caption[s:e] for s, e in spans] == phrases
    length = len(gdino.tokenizer(caption)["input_ids"])
    tokens = gdino._phrase_tokens(caption, spans, length)
    ids = gdino.tokenizer(caption)["input_ids"]
    words = [gdino.tokenizer.decode([ids[i] for i in t]) for t in tokens]
    assert words == phrases
    dot = gdino.tokenizer.convert_tokens_to_ids(".")
    assert dot == 1012  # Grounding DINO splits phrases at bert-base's "." id
    assert all(ids[t[-1] + 1] == dot for t in tokens)


def test_gdino_query_index_is_the_best_phrase(gdino, swan):
    """Each box goes to the query whose tokens it scores highest on average."""
    caption = "a black swan. water. the tree."
    inputs = gdino.processor(images=swan, text=caption, return_tensors="pt")
    with torch.inference_mode():
        outputs = gdino.model(**inputs)
    probs = outputs.logits[0].sigmoid().numpy()
    token_sets = [[1, 2, 3], [5], [7, 8]]  # [CLS] a black swan . water . the tree . [SEP]
    phrase_scores = np.stack([probs[:, t].mean(axis=1) for t in token_sets], axis=1)
    found = gdino.detect(swan, ["A  black swan", "water.", "the tree"], threshold=0.0)
    assert len(found) == phrase_scores.shape[0]
    expected = sorted(
        ((float(s.max()), int(s.argmax())) for s in phrase_scores), key=lambda p: -p[0]
    )
    got = [(d.score, d.query_index) for d in found]
    np.testing.assert_allclose([g[0] for g in got], [e[0] for e in expected], rtol=1e-5)
    assert [g[1] for g in got] == [e[1] for e in expected]


def test_gdino_splits_long_query_lists_into_passes(gdino, swan, monkeypatch):
    monkeypatch.setattr(gdino, "max_text_len", 12)  # [CLS] + 10 tokens + [SEP]
    queries = [f"swan {i}" for i in range(7)]  # 3 tokens each with the "."
    chunks = gdino._chunks([q for q in queries])
    assert chunks == [[0, 1, 2], [3, 4, 5], [6]]
    found = gdino.detect(swan, queries, threshold=0.0)
    assert {d.query_index for d in found} <= set(range(7))
    assert len(found) == 3 * gdino.model.config.num_queries
    with pytest.raises(InputError, match="too long"):
        gdino.detect(swan, ["one two three four five six seven eight nine ten eleven"])


def test_gdino_dots_only_query_is_an_input_error(gdino, swan):
    with pytest.raises(InputError):
        gdino.detect(swan, ["a swan", "..."])
