"""Configs of the pixel-side models: tiny ones for tests, real-size ones for benchmarks.

``tiny_config(name)`` keeps each architecture (same classes, same kinds of layers) with small
hidden sizes, few layers and small input frames, so a forward pass takes well under a second
on a CPU. ``real_size_config(name)`` reproduces the published checkpoints' hyperparameters:
a model built from it with random weights has the same compute as the real one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pixelground.backends.tiny.vision_tokenizers import clip_text_ids
from pixelground.core.errors import UnknownNameError, require


def _sam_config(real: bool) -> Any:
    t = require("transformers", "models")
    if real:  # facebook/sam-vit-base
        return t.SamConfig(
            vision_config=t.SamVisionConfig(
                hidden_size=768,
                num_hidden_layers=12,
                num_attention_heads=12,
                global_attn_indexes=[2, 5, 8, 11],
                output_channels=256,
                image_size=1024,
            ),
            prompt_encoder_config=t.SamPromptEncoderConfig(hidden_size=256, image_size=1024),
            mask_decoder_config=t.SamMaskDecoderConfig(hidden_size=256, mlp_dim=2048),
        )
    return t.SamConfig(
        vision_config=t.SamVisionConfig(
            hidden_size=32,
            output_channels=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=256,
            patch_size=16,
            window_size=4,
            global_attn_indexes=[1],
            num_pos_feats=16,
            mlp_dim=64,
        ),
        prompt_encoder_config=t.SamPromptEncoderConfig(
            hidden_size=32, image_size=256, patch_size=16, mask_input_channels=8
        ),
        mask_decoder_config=t.SamMaskDecoderConfig(
            hidden_size=32,
            mlp_dim=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            iou_head_hidden_dim=32,
        ),
    )


def sam2_hiera_tiny_vision_config(side: int = 1024) -> Any:
    """Sam2VisionConfig of SAM2.1-hiera-tiny (sam2.1_hiera_t.yaml) for ``side``-pixel input.

    The published model takes 1024 pixels; another side keeps every weight's shape and scales
    the feature maps (side / 4, / 8, / 16).
    """
    t = require("transformers", "models")
    backbone = t.Sam2HieraDetConfig(
        hidden_size=96,
        num_attention_heads=1,
        image_size=[side, side],
        blocks_per_stage=[1, 2, 7, 2],
        embed_dim_per_stage=[96, 192, 384, 768],
        num_attention_heads_per_stage=[1, 2, 4, 8],
        window_size_per_stage=[8, 4, 14, 7],
        global_attention_blocks=[5, 7, 9],
        window_positional_embedding_background_size=[7, 7],
    )
    return t.Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[768, 384, 192, 96],
        backbone_feature_sizes=[[side // 4] * 2, [side // 8] * 2, [side // 16] * 2],
        fpn_hidden_size=256,
        fpn_top_down_levels=[2, 3],
    )


def _sam2_config(real: bool) -> Any:
    t = require("transformers", "models")
    if real:  # facebook/sam2.1-hiera-tiny
        return t.Sam2Config(
            vision_config=sam2_hiera_tiny_vision_config(),
            prompt_encoder_config=t.Sam2PromptEncoderConfig(hidden_size=256, image_size=1024),
            mask_decoder_config=t.Sam2MaskDecoderConfig(
                hidden_size=256,
                mlp_dim=2048,
                num_hidden_layers=2,
                num_attention_heads=8,
                iou_head_hidden_dim=256,
            ),
        )
    backbone = t.Sam2HieraDetConfig(
        hidden_size=16,
        num_attention_heads=1,
        image_size=[256, 256],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[8, 4, 4, 4],
        global_attention_blocks=[3],
        window_positional_embedding_background_size=[4, 4],
    )
    vision = t.Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[64, 64], [32, 32], [16, 16]],
        fpn_hidden_size=32,
    )
    return t.Sam2Config(
        vision_config=vision,
        prompt_encoder_config=t.Sam2PromptEncoderConfig(
            hidden_size=32, image_size=256, patch_size=16, mask_input_channels=8
        ),
        mask_decoder_config=t.Sam2MaskDecoderConfig(
            hidden_size=32,
            mlp_dim=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            iou_head_hidden_dim=32,
        ),
    )


def _owlv2_config(real: bool) -> Any:
    t = require("transformers", "models")
    if real:  # google/owlv2-base-patch16-ensemble
        return t.Owlv2Config(
            text_config={
                "hidden_size": 512,
                "intermediate_size": 2048,
                "num_hidden_layers": 12,
                "num_attention_heads": 8,
                "vocab_size": 49408,
                "max_position_embeddings": 16,
            },
            vision_config={
                "hidden_size": 768,
                "intermediate_size": 3072,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "image_size": 960,
                "patch_size": 16,
            },
            projection_dim=512,
        )
    return t.Owlv2Config(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            **clip_text_ids(),
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 960,
            "patch_size": 64,
        },
        projection_dim=32,
    )


def _grounding_dino_config(real: bool) -> Any:
    t = require("transformers", "models")
    if real:  # IDEA-Research/grounding-dino-tiny: Swin-T backbone, BERT-base text encoder
        return t.GroundingDinoConfig(
            backbone_config=t.SwinConfig(
                embed_dim=96,
                depths=[2, 2, 6, 2],
                num_heads=[3, 6, 12, 24],
                window_size=7,
                out_indices=[2, 3, 4],
                out_features=["stage2", "stage3", "stage4"],
            ),
            text_config=t.BertConfig(),
            num_queries=900,
            d_model=256,
            encoder_layers=6,
            decoder_layers=6,
            encoder_ffn_dim=2048,
            decoder_ffn_dim=2048,
            max_text_len=256,
        )
    return t.GroundingDinoConfig(
        backbone_config=t.SwinConfig(
            embed_dim=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 2, 2],
            window_size=7,
            out_indices=[2, 3, 4],
            out_features=["stage2", "stage3", "stage4"],
        ),
        text_config=t.BertConfig(
            vocab_size=1100,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
        ),
        num_queries=20,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        max_text_len=256,
        disable_custom_kernels=True,
    )


def _clip_config(real: bool) -> Any:
    t = require("transformers", "models")
    if real:  # openai/clip-vit-base-patch16
        return t.CLIPConfig(
            text_config={
                "hidden_size": 512,
                "intermediate_size": 2048,
                "num_hidden_layers": 12,
                "num_attention_heads": 8,
                "vocab_size": 49408,
                "max_position_embeddings": 77,
            },
            vision_config={
                "hidden_size": 768,
                "intermediate_size": 3072,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "image_size": 224,
                "patch_size": 16,
            },
            projection_dim=512,
        )
    return t.CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            **clip_text_ids(),
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
        projection_dim=16,
    )


def _siglip_config(real: bool) -> Any:
    t = require("transformers", "models")
    if real:  # google/siglip-base-patch16-224
        return t.SiglipConfig(
            text_config={
                "hidden_size": 768,
                "intermediate_size": 3072,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "vocab_size": 32000,
                "max_position_embeddings": 64,
            },
            vision_config={
                "hidden_size": 768,
                "intermediate_size": 3072,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "image_size": 224,
                "patch_size": 16,
            },
        )
    return t.SiglipConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "vocab_size": 200,
            "max_position_embeddings": 64,
            "pad_token_id": 1,
            "bos_token_id": 1,
            "eos_token_id": 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
    )


CONFIGS: dict[str, Callable[[bool], Any]] = {
    "sam": _sam_config,
    "sam2": _sam2_config,
    "owlv2": _owlv2_config,
    "grounding_dino": _grounding_dino_config,
    "clip": _clip_config,
    "siglip": _siglip_config,
}

#: Published checkpoint each real-size config reproduces.
REAL_CHECKPOINTS = {
    "sam": "facebook/sam-vit-base",
    "sam2": "facebook/sam2.1-hiera-tiny",
    "owlv2": "google/owlv2-base-patch16-ensemble",
    "grounding_dino": "IDEA-Research/grounding-dino-tiny",
    "clip": "openai/clip-vit-base-patch16",
    "siglip": "google/siglip-base-patch16-224",
}
_ALIASES = {hub: name for name, hub in REAL_CHECKPOINTS.items()}
_ALIASES.update({hub.split("/")[-1]: name for name, hub in REAL_CHECKPOINTS.items()})


def canonical_name(name: str) -> str:
    """The short name (sam, sam2, owlv2, grounding_dino, clip, siglip) of a name or hub id."""
    key = name.replace("-", "_") if name.replace("-", "_") in CONFIGS else _ALIASES.get(name, name)
    if key not in CONFIGS:
        raise UnknownNameError(
            f"no vision config named {name!r}; known: {', '.join(CONFIGS)} "
            f"or {', '.join(REAL_CHECKPOINTS.values())}"
        )
    return key


def tiny_config(name: str) -> Any:
    """The tiny transformers config of ``name`` (sam, sam2, owlv2, grounding_dino, clip, siglip)."""
    return CONFIGS[canonical_name(name)](False)


def real_size_config(name: str) -> Any:
    """The transformers config matching a published checkpoint's architecture.

    Args:
        name: a short name (sam2, owlv2, grounding_dino, clip, siglip, sam) or the hub id
            (e.g. ``facebook/sam2.1-hiera-tiny``, ``openai/clip-vit-base-patch16``).

    Returns:
        A config object; ``ModelClass(config)`` builds a random-weight model of real size.
    """
    return CONFIGS[canonical_name(name)](True)
