"""A tiny random-weight depth model (DPTForDepthEstimation) saved to a directory.

The depth backend loads it through ``AutoModelForDepthEstimation``, the path users take with
Depth Anything or DPT checkpoints. Its depth maps have the right shape and no meaning.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pixelground.core.errors import require

SEED = 0
IMAGE_SIZE = 64


def build_tiny_depth(directory: Path) -> Path:
    """A tiny DPTForDepthEstimation (64-pixel input, patch 16, 4 layers) and DPTImageProcessor."""
    transformers = require("transformers", "models")
    torch = require("torch", "models")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = transformers.DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=IMAGE_SIZE,
        patch_size=16,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 16, 16],
        reassemble_factors=[4, 2, 1, 0.5],
        fusion_hidden_size=16,
        head_in_index=-1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = transformers.DPTForDepthEstimation(config).eval()
    model.save_pretrained(directory)
    processor = transformers.DPTImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, keep_aspect_ratio=False
    )
    processor.save_pretrained(directory)
    return directory


TINY_DEPTH_BUILDERS: dict[str, Callable[[Path], Path]] = {"depth": build_tiny_depth}
