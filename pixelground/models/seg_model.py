"""The [SEG]-token grounding model (LISA / GLaMM / Sa2VA design) built from transformers parts.

A vision tower encodes the image; a neck pools it to ``lm_grid**2`` visual tokens that replace
the ``<image>`` placeholders of a causal LM's input, and projects it to SAM2's image embedding
and high-resolution features. Every ``[SEG]`` token's last hidden state is projected to sparse
prompt embeddings for SAM2's mask decoder (``Sam2MaskDecoder``), whose dense prompt is SAM2's
prompt encoder's no-mask embedding. ``<region>`` tokens get mask-pooled visual features added.

Training loss = ``lm_loss_weight`` * LM cross-entropy + ``bce_loss_weight`` * mask BCE +
``dice_loss_weight`` * mask DICE (+ the coarse-prior and phrase-word terms when enabled), the
mask terms averaged over all [SEG] masks of the batch.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.sam2.configuration_sam2 import (
    Sam2MaskDecoderConfig,
    Sam2PromptEncoderConfig,
)
from transformers.models.sam2.modeling_sam2 import (
    Sam2MaskDecoder,
    Sam2PositionalEmbedding,
    Sam2PromptEncoder,
)

from pixelground.backends.base import GroundedText
from pixelground.core.errors import CheckpointMissingError, InputError
from pixelground.core.masks import masks_to_boxes
from pixelground.models.config import SegModelConfig
from pixelground.models.data import COLOUR_WORDS, preprocess_image
from pixelground.models.memory import FrameMemory, MemoryBank
from pixelground.models.parts import (
    BoxHead,
    ClipKeys,
    ColourPath,
    GroundingFusion,
    SegReader,
    VisionFeatures,
    VisionNeck,
    build_language_model,
    build_vision_tower,
    scramble_colours,
    time_features,
    tower_grids,
)
from pixelground.models.tokenizer import TokenIds

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_TYPE = "pixelground_seg"
#: The loss terms of ``SegTokenModel.forward``; each is weighted by ``<term>_weight``.
LOSS_TERMS = (
    "lm_loss",
    "bce_loss",
    "dice_loss",
    "prior_loss",
    "point_loss",
    "word_loss",
    "head_word_loss",
    "box_loss",
    "motion_loss",
    "query_word_loss",
)
#: Velocities (image sides per clip) are doubled for the velocity heads, so that a shape moving
#: across a third of the frame is a target near 1, where the smooth L1 loss turns linear.
VELOCITY_SCALE = 2.0
#: The word match's log-likelihoods are floored here, so that one word a place is sure it
#: lacks costs at most this much.
LOG_LIKELIHOOD_FLOOR = -10.0
#: ``position_query``: the prior term at the image's edges for a unit direction.
POSITION_SCALE = 4.0


def mask_losses(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean per-mask BCE and DICE of low-resolution logits against full-size targets.

    Args:
        logits: (S, h, w) mask logits.
        targets: (S, H, W) float targets in {0, 1}.

    Returns:
        (bce, dice) scalars.
    """
    logits = F.interpolate(
        logits[:, None].float(), size=targets.shape[-2:], mode="bilinear", align_corners=False
    )[:, 0]
    targets = targets.float()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).mean(1)
    prob, flat = logits.sigmoid().flatten(1), targets.flatten(1)
    dice = 1 - (2 * (prob * flat).sum(1) + 1) / (prob.sum(1) + flat.sum(1) + 1)
    return bce.mean(), dice.mean()


