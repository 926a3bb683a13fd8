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
            tokens (set by the model when ``lm_prior`` is on).
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
        deepest = len(grid_shapes) - 1
        self.top_proj = None
        if config.top_down and deepest != self.picks[0]:
            self.top_proj = nn.Sequential(
                nn.Conv2d(grid_shapes[deepest][0], d, 1),
                Sam2LayerNorm(d, data_format="channels_first"),
            )
        self.context = None
        if config.context_layers:
            layer = nn.TransformerEncoderLayer(
                d,
                config.decoder_heads,
                config.decoder_mlp_dim,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.context = nn.TransformerEncoder(
                layer, config.context_layers, enable_nested_tensor=False
            )
            self.context_pos = nn.Parameter(torch.randn(1, g * g, d) * 0.02)
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
        if self.top_proj is not None:
            embed = embed + self._resize(self.top_proj(grids[-1]), g)
        if self.context is not None:
            places = self.context(embed.flatten(2).transpose(1, 2) + self.context_pos)
            embed = places.transpose(1, 2).reshape(embed.shape)
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


def scramble_colours(
    pixels: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Each group of frames with its colours moved by one random orthogonal transform of RGB
    about mid-grey: shapes, edges and contrast stay (distances between colours are kept up to
    clipping), while hue and brightness move together at random.

    Args:
        pixels: (F, 3, S, S) normalised frames.
        mean, std: (3,) the normalisation (pixels in [0, 1] are ``pixels * std + mean``).
        groups: (F,) ints; frames with the same value (a video clip's) share one transform
            (default: one per frame).

    Returns:
        (F, 3, S, S) normalised frames.
    """
    mean = mean.to(pixels)[:, None, None]
    std = std.to(pixels)[:, None, None]
    raw = pixels * std + mean - 0.5
    if groups is None:
        groups = torch.arange(len(pixels), device=pixels.device)
    names, index = torch.unique(groups, return_inverse=True)
    random = torch.randn(len(names), 3, 3, device=pixels.device, dtype=torch.float32)
    rotations = torch.linalg.qr(random).Q.to(pixels.dtype)[index]  # (F, 3, 3)
    moved = torch.einsum("fij,fjhw->fihw", rotations, raw)
    return ((moved + 0.5).clamp(0, 1) - mean) / std


#: side of the grid the colour path reads the pixels at before its per-pixel MLP (4 x 4
#: pixel cells on a 256-pixel image: stripes and dots blend into a shade of their colour,
#: neighbouring shapes only along their edges; at full size the MLP would cost more than
#: the rest of a first-phase step)
COLOUR_GRID = 64


class ColourPath(nn.Module):
    """Per-place colour features from the image's own pixels, for a tower that is trained on
    scrambled colours (``colour_path`` in the config).

    A per-pixel MLP (1x1 convolutions, so it reads colour and not shape) maps each pixel to
    colour features; they are averaged over each place of a grid, then projected to its
    channels and layer-normalised over them at each place. Averaging after the MLP keeps a
    small shape's colour in a large place as a share of its features; averaging the pixels
    first would blend it with the background's into a colour no shape has. The norm (its
    scale learnt, starting at ``gain``) sets the colour's share of each place: at 1 it is
    comparable with the tower's (RMS 1-2); unnormalised, the projections start near RMS 0.2
    and stay there.

    Args:
        embed_dim: channels d of the decoder embedding.
        lm_channels: channels C of the tower grid the LM's tokens are pooled from.
        gain: starting scale of both norms, i.e. the colour's starting RMS at each place.
        hidden: channels of the per-pixel colour features.
    """

    def __init__(self, embed_dim: int, lm_channels: int, gain: float = 1.0, hidden: int = 16):
        super().__init__()
        self.per_pixel = nn.Sequential(
            nn.Conv2d(3, hidden, 1), nn.GELU(), nn.Conv2d(hidden, hidden, 1), nn.GELU()
        )
        self.to_embed = nn.Conv2d(hidden, embed_dim, 1)
        self.to_lm = nn.Conv2d(hidden, lm_channels, 1)
        self.embed_norm = nn.LayerNorm(embed_dim)
        self.lm_norm = nn.LayerNorm(lm_channels)
        for norm in (self.embed_norm, self.lm_norm):
            nn.init.constant_(norm.weight, gain)

    def forward(self, pixels: torch.Tensor, features: VisionFeatures) -> VisionFeatures:
        """Add the colour of ``pixels`` (F, 3, S, S) to ``features`` of the same frames:
        to ``embed`` (F, d, g, g) and ``lm_source`` (F, C, h, w), each averaged to its grid."""
        side = min(COLOUR_GRID, pixels.shape[-1])
        small = F.adaptive_avg_pool2d(pixels.to(features.embed.dtype), side)
        colours = self.per_pixel(small)  # (F, hidden, side, side)
        embed = features.embed + _per_place_norm(
            self.to_embed(F.adaptive_avg_pool2d(colours, features.embed.shape[-2:])),
            self.embed_norm,
        )
        source = features.lm_source
        lm_source = source + _per_place_norm(
            self.to_lm(F.adaptive_avg_pool2d(colours.to(source.dtype), source.shape[-2:])),
            self.lm_norm,
        )
        return VisionFeatures(embed, features.high_res, lm_source, features.lm_states)


def _per_place_norm(grid: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """Apply ``norm`` over the channels of ``grid`` (F, C, h, w) at each place."""
    return norm(grid.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


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


class FusionLayer(nn.Module):
    """Pre-norm transformer layer over image-grid tokens: cross-attention to text tokens,
    self-attention over the grid, MLP."""

    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm_cross = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, grid: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(S, N, d) grid tokens, (S, K, d) text tokens -> (S, N, d) updated grid tokens."""
        normed = self.norm_cross(grid)
        grid = grid + self.cross(normed, text, text, need_weights=False)[0]
        normed = self.norm_self(grid)
        grid = grid + self.self_attn(normed, normed, normed, need_weights=False)[0]
        return grid + self.mlp(self.norm_mlp(grid))


class GroundingFusion(nn.Module):
    """The image embedding conditioned on one [SEG]'s query and the text it read.

    Each [SEG] adds its projected state to every cell of the decoder's g x g image embedding
    (with position); the cells then attend to the [SEG]'s text tokens (what its reader
    gathered from the expression) and to each other, so attributes are matched per cell and
    relations and ordinals can compare cells. The result is SAM2's dense prompt and a
    per-cell localisation score.
    """

    def __init__(self, dim: int, lm_hidden: int, layers: int, heads: int, mlp_dim: int):
        super().__init__()
        self.from_query = nn.Linear(lm_hidden, dim)
        self.from_text = nn.Sequential(nn.LayerNorm(lm_hidden), nn.Linear(lm_hidden, dim))
        self.layers = nn.ModuleList(FusionLayer(dim, heads, mlp_dim) for _ in range(layers))
        self.norm_out = nn.LayerNorm(dim)
        self.dense_out = nn.Linear(dim, dim)
        self.score_out = nn.Linear(dim, 1)

    def forward(
        self,
        embed: torch.Tensor,
        position: torch.Tensor,
        query: torch.Tensor,
        text: torch.Tensor,
        shift: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition the image embedding on each [SEG].

        Args:
            embed: (S, d, g, g) image embedding of each [SEG]'s frame.
            position: (1, d, g, g) positional encoding of the grid.
            query: (S, D_lm) [SEG] states.
            text: (S, K, D_lm) text tokens each [SEG] read.
            shift: (S, d) time embedding of video frames, or None.

        Returns:
            (S, d, g, g) dense prompt embeddings and (S, g, g) localisation logits.
        """
        count, dim, side, _ = embed.shape
        grid = (embed + position).flatten(2).transpose(1, 2)
        cond = self.from_query(query)
        if shift is not None:
            cond = cond + shift.to(cond.dtype)
        grid = grid + cond[:, None].to(grid.dtype)
        tokens = torch.cat([cond[:, None], self.from_text(text)], 1).to(grid.dtype)
        for layer in self.layers:
            grid = layer(grid, tokens)
        grid = self.norm_out(grid)
        dense = self.dense_out(grid).transpose(1, 2).reshape(count, dim, side, side)
        return dense, self.score_out(grid)[..., 0].view(count, side, side)


class BoxHead(nn.Module):
    """Where a [SEG] query's target lies, as a box: an MLP on the query (plus a video frame's
    time embedding), so the language model's state must carry the target's place.

    Args:
        lm_hidden: width of the [SEG] states.
        width: hidden width (the decoder's; the time embedding's width).
    """

    def __init__(self, lm_hidden: int, width: int):
        super().__init__()
        self.inp = nn.Linear(lm_hidden, width)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(width, width), nn.GELU(), nn.Linear(width, 4))

    def forward(self, states: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """(S, D) [SEG] states (and (S, width) time shifts) -> (S, 4) boxes (x0, y0, x1, y1)
        as fractions of the image side: a sigmoid centre and size."""
        hidden = self.inp(states)
        if shift is not None:
            hidden = hidden + shift.to(hidden.dtype)
        centre_x, centre_y, width, height = self.out(hidden).float().sigmoid().unbind(-1)
        return torch.stack(
            [
                centre_x - width / 2,
                centre_y - height / 2,
                centre_x + width / 2,
                centre_y + height / 2,
            ],
            -1,
        )
