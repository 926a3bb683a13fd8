"""SAM2's memory for video: each frame's decoder embedding attends to what earlier frames'
masks were, so a [SEG] follows its object from frame to frame.

As SAM2 does it: after a frame is decoded, the memory encoder fuses the frame's (unconditioned)
image embedding with its predicted mask (sigmoid, scaled to +-10, downsampled to the embedding
grid) into a 64-channel memory with a sine position encoding; the next frames' embeddings go
through memory attention (RoPE self-attention, then cross-attention to the last ``frames``
memories, each tagged with a learned embedding of how many frames back it is). A frame with no
memory yet gets a learned "no memory" embedding instead. SAM2's object pointers and occlusion
embedding are not used: our [SEG] prompt is given on every frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import Sam2VideoConfig
from transformers.models.sam2_video.modeling_sam2_video import (
    Sam2VideoMemoryAttention,
    Sam2VideoMemoryEncoder,
)

MEMORY_CHANNELS = 64  # SAM2's memory width (its memory attention reads 64-channel keys)


@dataclass
class MemoryBank:
    """The memories of S tracks, oldest first; at most ``size`` are kept.

    Attributes:
        size: how many frames back a frame can attend.
        features: per remembered frame, (S, 64, g, g) memory features.
        positions: per remembered frame, (S, 64, g, g) their sine position encoding.
    """

    size: int
    features: list[torch.Tensor] = field(default_factory=list)
    positions: list[torch.Tensor] = field(default_factory=list)

    def push(self, features: torch.Tensor, positions: torch.Tensor) -> None:
        """Remember one frame (S, 64, g, g) and forget the oldest beyond ``size``."""
        self.features = [*self.features, features][-self.size :]
        self.positions = [*self.positions, positions][-self.size :]

    def select(self, index: torch.Tensor) -> MemoryBank:
        """The bank of the tracks ``index`` (K,) only."""
        return MemoryBank(
            self.size, [f[index] for f in self.features], [p[index] for p in self.positions]
        )

    def __len__(self) -> int:
        return len(self.features)


class FrameMemory(nn.Module):
    """SAM2's memory attention and memory encoder at the decoder's size.

    Args:
        dim: decoder width d.
        grid: side g of the decoder's image embedding.
        frames: memories a frame attends to.
        layers: memory-attention layers.
    """

    def __init__(self, dim: int, grid: int, frames: int, layers: int):
        super().__init__()
        conf = Sam2VideoConfig(
            num_maskmem=frames,
            memory_attention_hidden_size=dim,
            memory_attention_num_layers=layers,
            memory_attention_num_attention_heads=1,
            memory_attention_feed_forward_hidden_size=4 * dim,
            memory_attention_dropout=0.0,
            memory_attention_rope_dropout=0.0,
            memory_attention_rope_feat_sizes=[grid, grid],
            memory_encoder_hidden_size=dim,
            memory_encoder_output_channels=MEMORY_CHANNELS,
            mask_downsampler_embed_dim=dim,
            mask_downsampler_total_stride=4,  # mask logits are 4g x 4g
            memory_fuser_num_layers=1,
            memory_fuser_embed_dim=dim,
            memory_fuser_intermediate_dim=4 * dim,
        )
        conf._attn_implementation = "sdpa"
        self.frames = frames
        self.attention = Sam2VideoMemoryAttention(conf)
        self.encoder = Sam2VideoMemoryEncoder(conf)
        self.no_memory = nn.Parameter(torch.zeros(dim))
        self.frames_back = nn.Parameter(torch.zeros(frames, MEMORY_CHANNELS))
        self.mask_scale, self.mask_bias = (
            conf.sigmoid_scale_for_mem_enc,
            conf.sigmoid_bias_for_mem_enc,
        )

    def empty_bank(self) -> MemoryBank:
        """A bank with nothing remembered yet."""
        return MemoryBank(self.frames)

    def condition(
        self, embed: torch.Tensor, position: torch.Tensor, bank: MemoryBank
    ) -> torch.Tensor:
        """The decoder embeddings of one frame per track, conditioned on the tracks' memories.

        Args:
            embed: (S, d, g, g) image embeddings.
            position: (1, d, g, g) their positional embedding.
            bank: the S tracks' memories (may be empty).

        Returns:
            (S, d, g, g).
        """
        if not len(bank):
            return embed + self.no_memory.view(1, -1, 1, 1).to(embed.dtype)
        count, dim = embed.shape[:2]
        current = embed.flatten(2).permute(2, 0, 1)  # (g*g, S, d)
        current_position = position.expand(count, -1, -1, -1).flatten(2).permute(2, 0, 1)
        back = len(bank)
        memory = torch.cat([f.flatten(2).permute(2, 0, 1) for f in bank.features])
        memory_position = torch.cat(
            [
                p.flatten(2).permute(2, 0, 1) + self.frames_back[back - 1 - k].to(p.dtype)
                for k, p in enumerate(bank.positions)
            ]
        )
        out = self.attention(
            current_vision_features=current,
            memory=memory.to(embed.dtype),
            current_vision_position_embeddings=current_position.to(embed.dtype),
            memory_posision_embeddings=memory_position.to(embed.dtype),
        )  # (1, S, g*g, d)
        return out[0].transpose(1, 2).reshape(count, dim, *embed.shape[-2:])

    def encode(
        self, embed: torch.Tensor, mask_logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame's memory per track.

        Args:
            embed: (S, d, g, g) the frame's image embeddings (not conditioned on memory).
            mask_logits: (S, 4g, 4g) the masks predicted on it.

        Returns:
            (S, 64, g, g) memory features and (S, 64, g, g) their position encoding.
        """
        masks = torch.sigmoid(mask_logits[:, None].float()) * self.mask_scale + self.mask_bias
        return self.encoder(embed, masks.to(embed.dtype))
