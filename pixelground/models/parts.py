"""Building the transformers parts of the [SEG]-token model, and the vision neck.

The vision tower is any transformers vision model: convolutional towers (ConvNext, ResNet)
give multi-scale (B, C, h, w) hidden states; ViT-style towers (SigLIP, CLIP, DINOv2) give
(B, N, C) tokens, read as one square grid after dropping leading class/register tokens. The
neck turns those grids into what SAM2's mask decoder wants (an embedding grid g x g and
high-resolution features at 2g and 4g) and into the LM's visual tokens.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.sam2.modeling_sam2 import Sam2LayerNorm

from pixelground.backends.loading import load_pretrained
from pixelground.models.config import SegModelConfig

logger = logging.getLogger(__name__)


def is_model_type(name: str) -> bool:
    """True when ``name`` is a transformers model_type (build from config, no download)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return name in CONFIG_MAPPING


def config_from_dict(data: dict[str, Any]) -> Any:
    """A transformers config rebuilt from its ``to_dict()`` output."""
    from transformers import AutoConfig

    data = dict(data)
    model_type = data.pop("model_type")
    return AutoConfig.for_model(model_type, **data)


def build_vision_tower(config: SegModelConfig) -> nn.Module:
    """The vision tower named by ``config`` (random weights unless ``vision_pretrained``)."""
    from transformers import AutoConfig, AutoModel

    if config.vision_config is not None:
        return AutoModel.from_config(config_from_dict(config.vision_config))
    if is_model_type(config.vision_tower):
        conf = AutoConfig.for_model(config.vision_tower, **config.vision_kwargs)
        return AutoModel.from_config(conf)
    conf = load_pretrained(AutoConfig, config.vision_tower)
    vision_conf = getattr(conf, "vision_config", None)
    if vision_conf is None:
        if config.vision_pretrained:
            return load_pretrained(AutoModel, config.vision_tower)
        return AutoModel.from_config(conf)
    tower = AutoModel.from_config(vision_conf)  # composite (CLIP/SigLIP): keep the vision half
    if config.vision_pretrained:
        full = load_pretrained(AutoModel, config.vision_tower)
        tower.vision_model.load_state_dict(full.vision_model.state_dict())
    return tower


