"""Florence2Backend on a tiny random-weight Florence-2 saved and loaded like a real checkpoint.

Random weights give random text, so these tests check formats, shapes, error handling
and the alignment of scores with location tokens, never content.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pixelground.backends.base import Captioner, Detection, Detector, ReferringSegmenter
from pixelground.backends.florence2 import (
    Florence2Backend,
    Generation,
    PhraseBoxes,
    find_span,
    match_query,
    native_checkpoint,
)
from pixelground.backends.tiny.language import build_florence2, real_size_config
from pixelground.core.errors import CheckpointMissingError, InputError, UnknownNameError
from pixelground.core.media import load_image


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_florence2(tmp_path_factory.mktemp("florence2"))


@pytest.fixture(scope="module")
def backend(tiny_dir: Path) -> Florence2Backend:
    return Florence2Backend(str(tiny_dir), device="cpu")  # 3 beams, as Florence-2 decodes


@pytest.fixture(scope="module")
def image(swan_image_path: Path) -> np.ndarray:
    return load_image(swan_image_path).pixels


def test_tiny_checkpoint_is_small_and_complete(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= names
    assert sum(p.stat().st_size for p in tiny_dir.iterdir()) < 5_000_000


def test_loads_through_constructor(backend: Florence2Backend, tiny_dir: Path) -> None:
    assert type(backend.model).__name__ == "Florence2ForConditionalGeneration"
    assert type(backend.processor).__name__ == "Florence2Processor"
    assert backend.info["class"] == "Florence2Backend"
    assert backend.info["checkpoint"] == str(tiny_dir)
    assert backend.info["device"] == "cpu" and backend.info["dtype"] == "float32"
    assert backend.max_new_tokens == 24  # the tiny checkpoint's own generation budget
    assert isinstance(backend, Captioner)
    assert isinstance(backend, Detector)
    assert isinstance(backend, ReferringSegmenter)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointMissingError, match="does not exist"):
        Florence2Backend(str(tmp_path / "nowhere"), device="cpu")
    with pytest.raises(CheckpointMissingError, match="not in the local cache"):
        Florence2Backend("nobody/no-such-florence", device="cpu")


def test_microsoft_ids_map_to_native_conversions() -> None:
    assert native_checkpoint("microsoft/Florence-2-base") == "florence-community/Florence-2-base"
    assert native_checkpoint("microsoft/Florence-2-large-ft") == (
        "florence-community/Florence-2-large-ft"
    )
    assert native_checkpoint("/some/dir") == "/some/dir"


def test_caption_is_plain_text(backend: Florence2Backend, image: np.ndarray) -> None:
    for detailed in (False, True, "more"):
        text = backend.caption(image, detailed=detailed)
        assert isinstance(text, str)
        assert not re.search(r"<loc_\d+>|</?s>|<pad>", text)
    with pytest.raises(InputError):
        backend.caption(image, detailed="very")


def test_describe_region(backend: Florence2Backend, image: np.ndarray) -> None:
    for detailed in (False, True):
        text = backend.describe_region(image, (100, 50, 400, 300), detailed=detailed)
        assert isinstance(text, str) and "<loc_" not in text
    with pytest.raises(InputError, match="no area"):
        backend.describe_region(image, (900, 10, 950, 20))
    with pytest.raises(InputError, match="no area"):
        backend.describe_region(image, (300, 300, 100, 100))
    with pytest.raises(InputError, match="3 numbers"):
        backend.describe_region(image, (1, 2, 3))


def test_run_scores_align_with_location_tokens(tiny_dir: Path, image: np.ndarray) -> None:
    for beams in (1, 2):
        model = Florence2Backend(str(tiny_dir), device="cpu", num_beams=beams)
        out = model.run(image, "<CAPTION_TO_PHRASE_GROUNDING>", "a black swan", scores=True)
        count = len(re.findall(r"<loc_\d+>", out.text))
        assert count > 0  # the tiny model's random output is mostly location tokens
        assert len(out.loc_scores) == count
        assert all(0.0 <= s <= 1.0 + 1e-6 for s in out.loc_scores)
    assert model.run(image, "<CAPTION>").loc_scores == []


def test_wider_tolerance_never_lowers_scores(tiny_dir: Path, image: np.ndarray) -> None:
    narrow = Florence2Backend(str(tiny_dir), device="cpu", num_beams=1, loc_tolerance=0)
    wide = Florence2Backend(str(tiny_dir), device="cpu", num_beams=1, loc_tolerance=50)
    a = narrow.run(image, "<CAPTION_TO_PHRASE_GROUNDING>", "a swan", scores=True).loc_scores
    b = wide.run(image, "<CAPTION_TO_PHRASE_GROUNDING>", "a swan", scores=True).loc_scores
    assert len(a) == len(b) > 0
    assert all(y >= x - 1e-6 for x, y in zip(a, b, strict=True))


def test_box_score_is_geometric_mean() -> None:
    assert Florence2Backend._box_score([0.5, 0.5, 0.5, 0.5, 0.1], 0) == pytest.approx(0.5)
    assert Florence2Backend._box_score([1.0, 0.25, 1.0, 1.0], 0) == pytest.approx(0.25**0.25)
    assert Florence2Backend._box_score([0.9, 0.9], 0) == 0.0  # incomplete box


def test_detect(backend: Florence2Backend, image: np.ndarray) -> None:
    height, width = image.shape[:2]
    queries = ["a black swan", "the water"]
    found = backend.detect(image, queries, threshold=0.3)
    # The tiny model is made confident (see tiny/language.py), so its boxes pass 0.3.
    assert found and all(isinstance(d, Detection) for d in found)
    assert {d.query_index for d in found} == {0, 1}
    for d in found:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert 0.3 <= d.score <= 1.0 and isinstance(d.label, str) and d.label
    assert backend.detect(image, queries, threshold=1.01) == []
    assert backend.detect(image, []) == []
    joined = backend.detect(image, queries, threshold=0.0, joined=True)
    assert all(0 <= d.query_index < len(queries) for d in joined)
    with pytest.raises(InputError):
        backend.detect(image, ["a swan", "  "])


def test_ground_phrases_spans_index_the_caption(
    backend: Florence2Backend, image: np.ndarray
) -> None:
    caption = "A black swan swims on the dark water."
    grounded = backend.ground_phrases(image, caption)
    assert isinstance(grounded, list)
    for item in grounded:
        assert isinstance(item, PhraseBoxes)
        assert caption[item.phrase.start : item.phrase.end] == item.phrase.text
        assert item.boxes.shape == (len(item.scores), 4) and item.boxes.dtype == np.float32
    with pytest.raises(InputError):
        backend.ground_phrases(image, "")


def test_segment_expression_masks(backend: Florence2Backend, image: np.ndarray) -> None:
    masks = backend.segment_expression(image, "the black swan")
    assert isinstance(masks, list)
    for mask in masks:
        assert mask.shape == image.shape[:2] and mask.dtype == bool and mask.any()
    with pytest.raises(InputError):
        backend.segment_expression(image, " ")


def test_bad_image_is_an_input_error(backend: Florence2Backend) -> None:
    with pytest.raises(InputError):
        backend.caption(np.zeros((4, 5, 7), dtype=np.uint8))


def test_match_query_and_find_span() -> None:
    queries = ["a black swan", "water"]
    assert match_query("A black swan", queries) == 0
    assert match_query("the water", queries) == 1
    assert match_query("sky", queries) is None
    text = "A swan and a swan."
    assert find_span(text, "a swan") == (0, 6)
    assert find_span(text, "a swan", 6) == (11, 17)
    assert find_span(text, "the black swan") == (2, 6)  # falls back to the head word
    assert find_span(text, "dog") is None


def test_real_size_config_matches_published_sizes() -> None:
    torch = pytest.importorskip("torch")
    from transformers import Florence2ForConditionalGeneration, Idefics3ForConditionalGeneration

    classes = {
        "florence2": Florence2ForConditionalGeneration,
        "smolvlm": Idefics3ForConditionalGeneration,
    }
    for name, millions in (
        ("florence2-base", 231.4),
        ("florence2-large", 770.2),
        ("smolvlm-256m", 256.5),
    ):
        config = real_size_config(name)
        with torch.device("meta"):
            model = classes[name.split("-")[0]](config)
        count = sum(p.numel() for p in model.parameters()) / 1e6
        assert count == pytest.approx(millions, abs=0.5)
    base = real_size_config("florence2-base")
    assert base.vision_config.embed_dim == [128, 256, 512, 1024]
    assert base.text_config.d_model == 768 and base.image_token_id == 51289
    with pytest.raises(UnknownNameError):
        real_size_config("florence3")


def test_from_model_wraps_an_in_memory_model(tiny_dir: Path, image: np.ndarray) -> None:
    from transformers import Florence2ForConditionalGeneration, Florence2Processor

    model = Florence2ForConditionalGeneration.from_pretrained(tiny_dir)
    processor = Florence2Processor.from_pretrained(tiny_dir)
    backend = Florence2Backend.from_model(model, processor, num_beams=1)
    assert backend.info["checkpoint"] == "in-memory" and backend.max_new_tokens == 24
    assert isinstance(backend.caption(image), str)


def test_post_processing_of_a_fixed_answer(
    backend: Florence2Backend, image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code after generation, on a scripted answer: corners, empty boxes, score mapping."""
    height, width = image.shape[:2]
    text = (
        "</s>swan<loc_500><loc_500><loc_100><loc_100>swan<loc_7><loc_7><loc_7><loc_9>"
        "pond<loc_0><loc_600><loc_999><loc_999></s>"
    )
    scores = [0.9] * 4 + [0.5] * 4 + [0.4, 0.4, 0.1, 0.1]
    monkeypatch.setattr(backend, "run", lambda *args, **kwargs: Generation(text, scores))
    found = backend.detect(image, ["a swan"], threshold=0.0)
    assert [d.label for d in found] == ["swan", "pond"]  # the zero-width box is dropped
    assert found[0].box == pytest.approx(
        (100.5 * width / 1000, 100.5 * height / 1000, 500.5 * width / 1000, 500.5 * height / 1000)
    )
    assert found[0].score == pytest.approx(0.9) and found[1].score == pytest.approx(0.2)
    assert [d.label for d in backend.detect(image, ["a swan"], threshold=0.3)] == ["swan"]
    joined = backend.detect(image, ["the pond", "a swan"], threshold=0.0, joined=True)
    assert [(d.label, d.query_index) for d in joined] == [("swan", 1), ("pond", 0)]
    grounded = backend.ground_phrases(image, "A swan in the pond.")
    assert [(g.phrase.text, g.phrase.start, g.phrase.end) for g in grounded] == [
        ("swan", 2, 6),
        ("pond", 14, 18),
    ]
    assert grounded[0].boxes.shape == (1, 4) and grounded[1].scores == pytest.approx([0.2])
