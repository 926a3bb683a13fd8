"""Tiny and real-size random-weight DINO ViT-B/8 checkpoints (transformers ViTModel).

The tiny one matches the tiny CLIP's width (2 heads x 16), as CASS needs DINO's heads x
head_dim to equal CLIP's; the real-size one is facebook/dino-vitb8's architecture, for
speed and memory measurements only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelground.core.errors import require

SEED = 0
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def dino_config(real: bool) -> Any:
    """ViTConfig of facebook/dino-vitb8 (real) or a 2-layer, 32-wide version of it."""
    t = require("transformers", "models")
    if real:
        size = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                "intermediate_size": 3072}  # fmt: skip
    else:
        size = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 64}  # fmt: skip
    return t.ViTConfig(
        **size,
        image_size=224,
        patch_size=8,
        qkv_bias=True,
        layer_norm_eps=1e-6,
    )


def build_dino(directory: Path, real: bool = False) -> Path:
    """Save a random-weight ViTModel (DINO ViT-B/8 layout) and its ViTImageProcessor."""
    t = require("transformers", "models")
    torch = require("torch", "models")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = t.ViTModel(dino_config(real)).eval()
    model.save_pretrained(directory)
    processor = t.ViTImageProcessor(
        size={"height": 224, "width": 224}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
    )
    processor.save_pretrained(directory)
    return directory


def build_tiny_dino(directory: Path) -> Path:
    """A tiny DINO ViTModel (2 layers, width 32, patch 8) and its processor."""
    return build_dino(directory, real=False)


TINY_DINO_BUILDERS: dict[str, Callable[[Path], Path]] = {"dino": build_tiny_dino}
