"""ChatVLM on tiny random-weight SmolVLM (Idefics3) and Qwen2.5-VL checkpoints.

Both are saved with save_pretrained and loaded through ChatVLM's constructor. Random
weights give random text: the tests check formats, the chat structure and errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixelground.backends.base import VLM, Captioner
from pixelground.backends.tiny.language import TINY_LANGUAGE_BUILDERS
from pixelground.backends.vlm import ChatVLM
from pixelground.core.errors import (
    CheckpointMissingError,
    DependencyMissingError,
    InputError,
    PixelgroundError,
)
from pixelground.core.media import load_image

FAMILIES = {
    "smolvlm": "Idefics3ForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: TINY_LANGUAGE_BUILDERS[name](tmp_path_factory.mktemp(name)) for name in FAMILIES}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def vlm(request: pytest.FixtureRequest, tiny_dirs: dict[str, Path]) -> ChatVLM:
    return ChatVLM(str(tiny_dirs[request.param]), device="cpu")


@pytest.fixture(scope="module")
def image(swan_image_path: Path) -> np.ndarray:
    return load_image(swan_image_path).pixels


def test_tiny_checkpoints_are_small(tiny_dirs: dict[str, Path]) -> None:
    for directory in tiny_dirs.values():
        assert (directory / "chat_template.jinja").exists()
        assert sum(p.stat().st_size for p in directory.iterdir()) < 5_000_000


def test_loads_the_real_classes(vlm: ChatVLM) -> None:
    assert vlm.info["model_class"] in FAMILIES.values()
    assert vlm.info["class"] == "ChatVLM" and vlm.info["device"] == "cpu"
    assert vlm.max_new_tokens == 24
    assert isinstance(vlm, VLM) and isinstance(vlm, Captioner)


def test_chat_answers_text(vlm: ChatVLM, image: np.ndarray) -> None:
    answer = vlm.chat(image, "What is in the image?")
    assert isinstance(answer, str) and answer == answer.strip()
    assert "<image>" not in answer and "<|image_pad|>" not in answer
    again = vlm.chat(image, "What is in the image?")
    assert again == answer  # greedy decoding is deterministic


def test_chat_with_history(vlm: ChatVLM, image: np.ndarray) -> None:
    answer = vlm.chat(image, "And its colour?", history=[("What is it?", "A swan.")])
    assert isinstance(answer, str)


def test_history_puts_the_image_in_the_first_turn_only() -> None:
    messages = ChatVLM.messages("q2", [("q1", "a1")])
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    images = [c for m in messages for c in m["content"] if c["type"] == "image"]
    assert len(images) == 1 and messages[0]["content"][0] == {"type": "image"}
    assert messages[2]["content"] == [{"type": "text", "text": "q2"}]


def test_prompt_uses_the_processor_chat_template(vlm: ChatVLM) -> None:
    prompt = vlm.processor.apply_chat_template(
        ChatVLM.messages("Hello?"), add_generation_prompt=True
    )
    assert "Hello?" in prompt
    assert prompt.rstrip().endswith(("Assistant:", "assistant"))


def test_caption_and_region(vlm: ChatVLM, image: np.ndarray) -> None:
    assert isinstance(vlm.caption(image), str)
    assert isinstance(vlm.caption(image, detailed=True), str)
    assert isinstance(vlm.describe_region(image, (100, 50, 400, 300)), str)
    with pytest.raises(InputError, match="no area"):
        vlm.describe_region(image, (900, 500, 950, 600))
    with pytest.raises(InputError):
        vlm.describe_region(image, (10, 10, 20))


def test_empty_question(vlm: ChatVLM, image: np.ndarray) -> None:
    with pytest.raises(InputError):
        vlm.chat(image, "   ")


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointMissingError):
        ChatVLM(str(tmp_path / "none"), device="cpu")
    with pytest.raises(CheckpointMissingError):
        ChatVLM("nobody/no-such-vlm", device="cpu")


def test_processor_without_chat_template(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "no_template"
    shutil.copytree(tiny_dirs["smolvlm"], copy)
    (copy / "chat_template.jinja").unlink()
    with pytest.raises(PixelgroundError, match="chat template"):
        ChatVLM(str(copy), device="cpu")


def test_processor_needing_a_missing_package(
    tiny_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    def needs_num2words(*args, **kwargs):
        raise ImportError("Package `num2words` is required to run SmolVLM processor.")

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", needs_num2words)
    with pytest.raises(DependencyMissingError, match="num2words"):
        ChatVLM(str(tiny_dirs["smolvlm"]), device="cpu")


def test_from_model_wraps_an_in_memory_model(tiny_dirs: dict[str, Path], image: np.ndarray) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    directory = tiny_dirs["smolvlm"]
    vlm = ChatVLM.from_model(
        AutoModelForImageTextToText.from_pretrained(directory),
        AutoProcessor.from_pretrained(directory),
        max_new_tokens=5,
    )
    assert vlm.info["checkpoint"] == "in-memory" and vlm.max_new_tokens == 5
    assert isinstance(vlm.chat(image, "What is it?"), str)
