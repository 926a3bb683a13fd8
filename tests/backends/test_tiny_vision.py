"""Tiny vision model builders, their offline tokenizers, and the real-size configs."""

from __future__ import annotations

import time

import pytest
import torch
import transformers

from pixelground.backends.tiny.vision import (
    MODEL_CLASSES,
    REAL_CHECKPOINTS,
    TINY_VISION_BUILDERS,
    real_size_config,
    tiny_config,
)
from pixelground.backends.tiny.vision_tokenizers import (
    tiny_bert_tokenizer,
    tiny_clip_tokenizer,
    tiny_siglip_tokenizer,
)
from pixelground.core.errors import UnknownNameError

PROCESSORS = {
    "sam": "SamProcessor",
    "sam2": "Sam2Processor",
    "owlv2": "Owlv2Processor",
    "grounding_dino": "GroundingDinoProcessor",
    "clip": "CLIPProcessor",
    "siglip": "SiglipProcessor",
}

#: Parameter counts of the published checkpoints (image-only Sam2Model: no memory modules).
PUBLISHED_PARAMETERS = {
    "sam": 93.7e6,
    "owlv2": 155.0e6,
    "grounding_dino": 172.2e6,
    "clip": 149.6e6,
    "siglip": 203.2e6,
}


@pytest.mark.parametrize("name", sorted(TINY_VISION_BUILDERS))
def test_tiny_model_is_small_saved_and_loads_back(name, tmp_path):
    directory = TINY_VISION_BUILDERS[name](tmp_path / name)
    assert directory == tmp_path / name
    files = {p.name for p in directory.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json"} <= files
    assert sum(p.stat().st_size for p in directory.iterdir()) < 5_000_000
    model = getattr(transformers, MODEL_CLASSES[name]).from_pretrained(directory)
    assert type(model).__name__ == MODEL_CLASSES[name]
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    processor = getattr(transformers, PROCESSORS[name]).from_pretrained(directory)
    assert type(processor).__name__ == PROCESSORS[name]


def test_builds_are_deterministic(tmp_path):
    first = TINY_VISION_BUILDERS["clip"](tmp_path / "a")
    second = TINY_VISION_BUILDERS["clip"](tmp_path / "b")
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()


def test_tiny_sam2_forward_is_fast(tmp_path):
    """Under a second of CPU time (one thread, so a busy machine does not distort it)."""
    directory = TINY_VISION_BUILDERS["sam2"](tmp_path / "sam2")
    model = transformers.Sam2Model.from_pretrained(directory).eval()
    pixels = torch.rand(1, 3, 256, 256)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            model.get_image_embeddings(pixels)
            start = time.process_time()
            model.get_image_embeddings(pixels)
            used = time.process_time() - start
    finally:
        torch.set_num_threads(threads)
    assert used < 1.0


def test_clip_tokenizer_keeps_clip_conventions():
    tokenizer = tiny_clip_tokenizer(max_length=16)
    ids = tokenizer("A black swan.")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id > 0  # OWLv2 treats a leading id 0 as padding
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.convert_ids_to_tokens(ids[1:4]) == ["a</w>", "black</w>", "swan</w>"]
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == "a black swan ."
    assert len(tokenizer("word " * 40, truncation=True)["input_ids"]) == 16


def test_bert_tokenizer_uses_grounding_dino_delimiter_ids():
    tokenizer = tiny_bert_tokenizer()
    ids = tokenizer("a cat. a dog?")["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102
    assert tokenizer.convert_tokens_to_ids(".") == 1012
    assert tokenizer.convert_tokens_to_ids("?") == 1029
    assert 1012 in ids and 1029 in ids
    assert tokenizer.unk_token_id not in ids


def test_siglip_tokenizer_needs_no_sentencepiece():
    tokenizer = tiny_siglip_tokenizer()
    ids = tokenizer("a photo of a swan", padding="max_length", max_length=12)["input_ids"]
    assert len(ids) == 12
    assert tokenizer.convert_ids_to_tokens(ids[:5]) == ["▁a", "▁photo", "▁of", "▁a", "▁swan"]
    assert ids[5] == tokenizer.eos_token_id


def test_real_size_sam2_matches_hiera_tiny():
    config = real_size_config("facebook/sam2.1-hiera-tiny")
    backbone = config.vision_config.backbone_config
    assert isinstance(config, transformers.Sam2Config)
    assert backbone.embed_dim_per_stage == [96, 192, 384, 768]
    assert backbone.blocks_per_stage == [1, 2, 7, 2]
    assert backbone.global_attention_blocks == [5, 7, 9]
    assert backbone.window_size_per_stage == [8, 4, 14, 7]
    assert config.vision_config.backbone_channel_list == [768, 384, 192, 96]
    assert config.vision_config.fpn_hidden_size == 256
    assert config.prompt_encoder_config.image_size == 1024
    assert config.mask_decoder_config.mlp_dim == 2048


def test_real_size_configs_of_the_other_defaults():
    clip = real_size_config("openai/clip-vit-base-patch16")
    assert (clip.vision_config.hidden_size, clip.vision_config.patch_size) == (768, 16)
    assert (clip.vision_config.image_size, clip.projection_dim) == (224, 512)
    owl = real_size_config("owlv2-base-patch16-ensemble")
    assert (owl.vision_config.image_size, owl.vision_config.patch_size) == (960, 16)
    assert owl.text_config.max_position_embeddings == 16
    dino = real_size_config("IDEA-Research/grounding-dino-tiny")
    assert (dino.d_model, dino.num_queries, dino.max_text_len) == (256, 900, 256)
    assert dino.backbone_config.depths == [2, 2, 6, 2]
    assert dino.text_config.hidden_size == 768


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_real_size_parameter_counts_match_the_published_models(name):
    with torch.device("meta"):
        model = getattr(transformers, MODEL_CLASSES[name])(real_size_config(name))
    count = sum(p.numel() for p in model.parameters())
    assert count == pytest.approx(PUBLISHED_PARAMETERS[name], rel=0.01)


def test_names_and_errors():
    assert set(REAL_CHECKPOINTS) == set(TINY_VISION_BUILDERS)
    assert type(tiny_config("grounding-dino")).__name__ == "GroundingDinoConfig"
    with pytest.raises(UnknownNameError, match="no vision config"):
        real_size_config("sam3")
