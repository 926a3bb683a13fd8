"""A tiny random-weight Sam2VideoModel for tests, and the real SAM2.1-hiera-tiny config.

``build_tiny_sam2_video(directory)`` saves a Sam2VideoModel with small hidden sizes (128-pixel
input, about 1M parameters, under 5 MB on disk) and its Sam2VideoProcessor with
``save_pretrained``; the video session then loads the directory with ``from_pretrained``, the
same path users take with ``facebook/sam2.1-hiera-tiny``. Weights are random (seeded), so masks
have the right shapes and formats but no meaning.

``real_size_sam2_video_config()`` is the configuration of the published
``facebook/sam2.1-hiera-tiny`` checkpoint (sam2.1_hiera_t.yaml: Hiera with embed_dim 96, one
head, stages [1, 2, 7, 2], global attention at blocks 5, 7, 9; 256-d FPN; 4-layer memory
attention with 2048-d feed-forward; 64-channel memory; 7 memory frames; 16 object pointers).
It gives the same compute and memory as the real model, for benchmarks.

Two constraints of transformers' Sam2VideoModel shape the tiny config: the memory attention's
cross-attention reads 64-channel memories (hard-coded), so ``memory_encoder_output_channels``
stays 64; and object pointers are split into memory-sized tokens, so the hidden size must be a
multiple of 64 larger than it (128 here).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelground.backends.tiny.vision_configs import sam2_hiera_tiny_vision_config
from pixelground.core.errors import require

SEED = 0
TINY_SIDE = 128
REAL_SIDE = 1024
#: Bias given to the tiny model's object-score head so random weights still report the
#: object as present (masks non-empty); the real model learns this.
TINY_OBJECT_SCORE_BIAS = 4.0


def real_size_sam2_video_config(side: int = REAL_SIDE) -> Any:
    """Sam2VideoConfig of facebook/sam2.1-hiera-tiny (38.9M parameters), every size explicit.

    Args:
        side: input pixels; the published model takes 1024. Another side keeps every weight's
            shape (the same model) and scales the feature maps and memory attention's tokens.
    """
    t = require("transformers", "models")
    vision = sam2_hiera_tiny_vision_config(side)
    return t.Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=t.Sam2VideoPromptEncoderConfig(
            hidden_size=256, image_size=side, patch_size=16, mask_input_channels=16
        ),
        mask_decoder_config=t.Sam2VideoMaskDecoderConfig(
            hidden_size=256,
            mlp_dim=2048,
            num_hidden_layers=2,
            num_attention_heads=8,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        image_size=side,
        num_maskmem=7,
        max_object_pointers_in_encoder=16,
        memory_attention_hidden_size=256,
        memory_attention_num_layers=4,
        memory_attention_num_attention_heads=1,
        memory_attention_feed_forward_hidden_size=2048,
        memory_attention_rope_feat_sizes=[side // 16, side // 16],
        memory_encoder_hidden_size=256,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=256,
        memory_fuser_embed_dim=256,
        memory_fuser_intermediate_dim=1024,
        sigmoid_scale_for_mem_enc=20.0,
        sigmoid_bias_for_mem_enc=-10.0,
    )


def tiny_sam2_video_config() -> Any:
    """A Sam2VideoConfig with the real structure and tiny sizes (128-pixel input)."""
    t = require("transformers", "models")
    side = TINY_SIDE
    backbone = t.Sam2HieraDetConfig(
        hidden_size=8,
        num_attention_heads=1,
        image_size=[side, side],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[4, 4, 4, 2],
        global_attention_blocks=[3],
        window_positional_embedding_background_size=[2, 2],
    )
    vision = t.Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[side // 4] * 2, [side // 8] * 2, [side // 16] * 2],
        fpn_hidden_size=128,
    )
    return t.Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=t.Sam2VideoPromptEncoderConfig(
            hidden_size=128, image_size=side, patch_size=16, mask_input_channels=4
        ),
        mask_decoder_config=t.Sam2VideoMaskDecoderConfig(
            hidden_size=128,
            mlp_dim=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            iou_head_hidden_dim=16,
        ),
        image_size=side,
        memory_attention_hidden_size=128,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[side // 16, side // 16],
        memory_encoder_hidden_size=128,
        memory_encoder_output_channels=64,  # fixed by the model's memory cross-attention
        mask_downsampler_embed_dim=128,
        memory_fuser_num_layers=1,
        memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=32,
    )


def sam2_video_processor(side: int) -> Any:
    """A Sam2VideoProcessor that resizes frames to ``side`` x ``side`` (the model's input)."""
    t = require("transformers", "models")
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    image_processor = t.Sam2ImageProcessor(
        size={"height": side, "width": side}, mask_size={"height": side // 4, "width": side // 4}
    )
    video_processor = Sam2VideoVideoProcessor(size={"height": side, "width": side})
    return t.Sam2VideoProcessor(
        image_processor=image_processor, video_processor=video_processor, target_size=side
    )


def _build(directory: Path, config: Any, side: int, object_score_bias: float | None) -> Path:
    transformers = require("transformers", "models")
    torch = require("torch", "models")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = transformers.Sam2VideoModel(config).eval()
    if object_score_bias is not None:
        with torch.no_grad():
            model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(object_score_bias)
    model.save_pretrained(directory)
    sam2_video_processor(side).save_pretrained(directory)
    return directory


def build_tiny_sam2_video(directory: Path) -> Path:
    """Save a tiny random-weight Sam2VideoModel and Sam2VideoProcessor into ``directory``.

    Returns:
        ``directory``, loadable with ``Sam2VideoModel.from_pretrained`` and
        ``Sam2VideoProcessor.from_pretrained``.
    """
    return _build(directory, tiny_sam2_video_config(), TINY_SIDE, TINY_OBJECT_SCORE_BIAS)


def build_real_size_sam2_video(directory: Path, side: int = REAL_SIDE) -> Path:
    """Save a random-weight Sam2VideoModel of SAM2.1-hiera-tiny's size (about 150 MB) that
    takes ``side``-pixel frames (1024: the published model)."""
    return _build(directory, real_size_sam2_video_config(side), side, None)


TINY_VIDEO_BUILDERS: dict[str, Callable[[Path], Path]] = {"sam2_video": build_tiny_sam2_video}
