"""Tiny random-weight vision models of the real transformers classes, saved to a directory.

Every builder creates a model of the same class a user loads (SamModel, Sam2Model,
Owlv2ForObjectDetection, GroundingDinoForObjectDetection, CLIPModel, SiglipModel) with small
hidden sizes and few layers, plus its processor with an offline-built tokenizer, and saves both
with ``save_pretrained`` into a directory. Backends then load that directory through their
normal constructor, the same path users take. The weights are random (seeded): outputs have
the right shapes and formats but no meaning.

``real_size_config(name)`` gives the configs of the published checkpoints (same compute, for
speed and memory benchmarks); ``build_real_size(name, directory)`` saves such a model with
random weights and a processor at the real input size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelground.backends.tiny.vision_configs import (
    CONFIGS,
    REAL_CHECKPOINTS,
    canonical_name,
    real_size_config,
    tiny_config,
)
from pixelground.backends.tiny.vision_tokenizers import (
    tiny_bert_tokenizer,
    tiny_clip_tokenizer,
    tiny_siglip_tokenizer,
)
from pixelground.core.errors import require

__all__ = [
    "MODEL_CLASSES",
    "REAL_CHECKPOINTS",
    "TINY_VISION_BUILDERS",
    "build_real_size",
    "real_size_config",
    "tiny_config",
]

SEED = 0


def _processor(name: str, real: bool) -> Any:
    t = require("transformers", "models")
    if name == "sam":
        side = 1024 if real else 256
        return t.SamProcessor(
            image_processor=t.SamImageProcessor(
                size={"longest_edge": side},
                pad_size={"height": side, "width": side},
                mask_size={"longest_edge": side // 4},
                mask_pad_size={"height": side // 4, "width": side // 4},
            )
        )
    if name == "sam2":
        side = 1024 if real else 256
        image_processor = t.Sam2ImageProcessor(
            size={"height": side, "width": side},
            mask_size={"height": side // 4, "width": side // 4},
        )
        return t.Sam2Processor(image_processor=image_processor, target_size=side)
    if name == "owlv2":
        side = 960  # the real frame; the tiny model uses 64-pixel patches (15x15 grid)
        return t.Owlv2Processor(
            image_processor=t.Owlv2ImageProcessor(size={"height": side, "width": side}),
            tokenizer=tiny_clip_tokenizer(max_length=16),
        )
    if name == "grounding_dino":
        size = (
            {"shortest_edge": 800, "longest_edge": 1333}
            if real
            else {"shortest_edge": 128, "longest_edge": 224}
        )
        return t.GroundingDinoProcessor(
            image_processor=t.GroundingDinoImageProcessor(size=size),
            tokenizer=tiny_bert_tokenizer(),
        )
    if name == "clip":
        side = 224 if real else 64
        return t.CLIPProcessor(
            image_processor=t.CLIPImageProcessor(
                size={"shortest_edge": side}, crop_size={"height": side, "width": side}
            ),
            tokenizer=tiny_clip_tokenizer(max_length=77),
        )
    side = 224 if real else 64
    return t.SiglipProcessor(
        image_processor=t.SiglipImageProcessor(size={"height": side, "width": side}),
        tokenizer=tiny_siglip_tokenizer(max_length=64),
    )


#: transformers model class of each name.
MODEL_CLASSES = {
    "sam": "SamModel",
    "sam2": "Sam2Model",
    "owlv2": "Owlv2ForObjectDetection",
    "grounding_dino": "GroundingDinoForObjectDetection",
    "clip": "CLIPModel",
    "siglip": "SiglipModel",
}


def _tame_owlv2_heads(model: Any) -> None:
    """Re-draw OWLv2's prediction heads with a small std.

    Owlv2 initialises them with std 1.0, which saturates the random-weight box sigmoids to
    degenerate (zero-width) boxes; small weights give boxes near each patch's prior.
    """
    torch = require("torch", "models")
    for head in (model.box_head, model.objectness_head, model.class_head):
        for module in head.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=0.02)


_POST_INIT: dict[str, Callable[[Any], None]] = {"owlv2": _tame_owlv2_heads}


def _build(name: str, directory: Path, real: bool) -> Path:
    transformers = require("transformers", "models")
    torch = require("torch", "models")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = CONFIGS[name](real)
    model_class = getattr(transformers, MODEL_CLASSES[name])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = model_class(config).eval()
        if name in _POST_INIT:
            _POST_INIT[name](model)
    model.save_pretrained(directory)
    _processor(name, real).save_pretrained(directory)
    return directory


def build_tiny_sam(directory: Path) -> Path:
    """A tiny SamModel (256-pixel input) and SamProcessor saved in ``directory``."""
    return _build("sam", directory, real=False)


def build_tiny_sam2(directory: Path) -> Path:
    """A tiny Sam2Model (Hiera with 5 blocks in 4 stages, 256-pixel input) and Sam2Processor."""
    return _build("sam2", directory, real=False)


def build_tiny_owlv2(directory: Path) -> Path:
    """A tiny Owlv2ForObjectDetection (960-pixel input, 64-pixel patches) and Owlv2Processor."""
    return _build("owlv2", directory, real=False)


def build_tiny_grounding_dino(directory: Path) -> Path:
    """A tiny GroundingDinoForObjectDetection (Swin + BERT, one layer each) and its processor."""
    return _build("grounding_dino", directory, real=False)


def build_tiny_clip(directory: Path) -> Path:
    """A tiny CLIPModel (64-pixel input, patch 16) and CLIPProcessor."""
    return _build("clip", directory, real=False)


def build_tiny_siglip(directory: Path) -> Path:
    """A tiny SiglipModel (64-pixel input, patch 16) and SiglipProcessor."""
    return _build("siglip", directory, real=False)


TINY_VISION_BUILDERS: dict[str, Callable[[Path], Path]] = {
    "sam": build_tiny_sam,
    "sam2": build_tiny_sam2,
    "owlv2": build_tiny_owlv2,
    "grounding_dino": build_tiny_grounding_dino,
    "clip": build_tiny_clip,
    "siglip": build_tiny_siglip,
}


def build_real_size(name: str, directory: Path) -> Path:
    """Save a random-weight model of a published checkpoint's size, with a real-size processor.

    For speed and memory measurements only: same architecture and input size, so the same
    compute, but random weights and a tiny offline tokenizer.

    Args:
        name: short name or hub id, as for :func:`real_size_config`.
        directory: where to save; created if missing.

    Returns:
        ``directory``, loadable by the matching backend's constructor.
    """
    return _build(canonical_name(name), directory, real=True)
