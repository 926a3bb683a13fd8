"""Sa2VABackend: opt-in rules, loading errors, and the adapter code around the model.

Sa2VA's model class lives in its hub repository (remote code) and its weights cannot be
fetched here, so the real class cannot be built offline. The adapter is exercised with
``FakeSa2VA`` below: a UNIT-TEST FAKE exposing Sa2VA's ``predict_forward`` signature and
return format (``{"prediction": str, "prediction_masks": [array (1, H, W), ...]}``), to
test the code around the model: prompt building, argument passing, mask/phrase alignment.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pixelground.backends.base import GroundedText, GroundingModel, ReferringSegmenter
from pixelground.backends.sa2va import GCG_PROMPT, Sa2VABackend
from pixelground.core.errors import CheckpointMissingError, InputError, PixelgroundError
from pixelground.core.media import load_image


class FakeSa2VA:
    """UNIT-TEST FAKE of Sa2VA's model: records calls, returns a scripted answer."""

    def __init__(self, prediction: str, masks: list[Any] | None) -> None:
        self.prediction = prediction
        self.masks = masks
        self.calls: list[dict[str, Any]] = []

    def predict_forward(
        self, image=None, video=None, text=None, past_text="", mask_prompts=None, tokenizer=None
    ) -> dict[str, Any]:
        self.calls.append({"image": image, "text": text, "tokenizer": tokenizer})
        return {"prediction": self.prediction, "prediction_masks": self.masks}


class FakeSa2VAWithProcessor(FakeSa2VA):
    """UNIT-TEST FAKE of Qwen-VL-based Sa2VA releases (predict_forward takes a processor)."""

    def predict_forward(self, image=None, text=None, tokenizer=None, processor=None):  # type: ignore[override]
        self.calls.append({"image": image, "text": text, "processor": processor})
        return {"prediction": self.prediction, "prediction_masks": self.masks}


@pytest.fixture(scope="module")
def image(swan_image_path: Path) -> np.ndarray:
    return load_image(swan_image_path).pixels