def point_loss(prior: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each coarse map's softmax over its places against its target's share
    of each place: the places of one map compete, so mass on an object that is not the target
    costs as much as missing the target does, however small the objects are.

    Args:
        prior: (S, g, g) coarse logits.
        pooled: (S, g, g) fraction of each place covered by the target; maps with an empty
            target are left out.

    Returns:
        Scalar mean over the maps with a target (0 when none has one).
    """
    mass = pooled.flatten(1).float()
    has_target = mass.sum(1) > 0
    if not bool(has_target.any()):
        return prior.new_zeros(()).float()
    share = mass[has_target] / mass[has_target].sum(1, keepdim=True)
    log_prob = F.log_softmax(prior.flatten(1)[has_target].float(), dim=1)
    return -(share * log_prob).sum(1).mean()


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes of masks (``core.masks.masks_to_boxes``) as fractions of their sides.

    Args:
        masks: (S, H, W) masks; nonzero is inside.

    Returns:
        (S, 4) float (x0, y0, x1, y1) in [0, 1], x1 and y1 past the last pixel inside; all
        zero for an empty mask.
    """
    height, width = masks.shape[-2:]
    boxes = torch.from_numpy(masks_to_boxes(masks.detach().cpu().numpy()))
    return (boxes / torch.tensor([width, height, width, height])).to(masks.device)


def box_losses(predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L1 plus generalised-IoU loss (DETR's pair) of predicted boxes against target boxes.

    Args:
        predicted: (S, 4) boxes (x0, y0, x1, y1), x1 >= x0 and y1 >= y0, as fractions.
        targets: (S, 4) boxes in the same form.

    Returns:
        Scalar: the mean over the boxes of the summed |coordinate error| plus 1 - GIoU.
    """
    predicted, targets = predicted.float(), targets.float()
    l1 = (predicted - targets).abs().sum(1)
    low = torch.maximum(predicted[:, :2], targets[:, :2])
    high = torch.minimum(predicted[:, 2:], targets[:, 2:])
    overlap = (high - low).clamp(min=0).prod(1)

    def area(boxes: torch.Tensor) -> torch.Tensor:
        return (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(1)

    union = area(predicted) + area(targets) - overlap
    hull = (
        torch.maximum(predicted[:, 2:], targets[:, 2:])
        - torch.minimum(predicted[:, :2], targets[:, :2])
    ).prod(1)
    giou = overlap / union.clamp(min=1e-6) - (hull - union) / hull.clamp(min=1e-6)
    return (l1 + 1 - giou).mean()


def covered_places(masks: torch.Tensor, side: int) -> torch.Tensor:
    """Places of a side x side grid that lie in each mask.

    Args:
        masks: (K, H, W) float masks.
        side: the grid's side.

    Returns:
        (K, side, side) bool: the places at least half inside the mask; for a mask smaller
        than that, its most covered place (none for an empty mask).
    """
    cover = F.adaptive_avg_pool2d(masks[:, None].float(), side)[:, 0]
    most = cover.flatten(1).amax(1)[:, None, None]
    return (cover >= 0.5) | ((cover == most) & (most > 0))


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


def mask_velocities(
    masks: torch.Tensor, owners: torch.Tensor, times: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """How fast each object moves across its frames, from its masks' centroids.

    Args:
        masks: (P, H, W) masks of objects on frames; nonzero is inside.
        owners: (P,) the object of each mask (several masks per object, one per frame).
        times: (P,) the normalised time of each mask's frame.

    Returns:
        (N, 2) velocities (x, y) in image sides per unit of normalised time: the centroid's
        move from the object's first non-empty frame to its last, divided by the time
        between them; and (N,) the objects they belong to (objects with fewer than two
        non-empty frames at different times are left out).
    """
    height, width = masks.shape[-2:]
    weight = masks.flatten(1).float()
    area = weight.sum(1)
    ys = (torch.arange(height, device=masks.device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=masks.device, dtype=torch.float32) + 0.5) / width
    grid_x = xs[None].expand(height, -1).reshape(-1)
    grid_y = ys[:, None].expand(-1, width).reshape(-1)
    centre = torch.stack([weight @ grid_x, weight @ grid_y], 1) / area.clamp(min=1)[:, None]
    velocities, found = [], []
    for owner in owners.unique().tolist():
        mine = ((owners == owner) & (area > 0)).nonzero()[:, 0]
        if len(mine) < 2:
            continue
        order = mine[times[mine].argsort()]
        span = float(times[order[-1]] - times[order[0]])
        if span <= 0:
            continue
        velocities.append((centre[order[-1]] - centre[order[0]]) / span)
        found.append(owner)
    if not found:
        return masks.new_zeros((0, 2)).float(), owners.new_zeros((0,))
    return torch.stack(velocities), torch.tensor(found, device=owners.device)


class SegTokenModel(nn.Module):
    """Vision tower + causal LM + SAM2 prompt encoder and mask decoder, joined by [SEG].

    Args:
        config: the architecture; ``vision_config``/``lm_config`` are filled in when built.
        tokenizer: a transformers tokenizer holding the markup tokens (see tokenizer.py).
    """

    def __init__(self, config: SegModelConfig, tokenizer: Any):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self._colour_columns: torch.Tensor | None = None  # see colour_columns
        self.ids = TokenIds.of(tokenizer)
        self.vision = build_vision_tower(config)
        self.lm = build_language_model(config, len(tokenizer), self.ids)
        config.vision_config = self.vision.config.to_dict()
        config.lm_config = self.lm.config.to_dict()
        d = config.decoder_dim
        prompt_conf = Sam2PromptEncoderConfig(
            hidden_size=d,
            image_size=config.image_size,
            patch_size=config.image_size // config.embed_grid,
        )
        decoder_conf = Sam2MaskDecoderConfig(
            hidden_size=d,
            mlp_dim=config.decoder_mlp_dim,
            num_hidden_layers=config.decoder_layers,
            num_attention_heads=config.decoder_heads,
            num_multimask_outputs=0,
            iou_head_hidden_dim=d,
            dynamic_multimask_via_stability=False,
        )
        decoder_conf._attn_implementation = "sdpa"
        self.prompt_encoder = Sam2PromptEncoder(prompt_conf)
        self.image_pe = Sam2PositionalEmbedding(prompt_conf)
        self.mask_decoder = Sam2MaskDecoder(decoder_conf)
        lm_hidden = self.lm.config.hidden_size
        self.neck = VisionNeck(config, self._probe_grids(), lm_hidden)
        self.seg_proj = nn.Sequential(
            nn.Linear(lm_hidden, lm_hidden),
            nn.GELU(),
            nn.Linear(lm_hidden, d * config.seg_prompt_tokens),
        )
        self.time_proj = nn.Linear(8, d)
        self.reader = (
            SegReader(lm_hidden, config.seg_reader_heads) if config.seg_reader_heads else None
        )
        self.prior_query = nn.Sequential(
            nn.Linear(lm_hidden, lm_hidden), nn.GELU(), nn.Linear(lm_hidden, d)
        )
        self.prior_key = nn.Conv2d(d, d, 1)
        self.word_heads = None
        if config.word_loss_weight > 0:
            vocab = len(tokenizer)
            self.word_heads = nn.ModuleList(
                [nn.Linear(d, vocab), nn.Linear(self.neck.lm_source_channels, vocab)]
            )
            for head in self.word_heads:  # start at p = 1 / vocab: most words are absent
                nn.init.constant_(head.bias, -math.log(vocab))
        self.loss_scale: dict[str, float] = {}
        self.prior_key_lm = nn.Linear(lm_hidden, d) if config.lm_prior else None
        self.lm_to_embed = nn.Linear(lm_hidden, d) if config.lm_features else None
        self.fusion = self.text_reader = None
        if config.fusion_layers:
            self.text_latents = nn.Parameter(
                torch.randn(config.fusion_text_tokens, lm_hidden) * 0.02
            )
            self.text_reader = SegReader(lm_hidden, config.seg_reader_heads)
            self.fusion = GroundingFusion(
                d, lm_hidden, config.fusion_layers, config.decoder_heads, config.decoder_mlp_dim
            )
        self.frame_memory = None
        if config.video_memory:
            self.frame_memory = FrameMemory(
                d, config.embed_grid, config.video_memory, config.memory_layers
            )
        if config.freeze_vision:
            self.vision.requires_grad_(False)
        if config.lora_r > 0:
            self.wrap_lora()

        # built last, so that turning it on leaves the other parts' initialisation as it is
        self.head_word_heads = None
        if config.head_word_loss_weight > 0:
            vocab = len(tokenizer)
            self.head_word_heads = nn.ModuleList(
                [nn.Linear(d, vocab), nn.Linear(self.neck.lm_source_channels, vocab)]
            )
        self.box_head = BoxHead(lm_hidden, d) if config.box_loss_weight > 0 else None
        self.time_in = None
        if config.time_query:  # starts at zero: the time enters as it does without it
            self.time_in = nn.Linear(8, lm_hidden)
            nn.init.zeros_(self.time_in.weight)
            nn.init.zeros_(self.time_in.bias)
        self.motion_net = None
        if config.motion_features:  # its last layer starts at zero: the embedding is as without
            self.motion_net = nn.Sequential(
                nn.Conv2d(2 * d, d, 3, padding=1), nn.GELU(), nn.Conv2d(d, d, 3, padding=1)
            )
            nn.init.zeros_(self.motion_net[2].weight)
            nn.init.zeros_(self.motion_net[2].bias)
        self.velocity_head = nn.Linear(d, 2) if config.motion_loss_weight > 0 else None
        self.query_velocity = self.motion_gate = None
        if config.motion_query:  # the gate starts at zero: the prior is as without it
            self.query_velocity = nn.Linear(lm_hidden, 2)
            self.motion_gate = nn.Linear(lm_hidden, 1)
            nn.init.zeros_(self.motion_gate.weight)
            nn.init.zeros_(self.motion_gate.bias)
        self.query_words = self.word_gate = None
        if config.query_word_loss_weight > 0:  # the gate starts at zero: the prior is as without
            heads = 1 if self.head_word_heads is None else 2
            self.query_words = nn.Linear(lm_hidden, heads * len(tokenizer))
            self.word_gate = nn.Linear(lm_hidden, heads)
            nn.init.zeros_(self.word_gate.weight)
            nn.init.zeros_(self.word_gate.bias)
        self.query_direction = None
        if config.position_query:  # built last and zero: the run starts as without it
            self.query_direction = nn.Linear(lm_hidden, 2)
            nn.init.zeros_(self.query_direction.weight)
            nn.init.zeros_(self.query_direction.bias)
        self.colour_path = None
        if config.colour_path:  # built last, so the other parts start as without it
            self.colour_path = ColourPath(
                config.decoder_dim, self.neck.lm_source_channels, config.colour_gain
            )

    # ----------------------------------------------------------------- building
    @torch.no_grad()
    def _probe_grids(self) -> list[tuple[int, int]]:
        size = self.config.image_size
        was_training = self.vision.training
        self.vision.eval()
        probe = torch.zeros(1, 3, size, size)
        grids = tower_grids(self.vision(pixel_values=probe, output_hidden_states=True))
        self.vision.train(was_training)
        return [(g.shape[1], g.shape[-1]) for g in grids]

    def wrap_lora(self) -> None:
        """Wrap the LM in peft LoRA adapters (``lora_*`` config fields); new-token embeddings
        and the LM head stay fully trainable."""
        from pixelground.core.errors import require

        peft = require("peft", "train")
        lora = peft.LoraConfig(
            r=self.config.lora_r,
            lora_alpha=self.config.lora_alpha,
            lora_dropout=self.config.lora_dropout,
            target_modules=list(self.config.lora_target_modules),
            modules_to_save=["embed_tokens", "lm_head"],
        )
        self.lm = peft.get_peft_model(self.lm, lora)

    @property
    def num_image_tokens(self) -> int:
        """Visual tokens the LM sees per image."""
        return self.config.lm_grid**2

    @property
    def needs_lm_states(self) -> bool:
        """Whether mask decoding reads the LM's states of the visual tokens."""
        return self.prior_key_lm is not None or self.lm_to_embed is not None

    @property
    def has_word_heads(self) -> bool:
        """Whether the places have word heads (``word_loss_weight`` or
        ``head_word_loss_weight`` above 0), which the phrase-word losses train."""
        return self.word_heads is not None or self.head_word_heads is not None

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the model's parameters."""
        return next(self.parameters()).dtype

    # ----------------------------------------------------------------- pieces
    def encode_image(
        self, pixel_values: torch.Tensor, groups: torch.Tensor | None = None
    ) -> VisionFeatures:
        """(F, 3, S, S) normalised frames -> VisionFeatures.

        With ``colour_path``, in training the tower sees the frames' colours scrambled, one
        transform per value of ``groups`` (F,) (default: one per frame), and the colour path
        adds the frames' own colours to the features.
        """
        seen = pixel_values
        if self.colour_path is not None and self.training:
            mean = torch.tensor(self.config.image_mean)
            std = torch.tensor(self.config.image_std)
            seen = scramble_colours(pixel_values, mean, std, groups)
        outputs = self.vision(pixel_values=seen, output_hidden_states=True)
        grids = tower_grids(outputs)
        features = self.neck(grids, self.mask_decoder.conv_s0, self.mask_decoder.conv_s1)
        if self.colour_path is not None:
            features = self.colour_path(pixel_values, features)
        return features

    def visual_tokens(self, features: VisionFeatures, frame_times: torch.Tensor) -> torch.Tensor:
        """LM tokens of every frame in order: (sum of tokens per frame, D_lm).

        Image frames (time < 0) give ``lm_grid**2`` tokens; video frames give
        ``video_lm_grid**2`` tokens with their time embedded.
        """
        is_video = frame_times >= 0
        source = features.lm_source
        pieces: list[torch.Tensor | None] = [None] * len(frame_times)
        if bool((~is_video).any()):
            index = (~is_video).nonzero()[:, 0]
            tokens = self.neck.lm_tokens(source[index], self.config.lm_grid, None)
            for i, row in zip(index.tolist(), tokens, strict=True):
                pieces[i] = row
        if bool(is_video.any()):
            index = is_video.nonzero()[:, 0]
            tokens = self.neck.lm_tokens(
                source[index], self.config.video_lm_grid, frame_times[index]
            )
            for i, row in zip(index.tolist(), tokens, strict=True):
                pieces[i] = row
        return torch.cat(pieces)  # type: ignore[arg-type]

    def embed_inputs(
        self,
        input_ids: torch.Tensor,
        features: VisionFeatures,
        frame_times: torch.Tensor,
        region_masks: torch.Tensor | None = None,
        frame_sample: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """LM input embeddings with visual tokens and region tokens filled in.

        Args:
            input_ids: (B, L) ids; each row's ``<image>`` placeholders match its frames' tokens.
            features: the batch's VisionFeatures (F frames, row-major).
            frame_times: (F,) normalised time of each video frame, -1 for images.
            region_masks: (R, H, W) masks, one per ``<region>`` token in row-major order.
            frame_sample: (F,) row of each frame (default: frame i is row i).

        Returns:
            (B, L, D_lm) embeddings.
        """
        embeds = self.lm.get_input_embeddings()(input_ids)
        is_image = input_ids == self.ids.image
        tokens = self.visual_tokens(features, frame_times).to(embeds.dtype)
        if int(is_image.sum()) != len(tokens):
            raise ValueError(f"{int(is_image.sum())} <image> placeholders for {len(tokens)} tokens")
        embeds = embeds.masked_scatter(is_image[..., None], tokens)
        where = (input_ids == self.ids.region).nonzero()
        if len(where):
            if region_masks is None or len(region_masks) != len(where):
                raise InputError(
                    f"{len(where)} <region> tokens but "
                    f"{0 if region_masks is None else len(region_masks)} region masks"
                )
            frames = self._first_frames(frame_sample, len(input_ids))[where[:, 0]]
            extra = self.neck.region_tokens(features.embed[frames], region_masks)
            embeds = embeds.index_put(
                (where[:, 0], where[:, 1]), extra.to(embeds.dtype), accumulate=True
            )
        return embeds

    def lm_attention(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """The attention mask the LM gets for ``input_ids`` (B, L).

        Causal (``attention_mask`` (B, L), 1 for real tokens, as given) unless
        ``image_prefix_attention``: then a (B, 1, L, L) additive float mask (0 where a token
        may attend, the dtype's minimum where not) that is causal except that every
        ``<image>`` token attends to every ``<image>`` token of its row, as a prefix LM's
        prefix does (PaliGemma): each visual token's state sees the whole image, not only the
        places before it in raster order.
        """
        if not self.config.image_prefix_attention:
            return attention_mask
        length = input_ids.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()
        is_image = input_ids == self.ids.image
        allowed = causal[None] | (is_image[:, :, None] & is_image[:, None, :])
        if attention_mask is not None:
            allowed = allowed & attention_mask.bool()[:, None, :]
            allowed = allowed | torch.eye(length, dtype=torch.bool, device=allowed.device)
        dtype = self.lm.get_input_embeddings().weight.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
        return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]

    def _first_frames(self, frame_sample: torch.Tensor | None, rows: int) -> torch.Tensor:
        """(B,) index of each row's first frame."""
        if frame_sample is None:
            return torch.arange(rows, device=self.device)
        first = torch.full((rows,), -1, dtype=torch.long, device=frame_sample.device)
        order = torch.arange(len(frame_sample), device=frame_sample.device)
        return first.scatter_reduce(0, frame_sample, order, "amin", include_self=False)

    def image_positional_embeddings(self) -> torch.Tensor:
        """(1, d, g, g) SAM2 positional encoding of the embedding grid."""
        side = self.config.embed_grid
        ref = self.image_pe.positional_embedding
        grid = torch.ones((side, side), device=ref.device, dtype=ref.dtype)
        y = (grid.cumsum(0) - 0.5) / side
        x = (grid.cumsum(1) - 0.5) / side
        return self.image_pe(torch.stack([x, y], dim=-1)).permute(2, 0, 1)[None]

    def coarse_prior(
        self, seg_states: torch.Tensor, features: VisionFeatures, shift: torch.Tensor | None
    ) -> torch.Tensor:
        """Where each [SEG] points: (S, g, g) logits.

        ``q(seg) . k(image embedding + position)`` on the g x g grid, plus (``lm_prior``)
        ``q(seg) . k'(LM states of the visual tokens)`` on the lm_grid, upsampled. Supervised
        with the target pooled to g x g, and given to SAM2's prompt encoder as its mask
        prompt, so the decoder starts from where the language model points.
        """
        query = self.prior_query(seg_states)
        if shift is not None:
            query = query + shift.to(query.dtype)
        embed = features.embed
        keys = self.prior_key(embed + self.image_positional_embeddings().to(embed.dtype))
        scale = keys.shape[1] ** 0.5
        prior = torch.einsum("sd,sdhw->shw", query.to(keys.dtype), keys) / scale
        if self.prior_key_lm is not None and features.lm_states is not None:
            lm_keys = self.prior_key_lm(features.lm_states.to(query.dtype))
            side = self.config.lm_grid
            lm_prior = torch.einsum("sd,snd->sn", query, lm_keys).view(-1, 1, side, side) / scale
            size = prior.shape[-2:]
            lm_prior = F.interpolate(lm_prior, size=size, mode="bilinear", align_corners=False)
            prior = prior + lm_prior[:, 0].to(prior.dtype)
        return prior

    def frame_lm_states(
        self,
        features: VisionFeatures,
        frame_times: torch.Tensor,
        hidden: torch.Tensor | None,
        input_ids: torch.Tensor | None,
        frame_sample: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(F, lm_grid**2, D) LM states of each frame's ``lm_grid**2`` visual tokens.

        An image's states are read from the main pass ``hidden`` (B, L, D) where its row's
        ``<image>`` tokens of ``input_ids`` (B, L') start (after ``<s>``, or after the question
        with ``image_after_question``); a video frame, or any frame when ``hidden`` is None,
        gets its own pass over ``<s>`` + its tokens.
        """
        count = self.config.lm_grid**2
        out = torch.zeros(
            len(frame_times),
            count,
            self.lm.config.hidden_size,
            device=features.embed.device,
            dtype=features.embed.dtype,
        )
        is_video = frame_times >= 0
        if hidden is not None and bool((~is_video).any()):
            index = (~is_video).nonzero()[:, 0]
            rows = index if frame_sample is None else frame_sample[index]
            starts = (input_ids[rows] == self.ids.image).int().argmax(1)
            places = starts[:, None] + torch.arange(count, device=starts.device)
            out[index] = hidden[rows[:, None], places].to(out.dtype)
            pending = is_video
        else:
            pending = torch.ones_like(is_video)
        if bool(pending.any()):
            index = pending.nonzero()[:, 0]
            tokens = self.neck.lm_tokens(features.lm_source[index], self.config.lm_grid, None)
            bos = torch.full((len(index), 1), self.ids.bos, device=tokens.device)
            embeds = torch.cat([self.lm.get_input_embeddings()(bos), tokens.to(out.dtype)], 1)
            ids = torch.cat([bos, torch.full_like(bos, self.ids.image).expand(-1, count)], 1)
            states = self.lm(
                inputs_embeds=embeds,
                attention_mask=self.lm_attention(ids),
                output_hidden_states=True,
            ).hidden_states[-1]
            out[index] = states[:, 1:].to(out.dtype)
        return out

    def _with_lm_features(self, features: VisionFeatures) -> VisionFeatures:
        """``features`` whose decoder embedding adds the projected LM states of the frame's
        visual tokens (lm_grid x lm_grid, upsampled to g x g): what the language model knows
        about each place (e.g. the kind of shape there) reaches the mask decoder."""
        states = self.lm_to_embed(features.lm_states.to(self.lm_to_embed.weight.dtype))
        side = self.config.lm_grid
        grid = states.transpose(1, 2).reshape(len(states), -1, side, side)
        grid = F.interpolate(
            grid, size=features.embed.shape[-2:], mode="bilinear", align_corners=False
        )
        embed = features.embed + grid.to(features.embed.dtype)
        return VisionFeatures(embed, features.high_res, features.lm_source, features.lm_states)

    def with_motion(
        self,
        features: VisionFeatures,
        keys: ClipKeys | None,
        times: torch.Tensor,
        clips: torch.Tensor,
    ) -> VisionFeatures:
        """``features`` whose video frames' decoder embedding adds, with ``motion_features``,
        what the motion net makes of it and of how the clip changes around it: the embedding
        of the key frame after it minus that of the key frame before it (see
        :func:`neighbour_keys`); unchanged otherwise.

        Args:
            features: F frames' features.
            keys: the key frames of the frames' clips (None: unchanged).
            times: (F,) the frames' normalised times (-1 for images, left unchanged).
            clips: (F,) the clip of each frame, as ``keys.clips`` numbers them.
        """
        video = times >= 0
        if self.motion_net is None or keys is None or not bool(video.any()):
            return features
        embed = features.embed
        index = video.nonzero()[:, 0]
        before, after = neighbour_keys(times[index], clips[index], keys.times, keys.clips)
        change = (keys.embed[after] - keys.embed[before]).to(embed.dtype)
        motion = self.motion_net(torch.cat([embed[index], change], 1))
        embed = embed.index_add(0, index, motion.to(embed.dtype))
        return VisionFeatures(embed, features.high_res, features.lm_source, features.lm_states)

    def with_time(self, seg_states: torch.Tensor, times: torch.Tensor | None) -> torch.Tensor:
        """(S, D_lm) [SEG] states plus, with ``time_query``, the embedding of each video
        frame's normalised time ``times`` (S,) (images, time -1, are left as they are)."""
        if self.time_in is None or times is None or not bool((times >= 0).any()):
            return seg_states
        features = time_features(times.clamp(min=0)).to(self.time_in.weight.dtype)
        step = self.time_in(features) * (times >= 0)[:, None].to(features.dtype)
        return seg_states + step.to(seg_states.dtype)

    def time_shift(self, times: torch.Tensor | None) -> torch.Tensor | None:
        """(S, d) embedding of video frames' normalised times (zero rows for images, -1), or
        None when no frame is a video frame."""
        if times is None or not bool((times >= 0).any()):
            return None
        features = time_features(times.clamp(min=0)).to(self.time_proj.weight.dtype)
        return self.time_proj(features) * (times >= 0)[:, None]

    def decode_masks(
        self,
        seg_states: torch.Tensor,
        features: VisionFeatures,
        times: torch.Tensor | None = None,
        memory: MemoryBank | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mask logits for [SEG] queries, one frame each.

        Args:
            seg_states: (S, D_lm) [SEG] queries, or (S, 1 + K, D_lm) with the text tokens
                each read (``fusion_layers``; see :meth:`seg_queries`).
            features: VisionFeatures with one row per state (see ``VisionFeatures.select``).
            times: (S,) normalised frame time of video frames (-1 or None for images).
            memory: with ``video_memory``, the S tracks' memories of their earlier frames
                (see :meth:`decode_track_step`); None decodes without memory.

        Returns:
            (S, mask_grid, mask_grid) mask logits, and the (S, g, g) coarse prior logits (None
            when ``coarse_prior`` is off).
        """
        text = None
        if seg_states.dim() == 3:
            seg_states, text = seg_states[:, 0], seg_states[:, 1:]
        queries = seg_states
        seg_states = self.with_time(seg_states, times)
        count, d = seg_states.shape[0], self.config.decoder_dim
        sparse = self.seg_proj(seg_states).view(count, 1, self.config.seg_prompt_tokens, d)
        shift = self.time_shift(times)
        if shift is not None:
            sparse = sparse + shift.view(count, 1, 1, d).to(sparse.dtype)
        if self.config.box_prompt:
            boxes = self.box_head(seg_states, shift) * self.config.image_size
            box_tokens, _ = self.prompt_encoder(None, None, boxes[:, None], None)
            sparse = torch.cat([sparse, box_tokens.to(sparse.dtype)], 2)
        if self.lm_to_embed is not None and features.lm_states is not None:
            features = self._with_lm_features(features)
        position = self.image_positional_embeddings().to(features.embed.dtype)
        if self.frame_memory is not None and memory is not None:
            embed = self.frame_memory.condition(features.embed, position, memory)
            features = VisionFeatures(
                embed, features.high_res, features.lm_source, features.lm_states
            )
        embed = features.embed
        prior = fused = None
        if self.fusion is not None and text is not None:
            fused, score = self.fusion(embed, position, seg_states, text, shift)
        if self.config.coarse_prior:
            prior = self.coarse_prior(seg_states, features, shift)
            if fused is not None:
                prior = prior + score.to(prior.dtype)
            if self.motion_gate is not None and times is not None:
                prior = prior + self.motion_match(queries, embed, times).to(prior.dtype)
            if self.word_gate is not None:
                prior = prior + self.word_match(queries, embed).to(prior.dtype)
            if self.query_direction is not None:
                prior = prior + self.position_match(queries, prior.shape[-1]).to(prior.dtype)
            size = self.prompt_encoder.mask_input_size
            prompt = F.interpolate(prior[:, None], size=size, mode="bilinear", align_corners=False)
            _, dense = self.prompt_encoder(None, None, None, prompt)
        else:
            _, dense = self.prompt_encoder(None, None, None, None)
        if fused is not None:
            dense = dense + fused.to(dense.dtype)
        masks, _, _, _ = self.mask_decoder(
            image_embeddings=embed,
            image_positional_embeddings=position.expand(count, -1, -1, -1),
            sparse_prompt_embeddings=sparse.to(embed.dtype),
            dense_prompt_embeddings=dense.to(embed.dtype),
            multimask_output=False,
            high_resolution_features=features.high_res,
        )
        return masks[:, 0, 0], prior

    def motion_match(
        self, queries: torch.Tensor, embed: torch.Tensor, times: torch.Tensor
    ) -> torch.Tensor:
        """(S, g, g) the ``motion_query`` term of the coarse prior: minus the squared distance
        between the velocity each [SEG] asks for and the velocity the velocity head reads at
        each place of its frame, times the [SEG]'s own gate (zero for images).

        Args:
            queries: (S, D_lm) [SEG] states.
            embed: (S, d, g, g) decoder embedding of each state's frame.
            times: (S,) normalised frame times (-1 for images).
        """
        head = self.velocity_head
        wanted = self.query_velocity(queries.to(head.weight.dtype))
        there = torch.einsum("sdhw,kd->skhw", embed.to(head.weight.dtype), head.weight)
        there = there + head.bias.view(1, -1, 1, 1)
        distance = (there - wanted[:, :, None, None]).square().sum(1)
        gate = self.motion_gate(queries.to(head.weight.dtype)) * (times >= 0)[:, None]
        return -gate[:, :, None] * distance

    def position_match(self, queries: torch.Tensor, side: int) -> torch.Tensor:
        """(S, side, side) the ``position_query`` term of the coarse prior: the direction
        each [SEG] asks for, dotted with each place's centre (x right, y down, each from -1
        to 1), times ``POSITION_SCALE``.

        Args:
            queries: (S, D_lm) [SEG] states.
            side: places along each side of the prior's grid.
        """
        head = self.query_direction
        direction = head(queries.to(head.weight.dtype)) * POSITION_SCALE
        centres = torch.arange(side, device=head.weight.device, dtype=head.weight.dtype) + 0.5
        centres = centres * (2 / side) - 1
        x, y = direction[:, 0, None, None], direction[:, 1, None, None]
        return x * centres[None, None, :] + y * centres[None, :, None]

    def word_match(self, queries: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        """(S, g, g) the ``query_word_loss_weight`` term of the coarse prior: per place, the
        mean log-likelihood of the words each [SEG] asks for under the place's phrase-word
        head (and, with the head-word head, that of the head noun it asks for), each times
        the [SEG]'s own gate.

        Args:
            queries: (S, D_lm) [SEG] states.
            embed: (S, d, g, g) decoder embedding of each state's frame.
        """
        head = self.word_heads[0]
        count, heads = len(queries), self.word_gate.out_features
        queries = queries.to(head.weight.dtype)
        asked = self.query_words(queries).view(count, heads, -1)
        gate = self.word_gate(queries)
        logits = torch.einsum("sdhw,vd->svhw", embed.to(head.weight.dtype), head.weight)
        logits = logits + head.bias.view(1, -1, 1, 1)
        wanted = torch.sigmoid(asked[:, 0])
        fit = F.logsigmoid(logits).clamp(min=LOG_LIKELIHOOD_FLOOR)
        fit = torch.einsum("sv,svhw->shw", wanted, fit) / wanted.sum(1).clamp(min=1)[:, None, None]
        match = gate[:, 0, None, None] * fit
        if heads == 2:
            noun_head = self.head_word_heads[0]
            noun = torch.einsum("sdhw,vd->svhw", embed.to(head.weight.dtype), noun_head.weight)
            noun = (noun + noun_head.bias.view(1, -1, 1, 1)).log_softmax(1)
            noun_fit = torch.einsum(
                "sv,svhw->shw", asked[:, 1].softmax(1), noun.clamp(min=LOG_LIKELIHOOD_FLOOR)
            )
            match = match + gate[:, 1, None, None] * noun_fit
        return match

    def decode_track_step(
        self,
        seg_states: torch.Tensor,
        features: VisionFeatures,
        times: torch.Tensor,
        memory: MemoryBank,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode S tracks on their next frame with their memories, then remember the frame.

        Args:
            seg_states: (S, ...) [SEG] queries, as for :meth:`decode_masks`.
            features: one frame per track.
            times: (S,) the frames' normalised times.
            memory: the tracks' memories of earlier frames; this frame is pushed onto it.

        Returns:
            (S, mask_grid, mask_grid) mask logits and the (S, g, g) coarse prior (or None).
        """
        if self.frame_memory is None:
            raise ValueError("decode_track_step needs a model built with video_memory > 0")
        logits, prior = self.decode_masks(seg_states, features, times, memory)
        memory.push(*self.frame_memory.encode(features.embed, logits))
        return logits, prior

    def _decode_tracks(
        self,
        states: torch.Tensor,
        state_index: torch.Tensor,
        frame_index: torch.Tensor,
        features: VisionFeatures,
        frame_times: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode (state, frame) pairs of video frames in time order through the memory.

        Args:
            states: (S, ...) [SEG] queries.
            state_index, frame_index: (P,) the pairs: which query on which frame.
            features: all frames of the batch.
            frame_times: (F,) normalised time of each frame.

        Returns:
            (P, mask_grid, mask_grid) mask logits and (P, g, g) coarse priors (or None), in
            the order of the pairs.
        """
        tracks = state_index.unique()
        steps = []  # per track, its pairs in time order
        for track in tracks.tolist():
            mine = (state_index == track).nonzero()[:, 0]
            steps.append(mine[frame_times[frame_index[mine]].argsort()])
        memory = self.frame_memory.empty_bank()
        order, logits, priors = [], [], []
        for k in range(max(len(mine) for mine in steps)):
            # a track out of frames repeats its last one; only its real steps are kept
            pairs = torch.stack([mine[min(k, len(mine) - 1)] for mine in steps])
            frames = frame_index[pairs]
            step_logits, step_prior = self.decode_track_step(
                states[state_index[pairs]], features.select(frames), frame_times[frames], memory
            )
            real = torch.tensor([k < len(mine) for mine in steps], device=pairs.device)
            order.append(pairs[real])
            logits.append(step_logits[real])
            if step_prior is not None:
                priors.append(step_prior[real])
        inverse = torch.cat(order).argsort()
        prior = torch.cat(priors)[inverse] if priors else None
        return torch.cat(logits)[inverse], prior

    def seg_queries(self, hidden: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """The mask queries of [SEG] tokens.

        Args:
            hidden: (B, L, D) last hidden states of the LM.
            where: (S, 2) (row, position) of each [SEG] token.

        Returns:
            (S, D) the state that predicts each [SEG] (``seg_state="predict"``, as LISA) or the
            state at it (``"token"``), plus what the SegReader reads before it; with
            ``fusion_layers``, (S, 1 + fusion_text_tokens, D): that state followed by the text
            tokens the fusion reads (learned queries, shifted by the state, reading the same
            context).
        """
        rows, index = where[:, 0], where[:, 1]
        if self.config.seg_state == "predict":
            index = index - 1
        states = hidden[rows, index]
        if self.reader is not None:
            states = self.reader(states, hidden[rows], index)
        if self.text_reader is None:
            return states
        latents = self.text_latents[None].to(states.dtype) + states[:, None]
        text = self.text_reader(latents, hidden[rows], index)
        return torch.cat([states[:, None], text], 1)

    def _seg_pairs(
        self, where: torch.Tensor, frame_sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For [SEG] tokens at ``where`` (S, 2): (state index, frame index) of every mask."""
        states, frames = [], []
        for j, row in enumerate(where[:, 0].tolist()):
            mine = (frame_sample == row).nonzero()[:, 0]
            states.append(torch.full_like(mine, j))
            frames.append(mine)
        return torch.cat(states), torch.cat(frames)

    # ----------------------------------------------------------------- training
    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        gt_masks: torch.Tensor | None = None,
        region_masks: torch.Tensor | None = None,
        frame_sample: torch.Tensor | None = None,
        frame_times: torch.Tensor | None = None,
        frame_image: torch.Tensor | None = None,
        colour_blind: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Losses of a batch.

        Args:
            pixel_values: (U, 3, S, S) normalised frames: the F frames of the rows, row-major
                (an image is one frame), or the distinct ones with ``frame_image``.
            input_ids: (B, L) token ids.
            attention_mask: (B, L) 1 for real tokens.
            labels: (B, L) target ids, -100 where no loss.
            gt_masks: (M, H, W) float masks: for each [SEG] (row-major), one per frame of its row.
            region_masks: (R, H, W) float masks, one per ``<region>`` token.
            frame_sample: (F,) row of each frame (default: frame i is row i).
            frame_times: (F,) normalised time of video frames, -1 for images (default: all -1).
            frame_image: (F,) which row of ``pixel_values`` each frame is, when frames shared
                by several rows are given once (default: frame i is ``pixel_values[i]``).
            colour_blind: (B,) bool, rows whose images were hue-rotated: their colour words
                are no targets of the phrase-word losses (default: none).

        Returns:
            ``loss`` (weighted sum), ``lm_loss``, ``bce_loss``, ``dice_loss``, ``prior_loss``
            (coarse localisation BCE), ``point_loss`` (its softmax over places), ``word_loss``
            (phrase words), ``head_word_loss``, ``mask_logits`` (M, mask_grid, mask_grid) and
            the LM's ``logits`` (B, L, V).
        """
        features, frame_sample = self._batch_features(pixel_values, frame_image, frame_sample)
        if frame_times is None:
            frame_times = torch.full((len(features.embed),), -1.0, device=pixel_values.device)
        embeds = self.embed_inputs(input_ids, features, frame_times, region_masks, frame_sample)
        if self.motion_net is not None:
            keys = ClipKeys(features.embed, frame_times, frame_sample)
            features = self.with_motion(features, keys, frame_times, frame_sample)
        out = self.lm(
            inputs_embeds=embeds,
            attention_mask=self.lm_attention(input_ids, attention_mask),
            labels=labels,
            output_hidden_states=True,
        )
        lm_loss = out.loss.float() if labels is not None else out.logits.new_zeros(()).float()
        seg_states = out.hidden_states[-1]
        if self.needs_lm_states and bool((input_ids == self.ids.seg).any()):
            features.lm_states = self.frame_lm_states(
                features, frame_times, seg_states, input_ids, frame_sample
            )
        terms = self._mask_terms(
            input_ids, seg_states, features, frame_sample, frame_times, gt_masks
        )
        terms["word_loss"], terms["head_word_loss"] = self._word_losses(
            input_ids, features, frame_sample, gt_masks, colour_blind
        )
        terms["lm_loss"] = lm_loss
        loss = sum(self.loss_weight(name) * terms[name] for name in LOSS_TERMS)
        return {"loss": loss, **terms, "logits": out.logits}

    def image_word_losses(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        gt_masks: torch.Tensor | None = None,
        frame_sample: torch.Tensor | None = None,
        frame_image: torch.Tensor | None = None,
        colour_blind: torch.Tensor | None = None,
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        """The phrase-word losses of a batch alone (see ``_word_losses``): the images are
        encoded and their places read by the word heads; the language model and the mask
        decoder are not run. Takes the arguments of ``forward``.

        Returns:
            ``loss`` (weighted sum) and every term of LOSS_TERMS, zero but ``word_loss`` and
            ``head_word_loss``.
        """
        features, frame_sample = self._batch_features(pixel_values, frame_image, frame_sample)
        terms = dict.fromkeys(LOSS_TERMS, features.embed.new_zeros(()).float())
        terms["word_loss"], terms["head_word_loss"] = self._word_losses(
            input_ids, features, frame_sample, gt_masks, colour_blind
        )
        loss = sum(self.loss_weight(name) * terms[name] for name in LOSS_TERMS)
        return {"loss": loss, **terms}

    def _batch_features(
        self,
        pixel_values: torch.Tensor,
        frame_image: torch.Tensor | None,
        frame_sample: torch.Tensor | None,
    ) -> tuple[VisionFeatures, torch.Tensor]:
        """The F frames' features of a batch (see ``forward``) and each frame's row (F,)
        (default: frame i is row i)."""
        groups = frame_sample  # each distinct frame's row: a clip's frames share one scramble
        if frame_sample is not None and frame_image is not None:
            groups = frame_sample.new_zeros(len(pixel_values)).scatter(0, frame_image, frame_sample)
        features = self.encode_image(pixel_values, groups)
        if frame_image is not None:
            features = features.select(frame_image)
        if frame_sample is None:
            frame_sample = torch.arange(len(features.embed), device=pixel_values.device)
        return features, frame_sample

    def loss_weight(self, term: str) -> float:
        """The weight of a loss term (one of ``LOSS_TERMS``): its ``<term>_weight`` in the
        config times ``loss_scale.get(term, 1)`` (a trainer's phase may scale terms)."""
        return getattr(self.config, f"{term}_weight") * self.loss_scale.get(term, 1.0)

    def colour_columns(self) -> torch.Tensor:
        """(V,) bool: the vocabulary's colour words (``data.COLOUR_WORDS``, after any
        word-start marker of a subword vocabulary)."""
        if self._colour_columns is None:
            columns = torch.zeros(len(self.tokenizer), dtype=torch.bool)
            for token, index in self.tokenizer.get_vocab().items():
                if index < len(columns) and token.lstrip("Ġ▁").lower() in COLOUR_WORDS:
                    columns[index] = True
            self._colour_columns = columns
        return self._colour_columns

    def phrase_words(
        self, input_ids: torch.Tensor, where: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens of the phrase each [SEG] grounds, and its last token.

        Args:
            input_ids: (B, L) token ids.
            where: (S, 2) (row, position) of each [SEG] token.

        Returns:
            (S, V) float: 1 for the tokens between ``<p>`` and ``</p>`` when ``</p>`` comes
            right before the [SEG] (a grounded caption's phrase); a zero row otherwise.
            (S,) long: the phrase's last token (its head noun), -1 where there is no phrase.
        """
        words = torch.zeros(len(where), len(self.tokenizer), device=input_ids.device)
        heads = torch.full((len(where),), -1, dtype=torch.long, device=input_ids.device)
        for j, (row, position) in enumerate(where.tolist()):
            before = input_ids[row, :position].tolist()
            if not before or before[-1] != self.ids.p_close or self.ids.p_open not in before:
                continue
            start = len(before) - 1 - before[::-1].index(self.ids.p_open)
            phrase = before[start + 1 : -1]
            if phrase:
                words[j, phrase] = 1.0
                heads[j] = phrase[-1]
        return words, heads

    def _word_losses(
        self,
        input_ids: torch.Tensor,
        features: VisionFeatures,
        frame_sample: torch.Tensor,
        gt_masks: torch.Tensor | None,
        colour_blind: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The phrase-word losses of the image features, for every ``<p>phrase</p> [SEG]``.

        Every place of the decoder embedding (g x g) and of the tower grid the LM reads that
        lies at least half inside the [SEG]'s mask (or, for a mask smaller than that, its most
        covered place) predicts, through a linear head per grid:

        - ``word_loss`` (``word_loss_weight``): the phrase's tokens, multi-label BCE summed
          over the vocabulary and divided by the phrase's length;
        - ``head_word_loss`` (``head_word_loss_weight``): the phrase's last token (the head
          noun of an English noun phrase), a softmax cross-entropy over the vocabulary.

        Each is averaged over the places of a grid and summed over the two grids. The rows
        of ``colour_blind`` (B,) (hue-rotated images) leave the colour words out of the
        phrase-word loss.
        """
        zero = features.embed.new_zeros(()).float()
        where = (input_ids == self.ids.seg).nonzero()
        if not self.has_word_heads or gt_masks is None or not len(where):
            return zero, zero
        state_index, frame_index = self._seg_pairs(where, frame_sample)
        words, head_word = self.phrase_words(input_ids, where)
        words, head_word = words[state_index], head_word[state_index]
        if colour_blind is not None and bool(colour_blind.any()):
            blind = colour_blind[where[state_index, 0]]
            colour = self.colour_columns().to(words.device)
            words = words.masked_fill(blind[:, None] & colour[None], 0.0)
        else:
            blind = torch.zeros(len(words), dtype=torch.bool, device=words.device)
        keep = words.any(1)
        if not bool(keep.any()):
            return zero, zero
        head_word, blind = head_word[keep], blind[keep]
        words, frames, masks = words[keep], frame_index[keep], gt_masks[keep]
        word_loss = head_loss = zero
        grids = (features.embed, features.lm_source)
        for index, grid in enumerate(grids):
            inside = covered_places(masks, grid.shape[-1])  # (K, s, s)
            mask_of_place, ys, xs = inside.nonzero().unbind(1)
            if not len(mask_of_place):
                continue
            places = grid[frames[mask_of_place], :, ys, xs]  # (N, C)
            if self.word_heads is not None:
                logits = self.word_heads[index](places).float()  # (N, V)
                target = words[mask_of_place]
                bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
                unread = blind[mask_of_place][:, None] & self.colour_columns().to(bce.device)
                bce = bce.masked_fill(unread, 0.0)
                word_loss = word_loss + (bce.sum(1) / target.sum(1)).mean()
            if self.head_word_heads is not None:
                logits = self.head_word_heads[index](places).float()
                head_loss = head_loss + F.cross_entropy(logits, head_word[mask_of_place])
        return word_loss, head_loss

    def _no_target_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(N, 2) (row, first answer position) of rows that answer without any [SEG] and ask
        about no ``<region>``: their answer is "no such object", which the decoder learns as
        an empty mask (``no_target_masks``)."""
        is_seg = (input_ids == self.ids.seg).any(1)
        is_region = (input_ids == self.ids.region).any(1)
        is_assistant = input_ids == self.ids.assistant
        rows = (~is_seg & ~is_region & is_assistant.any(1)).nonzero()[:, 0]
        first = is_assistant.float().argmax(1)
        return torch.stack([rows, first[rows] + 1], 1)

    def _mask_terms(
        self,
        input_ids: torch.Tensor,
        hidden: torch.Tensor,
        features: VisionFeatures,
        frame_sample: torch.Tensor,
        frame_times: torch.Tensor,
        gt_masks: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """Mask logits of every [SEG] on its row's frames, and the mask losses (with
        ``no_target_masks``, no-target rows add an empty-mask target each)."""
        zero = hidden.new_zeros(()).float()
        terms = dict.fromkeys(
            (
                "bce_loss",
                "dice_loss",
                "prior_loss",
                "point_loss",
                "box_loss",
                "motion_loss",
                "query_word_loss",
            ),
            zero,
        )
        where = (input_ids == self.ids.seg).nonzero()
        count = len(where)
        if self.config.no_target_masks and gt_masks is not None:
            where = torch.cat([where, self._no_target_positions(input_ids)])
        if not len(where):
            grid = self.config.mask_grid
            return {**terms, "mask_logits": hidden.new_zeros((0, grid, grid))}
        states = self.seg_queries(hidden, where)
        state_index, frame_index = self._seg_pairs(where, frame_sample)
        mask_logits, prior = self._decode_pairs(
            states, state_index, frame_index, features, frame_times
        )
        seg_masks = int((state_index < count).sum())
        if gt_masks is not None:
            if len(gt_masks) != seg_masks:
                raise ValueError(f"{seg_masks} masks to predict but {len(gt_masks)} given")
            empty = gt_masks.new_zeros((len(mask_logits) - seg_masks, *gt_masks.shape[1:]))
            targets = torch.cat([gt_masks, empty])
            terms["bce_loss"], terms["dice_loss"] = mask_losses(mask_logits, targets)
            if prior is not None:
                pooled = F.adaptive_avg_pool2d(targets[:, None].float(), prior.shape[-1])[:, 0]
                terms["prior_loss"] = F.binary_cross_entropy_with_logits(prior.float(), pooled)
                terms["point_loss"] = point_loss(prior, pooled)
            if self.box_head is not None:
                terms["box_loss"] = self._box_loss(
                    states, state_index, frame_index, frame_times, targets
                )
            if self.velocity_head is not None:
                terms["motion_loss"] = self._motion_loss(
                    features, states, state_index, frame_index, frame_times, targets
                )
            if self.query_words is not None:
                terms["query_word_loss"] = self._query_word_loss(
                    input_ids, where, states, state_index, frame_index, features, targets
                )
        return {**terms, "mask_logits": mask_logits[:seg_masks]}

    def _motion_loss(
        self,
        features: VisionFeatures,
        states: torch.Tensor,
        state_index: torch.Tensor,
        frame_index: torch.Tensor,
        frame_times: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        """Smooth L1 of the velocity head, on each video frame's decoder embedding averaged
        over its target's places, against the target's velocity (:func:`mask_velocities`,
        in image sides per clip, times ``VELOCITY_SCALE``); with ``motion_query``, plus that
        of the velocity each [SEG] asks for; 0 when no target moves across frames.

        Args:
            features: the frames' features (motion added).
            states: (S, D) or (S, 1 + K, D) the [SEG] queries.
            state_index: (P,) the [SEG] of each (state, frame) pair.
            frame_index: (P,) its frame.
            frame_times: (F,) the frames' normalised times (-1 for images).
            targets: (P, H, W) the pairs' target masks.
        """
        times = frame_times[frame_index]
        video = (times >= 0).nonzero()[:, 0]
        velocity, owners = mask_velocities(targets[video], state_index[video], times[video])
        zero = targets.new_zeros(()).float()
        if not len(owners):
            return zero
        embed = features.embed[frame_index[video]]
        share = F.adaptive_avg_pool2d(targets[video][:, None].float(), embed.shape[-1])
        covered = share.flatten(1).sum(1)
        pooled = (embed * share).flatten(2).sum(2) / covered.clamp(min=1e-6)[:, None]
        keep = torch.isin(state_index[video], owners) & (covered > 0)
        if not bool(keep.any()):
            return zero
        wanted = velocity[torch.searchsorted(owners, state_index[video][keep])]
        predicted = self.velocity_head(pooled[keep].to(self.velocity_head.weight.dtype))
        loss = F.smooth_l1_loss(predicted.float(), VELOCITY_SCALE * wanted.float())
        if self.query_velocity is None:
            return loss
        queries = states[:, 0] if states.dim() == 3 else states
        asked = self.query_velocity(queries[owners].to(self.query_velocity.weight.dtype))
        return loss + F.smooth_l1_loss(asked.float(), VELOCITY_SCALE * velocity.float())

    def question_words(self, input_ids: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """(S, V) float: 1 for every token of each [SEG]'s row before it (what was asked and
        answered so far), for [SEG] tokens at ``where`` (S, 2) (row, position)."""
        words = torch.zeros(len(where), len(self.tokenizer), device=input_ids.device)
        for j, (row, position) in enumerate(where.tolist()):
            words[j, input_ids[row, :position]] = 1.0
        return words

    def _query_word_loss(
        self,
        input_ids: torch.Tensor,
        where: torch.Tensor,
        states: torch.Tensor,
        state_index: torch.Tensor,
        frame_index: torch.Tensor,
        features: VisionFeatures,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        """What each [SEG] asks for (``query_words``) against its target's words; 0 when no
        [SEG] has a non-empty target.

        The target's words are its grounded-caption phrase (``phrase_words``) when it has
        one; else the phrase-word head's probabilities averaged over the target's places on
        all its frames, kept only for the words of the question (``question_words``) and
        detached: a multi-label BCE, summed over the vocabulary and divided by the number of
        target words. With the head-word head, the asked head noun (a softmax) is trained
        against the phrase's last token, or else against the head-word head's averaged
        softmax restricted to the question's words, where that keeps at least half its mass.

        Args:
            input_ids: (B, L) token ids.
            where: (S, 2) (row, position) of each [SEG].
            states: (S, D) or (S, 1 + K, D) the [SEG] queries.
            state_index: (P,) the [SEG] of each (state, frame) pair.
            frame_index: (P,) its frame.
            features: the frames' features.
            targets: (P, H, W) the pairs' target masks.
        """
        embed = features.embed
        pair, ys, xs = covered_places(targets, embed.shape[-1]).nonzero().unbind(1)
        if not len(pair):
            return targets.new_zeros(()).float()
        owner, count = state_index[pair], len(where)
        places = embed[frame_index[pair], :, ys, xs].detach()  # (N, d)
        phrase, noun = self.phrase_words(input_ids, where)
        has_phrase = phrase.any(1)
        asked_words = self.question_words(input_ids, where)
        share = torch.zeros(count, device=places.device).index_add_(
            0, owner, torch.ones_like(owner, dtype=torch.float)
        )
        keep = share > 0

        def averaged(head: nn.Module, softmax: bool) -> torch.Tensor:
            with torch.no_grad():
                logits = head(places).float()
                probs = logits.softmax(1) if softmax else torch.sigmoid(logits)
                total = torch.zeros(count, probs.shape[1], device=probs.device)
                total = total.index_add_(0, owner, probs)
            return total / share.clamp(min=1)[:, None] * asked_words

        words = torch.where(has_phrase[:, None], phrase, averaged(self.word_heads[0], False))
        queries = states[:, 0] if states.dim() == 3 else states
        heads = self.word_gate.out_features
        asked = self.query_words(queries.to(self.query_words.weight.dtype)).float()
        asked = asked.view(count, heads, -1)
        bce = F.binary_cross_entropy_with_logits(asked[:, 0], words, reduction="none")
        loss = (bce.sum(1) / words.sum(1).clamp(min=1))[keep].mean()
        if heads == 1:
            return loss
        nouns = averaged(self.head_word_heads[0], True)
        mass = nouns.sum(1)
        nouns = nouns / mass.clamp(min=1e-6)[:, None]
        exact = F.one_hot(noun.clamp(min=0), nouns.shape[1]).float()
        nouns = torch.where(has_phrase[:, None], exact, nouns)
        usable = keep & (has_phrase | (mass >= 0.5))
        if not bool(usable.any()):
            return loss
        cross = -(nouns * asked[:, 1].log_softmax(1)).sum(1)
        return loss + cross[usable].mean()

    def _box_loss(
        self,
        states: torch.Tensor,
        state_index: torch.Tensor,
        frame_index: torch.Tensor,
        frame_times: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        """``box_losses`` of the box head on every (state, frame) pair whose target mask
        (P, H, W) is not empty; 0 when none is."""
        keep = targets.flatten(1).any(1)
        if not bool(keep.any()):
            return targets.new_zeros(()).float()
        queries = states[state_index[keep]]
        if queries.dim() == 3:
            queries = queries[:, 0]
        boxes = self.box_head(queries, self.time_shift(frame_times[frame_index[keep]]))
        return box_losses(boxes, mask_boxes(targets[keep]))

    def _decode_pairs(
        self,
        states: torch.Tensor,
        state_index: torch.Tensor,
        frame_index: torch.Tensor,
        features: VisionFeatures,
        frame_times: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mask logits (P, mask_grid, mask_grid) and coarse priors of (state, frame) pairs:
        image frames each on its own, video frames through the memory when the model has
        one."""
        video = frame_times[frame_index] >= 0
        if self.frame_memory is None or not bool(video.any()):
            return self.decode_masks(
                states[state_index], features.select(frame_index), frame_times[frame_index]
            )
        parts = [
            (
                video.nonzero()[:, 0],
                self._decode_tracks(
                    states, state_index[video], frame_index[video], features, frame_times
                ),
            )
        ]
        if not bool(video.all()):
            image = (~video).nonzero()[:, 0]
            parts.append(
                (
                    image,
                    self.decode_masks(
                        states[state_index[image]],
                        features.select(frame_index[image]),
                        frame_times[frame_index[image]],
                    ),
                )
            )
        inverse = torch.cat([where for where, _ in parts]).argsort()
        logits = torch.cat([out[0] for _, out in parts])[inverse]
        priors = [out[1] for _, out in parts]
        prior = None if priors[0] is None else torch.cat(priors)[inverse]
        return logits, prior

    # ----------------------------------------------------------------- inference
    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 (H, W, 3) images -> (B, 3, S, S) normalised floats on the model device."""
        batch = torch.stack([preprocess_image(image, self.config) for image in images])
        return batch.to(self.device, dtype=self.dtype)

    def generate_grounded(
        self,
        image: np.ndarray,
        prompt: str,
        regions: Sequence[np.ndarray] | None = None,
        max_new_tokens: int | None = None,
    ) -> GroundedText:
        """Answer ``prompt`` about an image greedily; see :func:`generation.generate_grounded`."""
        from pixelground.models.generation import generate_grounded

        return generate_grounded(self, image, prompt, regions, max_new_tokens)

    def generate_grounded_video(
        self, frames: Sequence[np.ndarray], prompt: str, max_new_tokens: int | None = None
    ) -> GroundedText:
        """Answer ``prompt`` about a clip; see :func:`generation.generate_grounded_video`."""
        from pixelground.models.generation import generate_grounded_video

        return generate_grounded_video(self, frames, prompt, max_new_tokens)

    # ----------------------------------------------------------------- persistence
    def save_pretrained(self, directory: str | Path) -> None:
        """Write config.json, model.safetensors and the tokenizer files to ``directory``."""
        from safetensors.torch import save_model

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"model_type": MODEL_TYPE, "format_version": 1, **self.config.to_dict()}
        (directory / CONFIG_NAME).write_text(json.dumps(payload, indent=2))
        save_model(self, str(directory / WEIGHTS_NAME))
        self.tokenizer.save_pretrained(str(directory))

    @classmethod
    def from_pretrained(cls, directory: str | Path, **_: Any) -> SegTokenModel:
        """Load a model written by :meth:`save_pretrained` (offline; no hub access)."""
        from safetensors.torch import load_model
        from transformers import PreTrainedTokenizerFast

        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not config_path.exists() or not (directory / WEIGHTS_NAME).exists():
            raise CheckpointMissingError(
                f"{directory} is not a SegTokenModel checkpoint (needs {CONFIG_NAME} and "
                f"{WEIGHTS_NAME}); train one with `pixelground train CONFIG.json`"
            )
        data = json.loads(config_path.read_text())
        if data.pop("model_type", None) != MODEL_TYPE:
            raise CheckpointMissingError(f"{config_path} is not a {MODEL_TYPE} config")
        data.pop("format_version", None)
        config = SegModelConfig.from_dict(data)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(directory))
        model = cls(config, tokenizer)
        load_model(model, str(directory / WEIGHTS_NAME))
        return model