def build_language_model(config: SegModelConfig, vocab_size: int, token_ids: Any) -> nn.Module:
    """The causal LM named by ``config`` with its vocabulary sized to the tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    special = {
        "pad_token_id": token_ids.pad,
        "bos_token_id": token_ids.bos,
        "eos_token_id": token_ids.eos,
    }
    if config.lm_config is not None:
        conf = config_from_dict(config.lm_config)
        lm = AutoModelForCausalLM.from_config(conf)
    elif is_model_type(config.lm):
        kwargs = {**config.lm_kwargs, **special, "vocab_size": vocab_size}
        lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(config.lm, **kwargs))
    elif config.lm_pretrained:
        lm = load_pretrained(AutoModelForCausalLM, config.lm)
    else:
        lm = AutoModelForCausalLM.from_config(load_pretrained(AutoConfig, config.lm))
    if lm.get_input_embeddings().num_embeddings != vocab_size:
        lm.resize_token_embeddings(vocab_size)
    for key, value in special.items():
        setattr(lm.config, key, value)
    return lm


def tower_grids(outputs: Any) -> list[torch.Tensor]:
    """Square feature grids from a vision tower's output, finest first.

    Args:
        outputs: a transformers vision model output, called with ``output_hidden_states=True``.

    Returns:
        (B, C, h, w) grids, one per distinct resolution (the deepest of each).
    """
    last = outputs.last_hidden_state
    if last.dim() == 4:
        states = [s for s in (outputs.hidden_states or ()) if s.dim() == 4] + [last]
        by_size: dict[int, torch.Tensor] = {}
        for state in states:
            by_size[state.shape[-1]] = state
        return [by_size[k] for k in sorted(by_size, reverse=True)]
    count = last.shape[1]
    side = math.isqrt(count)
    tokens = last[:, count - side * side :]
    return [tokens.transpose(1, 2).reshape(last.shape[0], last.shape[2], side, side)]


def _closest(sizes: list[int], target: int) -> int:
    """Index of the size nearest ``target`` in log scale (the larger one on ties)."""
    return min(range(len(sizes)), key=lambda i: (abs(math.log(sizes[i] / target)), -sizes[i]))


def time_features(times: torch.Tensor, count: int = 4) -> torch.Tensor:
    """Sinusoidal features of normalised frame times in [0, 1]: (F,) -> (F, 2 * count)."""
    freqs = torch.arange(1, count + 1, device=times.device, dtype=torch.float32) * math.pi
    angles = times.float()[:, None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@dataclass
class ClipKeys:
    """The frames of clips that each frame's motion is measured against: the key frames the
    LM sees (inference) or a training row's sampled frames.

    Attributes:
        embed: (K, d, g, g) their decoder embeddings.
        times: (K,) their normalised times in their clip.
        clips: (K,) the clip each belongs to.
    """

    embed: torch.Tensor
    times: torch.Tensor
    clips: torch.Tensor


@dataclass
class VisionFeatures:
    """What the model needs from a batch of F frames (an image is one frame).

    Attributes:
        embed: (F, d, g, g) decoder image embeddings.
        high_res: [(F, d/8, 4g, 4g), (F, d/4, 2g, 2g)] for the decoder's upscaling.
        lm_source: (F, C, h, w) tower grid the LM's visual tokens are pooled from.
        lm_states: (F, lm_grid**2, D_lm) the LM's last hidden states of each frame's visual
            tokens (set by ``SegTokenModel.run``).
    """

    embed: torch.Tensor
    high_res: list[torch.Tensor]
    lm_source: torch.Tensor
    lm_states: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> VisionFeatures:
        """The features of frames ``index`` (one row per decoded mask)."""
        states = None if self.lm_states is None else self.lm_states[index]
        return VisionFeatures(
            self.embed[index], [h[index] for h in self.high_res], self.lm_source[index], states
        )


class VisionNeck(nn.Module):
    """Tower grids -> decoder embedding grid, high-resolution features and LM tokens."""

    def __init__(self, config: SegModelConfig, grid_shapes: list[tuple[int, int]], lm_hidden: int):
        """Args:
        config: model config (decoder_dim d, mask_grid = 4g, lm_grid).
        grid_shapes: (channels, side) of each tower grid, finest first.
        lm_hidden: hidden size of the LM.
        """
        super().__init__()
        d, g = config.decoder_dim, config.embed_grid
        sides = [side for _, side in grid_shapes]
        self.lm_grid = config.lm_grid
        self.sizes = (g, 2 * g, 4 * g, config.lm_grid)
        self.picks = tuple(_closest(sides, s) for s in self.sizes)
        chans = [grid_shapes[i][0] for i in self.picks]
        self.lm_source_channels = chans[3]
        self.embed_proj = nn.Sequential(
            nn.Conv2d(chans[0], d, 1),
            Sam2LayerNorm(d, data_format="channels_first"),
            nn.Conv2d(d, d, 3, padding=1),
            Sam2LayerNorm(d, data_format="channels_first"),
        )
        self.s1_proj = nn.Conv2d(chans[1], d, 1)
        self.s0_proj = nn.Conv2d(chans[2], d, 1)
        self.lm_proj = nn.Sequential(
            nn.Linear(chans[3], lm_hidden), nn.GELU(), nn.Linear(lm_hidden, lm_hidden)
        )
        self.lm_pos = nn.Parameter(torch.randn(lm_hidden, config.lm_grid, config.lm_grid) * 0.02)
        self.lm_time = nn.Linear(8, lm_hidden)
        self.region_proj = nn.Sequential(
            nn.Linear(d, lm_hidden), nn.GELU(), nn.Linear(lm_hidden, lm_hidden)
        )

    @staticmethod
    def _resize(grid: torch.Tensor, side: int) -> torch.Tensor:
        if grid.shape[-1] == side:
            return grid
        if grid.shape[-1] > side:
            return F.adaptive_avg_pool2d(grid, side)
        return F.interpolate(grid, size=(side, side), mode="bilinear", align_corners=False)

    def forward(
        self, grids: list[torch.Tensor], conv_s0: nn.Module, conv_s1: nn.Module
    ) -> VisionFeatures:
        """Features of F frames; ``conv_s0``/``conv_s1`` are the mask decoder's projections."""
        g, g2, g4, _ = self.sizes
        embed = self.embed_proj(self._resize(grids[self.picks[0]], g))
        s1 = conv_s1(self.s1_proj(self._resize(grids[self.picks[1]], g2)))
        s0 = conv_s0(self.s0_proj(self._resize(grids[self.picks[2]], g4)))
        return VisionFeatures(embed=embed, high_res=[s0, s1], lm_source=grids[self.picks[3]])

    def lm_tokens(
        self, source: torch.Tensor, side: int, times: torch.Tensor | None
    ) -> torch.Tensor:
        """Visual tokens for the LM.

        Args:
            source: (F, C, h, w) grids (``VisionFeatures.lm_source``).
            side: tokens per frame are side x side (pooled).
            times: (F,) normalised frame times of video frames, or None for images.

        Returns:
            (F, side * side, D_lm) tokens.
        """
        pooled = self._resize(source, side).flatten(2).transpose(1, 2)
        pos = self._resize(self.lm_pos[None], side).flatten(2).transpose(1, 2)
        tokens = self.lm_proj(pooled) + pos
        if times is not None:
            tokens = tokens + self.lm_time(time_features(times).to(self.lm_time.weight.dtype))[
                :, None
            ].to(tokens.dtype)
        return tokens

    def region_tokens(self, embed: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Mask-pooled visual-prompt tokens (as Sa2VA).

        Args:
            embed: (R, d, g, g) embedding grid of each region's image.
            masks: (R, H, W) float region masks in [0, 1].

        Returns:
            (R, D_lm) tokens added to the ``<region>`` token embeddings.
        """
        weights = F.adaptive_avg_pool2d(masks[:, None].to(embed.dtype), embed.shape[-1])
        pooled = (embed * weights).sum((2, 3)) / weights.sum((2, 3)).clamp(min=1e-6)
        return self.region_proj(pooled)


class SegReader(nn.Module):
    """Lets each [SEG] state read the LM's last hidden states before it (one attention layer).

    A from-scratch LM learns slowly to gather the referred-to object into the [SEG] state;
    this layer lets the mask decoder's query attend over the expression's and the image's
    token states directly. Heads carry fixed ALiBi-style recency slopes (0 = the whole
    context, larger = the phrase just before the [SEG]), so grounded captions' [SEG]s read
    their own phrase.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"LM hidden size {dim} is not divisible by {heads} reader heads")
        self.heads = heads
        self.norm_query = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        slopes = [0.0] + [2.0 ** (-i) for i in range(heads - 1)]
        self.register_buffer("slopes", torch.tensor(slopes), persistent=False)

    def forward(
        self, states: torch.Tensor, context: torch.Tensor, last: torch.Tensor
    ) -> torch.Tensor:
        """Read the context.

        Args:
            states: (S, D) query states, or (S, Q, D) several queries per sequence.
            context: (S, L, D) the LM's last hidden states of each query's sequence.
            last: (S,) index of the last context position each query may read.

        Returns:
            The states plus what they read, shaped like ``states``.
        """
        single = states.dim() == 2
        queries = states[:, None] if single else states
        count, length, dim = context.shape
        head_dim = dim // self.heads
        query = self.query(self.norm_query(queries))
        query = query.view(count, -1, self.heads, head_dim).transpose(1, 2)
        normed = self.norm_context(context)
        key = self.key(normed).view(count, length, self.heads, head_dim).transpose(1, 2)
        value = self.value(normed).view(count, length, self.heads, head_dim).transpose(1, 2)
        distance = last[:, None] - torch.arange(length, device=context.device)[None]
        bias = -self.slopes.to(context.dtype)[None, :, None] * distance.clamp(min=0)[:, None]
        bias = bias.masked_fill((distance < 0)[:, None], float("-inf"))[:, :, None]
        read = F.scaled_dot_product_attention(query, key, value, attn_mask=bias)
        out = queries + self.out(read.transpose(1, 2).reshape(count, -1, dim))
        return out[:, 0] if single else out