def _frame(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((1, height, width), dtype=bool)
    x0, y0, x1, y1 = box
    mask[0, y0:y1, x0:x1] = True
    return mask


def test_requires_explicit_trust_remote_code(tmp_path: Path) -> None:
    for value in (False, None, "yes", 1):
        with pytest.raises(PixelgroundError, match="trust_remote_code=True") as caught:
            Sa2VABackend(str(tmp_path), trust_remote_code=value)  # type: ignore[arg-type]
        assert "runs Python code shipped inside its checkpoint" in str(caught.value)


def test_missing_checkpoint_after_opt_in(tmp_path: Path) -> None:
    with pytest.raises(CheckpointMissingError):
        Sa2VABackend(str(tmp_path / "Sa2VA-1B"), device="cpu", trust_remote_code=True)
    with pytest.raises(CheckpointMissingError, match="ByteDance/Sa2VA-1B"):
        Sa2VABackend(device="cpu", trust_remote_code=True)


def test_ground_passes_sa2va_arguments(image: np.ndarray) -> None:
    height, width = image.shape[:2]
    fake = FakeSa2VA(
        "<p> A black swan </p> [SEG] swims on <p> the water </p> [SEG].<|im_end|>",
        [_frame(height, width, (100, 50, 300, 200)), _frame(height, width, (0, 300, 854, 480))],
    )
    tokenizer = object()
    backend = Sa2VABackend.from_model(fake, tokenizer, checkpoint="ByteDance/Sa2VA-1B")
    assert isinstance(backend, GroundingModel) and isinstance(backend, ReferringSegmenter)
    result = backend.ground(image, "Describe the image.")
    call = fake.calls[0]
    assert call["text"] == "<image>Describe the image."
    assert call["tokenizer"] is tokenizer
    assert call["image"].size == (width, height) and call["image"].mode == "RGB"
    assert isinstance(result, GroundedText)
    assert result.text == "A black swan swims on the water."
    assert [p.text for p in result.phrases] == ["A black swan", "the water"]
    assert [(p.start, p.end) for p in result.phrases] == [(0, 12), (22, 31)]
    assert result.raw.startswith("<p> A black swan")
    assert [m.shape for m in result.masks] == [(height, width)] * 2
    assert result.masks[0][100, 200] and not result.masks[0][400, 200]
    assert result.masks[1][400, 200] and not result.masks[1][100, 200]
    assert backend.info["class"] == "Sa2VABackend" and backend.info["checkpoint"].endswith("1B")


def test_prompt_already_starting_with_image_token(image: np.ndarray) -> None:
    fake = FakeSa2VA("Sure.", [])
    Sa2VABackend.from_model(fake, None).ground(image, "<image>Hi")
    assert fake.calls[0]["text"] == "<image>Hi"


def test_processor_is_passed_when_predict_forward_takes_one(image: np.ndarray) -> None:
    fake = FakeSa2VAWithProcessor("Sure, [SEG].", [np.ones((1, 8, 8), dtype=bool)])
    processor = object()
    masks = Sa2VABackend.from_model(fake, None, processor).segment_expression(image, "it")
    assert fake.calls[0]["processor"] is processor
    assert len(masks) == 1 and masks[0].shape == image.shape[:2] and masks[0].all()


def test_unowned_seg_becomes_an_empty_phrase(image: np.ndarray) -> None:
    height, width = image.shape[:2]
    fake = FakeSa2VA("Sure, [SEG].<|im_end|>", [_frame(height, width, (10, 10, 20, 20))])
    result = Sa2VABackend.from_model(fake, None).ground(image, "Please segment the swan.")
    assert result.text == "Sure."
    assert len(result.phrases) == 1 and result.phrases[0].text == ""
    assert result.phrases[0].start == result.phrases[0].end == 4
    assert result.masks[0].sum() == 100


def test_fewer_masks_than_segs_gives_empty_masks(image: np.ndarray, caplog) -> None:
    height, width = image.shape[:2]
    fake = FakeSa2VA("<p>a</p> [SEG] and <p>b</p> [SEG]", [_frame(height, width, (0, 0, 5, 5))])
    with caplog.at_level(logging.WARNING, logger="pixelground.backends.sa2va"):
        result = Sa2VABackend.from_model(fake, None).ground(image, "go")
    assert "1 masks for 2 [SEG]" in caplog.text
    assert result.masks[0].sum() == 25 and not result.masks[1].any()


def test_more_masks_than_segs_drops_extras(image: np.ndarray, caplog) -> None:
    height, width = image.shape[:2]
    masks = [_frame(height, width, (0, 0, 5, 5)), _frame(height, width, (5, 5, 9, 9))]
    fake = FakeSa2VA("<p>a</p> [SEG]", masks)
    with caplog.at_level(logging.WARNING, logger="pixelground.backends.sa2va"):
        result = Sa2VABackend.from_model(fake, None).ground(image, "go")
    assert "dropped 1 extra" in caplog.text
    assert len(result.phrases) == len(result.masks) == 1


def test_phrase_without_seg_and_no_masks(image: np.ndarray) -> None:
    fake = FakeSa2VA("<p>a swan</p> swims", None)
    result = Sa2VABackend.from_model(fake, None).ground(image, "go")
    assert [p.text for p in result.phrases] == ["a swan"]
    assert not result.masks[0].any()


def test_grounded_caption_uses_sa2va_gcg_instruction(image: np.ndarray) -> None:
    fake = FakeSa2VA("<p>A swan</p> [SEG].", [np.zeros((1, 4, 4), dtype=bool)])
    Sa2VABackend.from_model(fake, None).grounded_caption(image)
    assert fake.calls[0]["text"] == "<image>" + GCG_PROMPT


def test_segment_expression(image: np.ndarray) -> None:
    height, width = image.shape[:2]
    small = np.zeros((1, height // 2, width // 2), dtype=np.float32)
    small[0, 10:20, 10:20] = 0.9  # probabilities at another size: thresholded and resized
    fake = FakeSa2VA("Sure, [SEG] [SEG].", [small, np.zeros((1, height, width), dtype=bool)])
    masks = Sa2VABackend.from_model(fake, None).segment_expression(image, " the black swan ")
    assert fake.calls[0]["text"] == "<image>Please segment the black swan."
    assert len(masks) == 1  # the empty second mask is "no target" and dropped
    assert masks[0].shape == (height, width) and masks[0].dtype == bool
    assert masks[0][25, 25] and not masks[0][100, 100]


def test_segment_expression_keeps_masks_the_text_lost(image: np.ndarray) -> None:
    fake = FakeSa2VA("Sure.", [np.ones((1, 4, 4), dtype=bool)])
    assert len(Sa2VABackend.from_model(fake, None).segment_expression(image, "x")) == 1


def test_bad_inputs_and_bad_answers(image: np.ndarray) -> None:
    backend = Sa2VABackend.from_model(FakeSa2VA("ok", []), None)
    with pytest.raises(InputError):
        backend.ground(image, "  ")
    with pytest.raises(InputError):
        backend.segment_expression(image, "")

    class Broken(FakeSa2VA):
        def predict_forward(self, **kwargs):  # type: ignore[override]
            return "not a dict"

    with pytest.raises(PixelgroundError, match="no 'prediction'"):
        Sa2VABackend.from_model(Broken("", None), None).ground(image, "hi")
