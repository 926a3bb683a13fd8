"""Save/load round trip, the backend's loading path, and generation at image size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pixelground.backends.base import GroundingModel, ReferringSegmenter
from pixelground.backends.seg_token import SegTokenModelBackend
from pixelground.core.errors import CheckpointMissingError, InputError
from pixelground.models.generation import generate_grounded, generate_grounded_video
from pixelground.models.objective import training_losses
from pixelground.models.seg_model import SegTokenModel


@pytest.fixture(scope="module")
def saved(tiny_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("seg_ckpt")
    tiny_model.save_pretrained(directory)
    return directory


@pytest.fixture
def model_and_saved(tiny_model, saved):
    """(model, its saved directory)."""
    return tiny_model, saved


def test_round_trip_gives_identical_outputs(model_and_saved, tiny_batch):
    tiny_model, saved = model_and_saved
    assert {p.name for p in saved.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    }
    config = json.loads((saved / "config.json").read_text())
    assert config["model_type"] == "pixelground_seg" and config["lm_config"]["vocab_size"] > 0
    loaded = SegTokenModel.from_pretrained(saved)
    tiny_model.eval()
    loaded.eval()
    with torch.no_grad():
        a, b = training_losses(tiny_model, tiny_batch), training_losses(loaded, tiny_batch)
    for key in ("loss", "mask_logits", "logits"):
        assert torch.equal(a[key], b[key]), key
    image = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    first = generate_grounded(tiny_model, image, "Please segment the red square.")
    second = generate_grounded(loaded, image, "Please segment the red square.")
    assert first.raw == second.raw
    assert all(np.array_equal(x, y) for x, y in zip(first.masks, second.masks, strict=True))


def test_generate_grounded_returns_one_mask_per_seg_at_image_size(model_and_saved):
    tiny_model, _ = model_and_saved
    # Force [SEG] then </s> so the test does not depend on random weights.
    ids = tiny_model.ids
    bias = torch.full((len(tiny_model.tokenizer),), -1e4)
    image = np.zeros((50, 70, 3), np.uint8)
    head = tiny_model.lm.get_output_embeddings()
    calls = {"n": 0}

    def steer(_module, _inputs, output):
        calls["n"] += 1
        forced = bias.clone()
        forced[ids.seg if calls["n"] <= 2 else ids.eos] = 1e4
        return output + forced

    handle = head.register_forward_hook(steer)
    try:
        result = generate_grounded(tiny_model, image, "Please segment the red square.")
    finally:
        handle.remove()
    assert result.raw.split() == ["[SEG]", "[SEG]"]
    assert len(result.masks) == 2 and len(result.phrases) == 2
    assert all(m.shape == (50, 70) and m.dtype == bool for m in result.masks)


def test_video_generation_gives_a_mask_per_frame(model_and_saved):
    tiny_model, _ = model_and_saved
    ids = tiny_model.ids
    head = tiny_model.lm.get_output_embeddings()
    calls = {"n": 0}

    def steer(_module, _inputs, output):
        calls["n"] += 1
        forced = torch.full((output.shape[-1],), -1e4)
        forced[ids.seg if calls["n"] == 1 else ids.eos] = 1e4
        return output + forced

    frames = [np.zeros((40, 48, 3), np.uint8)] * 5
    handle = head.register_forward_hook(steer)
    try:
        result = generate_grounded_video(tiny_model, frames, "Please segment the red square.")
    finally:
        handle.remove()
    assert len(result.masks) == 1 and result.masks[0].shape == (5, 40, 48)


def test_backend_loads_through_the_user_path(saved, tmp_path):
    backend = SegTokenModelBackend(saved, device="cpu")
    assert isinstance(backend, GroundingModel) and isinstance(backend, ReferringSegmenter)
    assert backend.info == {"class": "SegTokenModelBackend", "checkpoint": str(saved)}
    image = np.zeros((30, 40, 3), np.uint8)
    masks = backend.segment_expression(image, "the red square")
    assert all(m.shape == (30, 40) for m in masks)
    assert isinstance(backend.caption(image), str)
    assert backend.gcg_prompt == backend.config.gcg_prompt
    tracks = backend.segment_video_expression([image, image, image], "the red square")
    assert all(t.shape == (3, 30, 40) for t in tracks)
    assert isinstance(backend.describe_region(image, (5, 5, 20, 20)), str)
    with pytest.raises(InputError, match="expression is empty"):
        backend.segment_expression(image, "  ")
    half = SegTokenModelBackend(saved, device="cpu", dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16
    assert all(m.shape == (30, 40) for m in half.segment_expression(image, "the red square"))
    with pytest.raises(CheckpointMissingError, match="no \\[SEG\\]-model checkpoint"):
        SegTokenModelBackend(tmp_path / "missing")


def test_a_checkpoint_with_the_old_head_names_loads(seeded_model, tmp_path):
    from safetensors.torch import load_file, save_file

    model = seeded_model(word_loss_weight=0.5, position_query=True).eval()
    with torch.no_grad():
        model.heads["query_direction"].bias.fill_(0.5)
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    old_names = {"heads.word.": "word_heads.", "heads.query_direction.": "query_direction."}
    renamed = {}
    for key, tensor in load_file(str(weights)).items():
        for new, old in old_names.items():
            key = key.replace(new, old) if key.startswith(new) else key
        renamed[key] = tensor
    assert "word_heads.0.weight" in renamed and "query_direction.bias" in renamed
    save_file(renamed, str(weights))
    loaded = SegTokenModel.from_pretrained(tmp_path)
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name