def neighbour_keys(
    times: torch.Tensor, clips: torch.Tensor, key_times: torch.Tensor, key_clips: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The key frames on either side of each frame, in its own clip.

    Args:
        times: (F,) normalised times of the frames.
        clips: (F,) the clip of each frame.
        key_times: (K,) times of the key frames.
        key_clips: (K,) their clips; every frame's clip has at least one key frame.

    Returns:
        (before, after), each (F,) indices into the keys: the last key frame earlier than the
        frame (the clip's first key frame when there is none) and the first one later than it
        (the clip's last when there is none). A clip with one key frame gives it for both.
    """
    same = clips[:, None] == key_clips[None]
    if not bool(same.any(1).all()):
        raise ValueError("a frame's clip has no key frame")
    span = key_times[None].expand(len(times), -1).float()
    earlier = same & (key_times[None] < times[:, None])
    later = same & (key_times[None] > times[:, None])
    inf = torch.tensor(float("inf"), device=times.device)
    first = torch.where(same, span, inf).argmin(1)
    last = torch.where(same, span, -inf).argmax(1)
    before = torch.where(earlier.any(1), torch.where(earlier, span, -inf).argmax(1), first)
    after = torch.where(later.any(1), torch.where(later, span, inf).argmin(1), last)
    return before, after
