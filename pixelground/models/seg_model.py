"""The [SEG]-token grounding model (LISA / GLaMM / Sa2VA design) built from transformers parts.

A vision tower encodes the frames; a neck pools them to visual tokens that replace the
``<image>`` placeholders of a causal LM's input, and projects them to SAM2's image embedding
and high-resolution features. Each ``[SEG]`` token's query (the LM state that predicts it,
plus what a SegReader reads before it) scores the image as a coarse prior and is projected to
sparse prompt embeddings for SAM2's mask decoder (``Sam2MaskDecoder``), whose dense prompt is
the coarse prior. ``<region>`` tokens get mask-pooled visual features added.

:meth:`SegTokenModel.run` is the one forward pass (embed -> LM -> [SEG] queries -> frame
states -> mask decoder) that training (losses.py, objective.py), generation
(generation.py) and the target decision (target_decision.py) all call. Optional heads live
in ``heads`` (an ``nn.ModuleDict``) by name; each is initialised from a seed of its own name,
so which heads are on, and in what order they are built, changes no other part's start.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
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

from pixelground.core.colours import COLOUR_WORDS
from pixelground.core.errors import CheckpointMissingError, InputError, require
from pixelground.models.config import SegModelConfig
from pixelground.models.data import preprocess_image
from pixelground.models.heads import (
    build_heads,
    head_builders,
    motion_match,
    position_match,
    renamed_key,
)
from pixelground.models.parts import (
    ClipKeys,
    SegReader,
    VisionFeatures,
    VisionNeck,
    build_language_model,
    build_vision_tower,
    neighbour_keys,
    time_features,
    tower_grids,
)
from pixelground.models.tokenizer import TokenIds

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_TYPE = "pixelground_seg"


@dataclass
class SegOutputs:
    """What one :meth:`SegTokenModel.run` gives.

    Attributes:
        hidden: (B, L, D_lm) the LM's last hidden states.
        logits: (B, L, V) the LM's logits (None when the hidden states were given).
        lm_loss: the LM cross-entropy of the labels (None without labels).
        features: the frames' features as decoded (motion added, ``lm_states`` set).
        queries: (S, D_lm) the mask queries of the [SEG]s.
        state_index: (P,) the query of each decoded mask.
        frame_index: (P,) its frame.
        mask_logits: (P, mask_grid, mask_grid) mask logits of each (query, frame) pair.
        prior: (P, g, g) their coarse prior logits.
    """

    hidden: torch.Tensor
    logits: torch.Tensor | None
    lm_loss: torch.Tensor | None
    features: VisionFeatures
    queries: torch.Tensor
    state_index: torch.Tensor
    frame_index: torch.Tensor
    mask_logits: torch.Tensor
    prior: torch.Tensor


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
        hidden = self.lm.config.hidden_size
        self.neck = VisionNeck(config, self._probe_grids(), hidden)
        self.seg_proj = nn.Sequential(
            nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, d * config.seg_prompt_tokens)
        )
        self.time_proj = nn.Linear(8, d)
        self.reader = SegReader(hidden, config.seg_reader_heads)
        self.prior_query = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, d))
        self.prior_key = nn.Conv2d(d, d, 1)
        self.prior_key_lm = nn.Linear(hidden, d)
        channels = self.neck.lm_source_channels
        self.heads = build_heads(head_builders(config, hidden, channels, len(tokenizer)))
        if config.freeze_vision:
            self.vision.requires_grad_(False)
        if config.lora_r > 0:
            self.wrap_lora()

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
        peft = require("peft", "train")
        lora = peft.LoraConfig(
            r=self.config.lora_r,
            lora_alpha=self.config.lora_alpha,
            lora_dropout=self.config.lora_dropout,
            target_modules=list(self.config.lora_target_modules),
            modules_to_save=["embed_tokens", "lm_head"],
        )
        self.lm = peft.get_peft_model(self.lm, lora)

    def head(self, name: str) -> nn.Module | None:
        """The optional head ``name`` (see :func:`head_builders`), or None when it is off."""
        return self.heads[name] if name in self.heads else None

    @property
    def num_image_tokens(self) -> int:
        """Visual tokens the LM sees per image."""
        return self.config.lm_grid**2

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the model's parameters."""
        return next(self.parameters()).dtype

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

    # ----------------------------------------------------------------- the forward pass
    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        """RGB uint8 (H, W, 3) images -> (B, 3, S, S) normalised floats on the model device."""
        batch = torch.stack([preprocess_image(image, self.config) for image in images])
        return batch.to(self.device, dtype=self.dtype)

    def encode_image(self, pixel_values: torch.Tensor) -> VisionFeatures:
        """(F, 3, S, S) normalised frames -> VisionFeatures."""
        outputs = self.vision(pixel_values=pixel_values, output_hidden_states=True)
        return self.neck(tower_grids(outputs), self.mask_decoder.conv_s0, self.mask_decoder.conv_s1)

    def encode_batch(
        self,
        pixel_values: torch.Tensor,
        frame_image: torch.Tensor | None = None,
        frame_sample: torch.Tensor | None = None,
    ) -> tuple[VisionFeatures, torch.Tensor]:
        """The F frames' features of a collated batch and each frame's row (F,).

        Args:
            pixel_values: (U, 3, S, S) the distinct frames.
            frame_image: (F,) which of them each frame is (default: frame i is row i of
                ``pixel_values``).
            frame_sample: (F,) the row of each frame (default: frame i is row i).
        """
        features = self.encode_image(pixel_values)
        if frame_image is not None:
            features = features.select(frame_image)
        if frame_sample is None:
            frame_sample = torch.arange(len(features.embed), device=pixel_values.device)
        return features, frame_sample

    def run(
        self,
        features: VisionFeatures,
        input_ids: torch.Tensor,
        frame_times: torch.Tensor | None = None,
        frame_sample: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        region_masks: torch.Tensor | None = None,
        hidden: torch.Tensor | None = None,
        where: torch.Tensor | None = None,
        keys: ClipKeys | None = None,
    ) -> SegOutputs:
        """The forward pass: embed -> LM -> [SEG] queries -> frame states -> mask decoder.

        Args:
            features: F frames' features (:meth:`encode_image` / :meth:`encode_batch`).
            input_ids: (B, L) token ids; ``<image>`` placeholders for the frames' tokens.
            frame_times: (F,) normalised time of video frames, -1 for images (default: all -1).
            frame_sample: (F,) the row of each frame (default: frame i is row i).
            attention_mask: (B, L) 1 for real tokens (None: all).
            labels: (B, L) target ids, -100 where no loss (None: no LM loss).
            region_masks: (R, H, W) float masks, one per ``<region>`` token, row-major.
            hidden: (B, L, D_lm) the LM's last hidden states, if computed (greedy decoding).
            where: (S, 2) (row, position) of the [SEG]s to decode (default: every [SEG] of
                ``input_ids``).
            keys: the frames video motion is measured against (default: the frames).

        Returns:
            SegOutputs: each [SEG] decoded on every frame of its row.
        """
        count = len(features.embed)
        if frame_times is None:
            frame_times = torch.full((count,), -1.0, device=input_ids.device)
        if frame_sample is None:
            frame_sample = torch.arange(count, device=input_ids.device)
        logits = lm_loss = None
        if hidden is None:
            embeds = self.embed_inputs(input_ids, features, frame_times, region_masks, frame_sample)
            out = self.lm(
                inputs_embeds=embeds,
                attention_mask=attention_mask,
                labels=labels,
                output_hidden_states=True,
            )
            hidden, logits = out.hidden_states[-1], out.logits
            lm_loss = None if labels is None else out.loss.float()
        keys = ClipKeys(features.embed, frame_times, frame_sample) if keys is None else keys
        features = self.with_motion(features, keys, frame_times, frame_sample)
        where = (input_ids == self.ids.seg).nonzero() if where is None else where
        pairs = self.seg_pairs(where, frame_sample)
        if not len(where):
            return self._no_masks(hidden, logits, lm_loss, features, pairs)
        states = self.frame_lm_states(features, frame_times, hidden, input_ids, frame_sample)
        features = dataclasses.replace(features, lm_states=states)
        queries = self.seg_queries(hidden, where)
        mask_logits, prior = self.decode_masks(
            queries[pairs[0]], features.select(pairs[1]), frame_times[pairs[1]]
        )
        return SegOutputs(hidden, logits, lm_loss, features, queries, *pairs, mask_logits, prior)

    def _no_masks(
        self,
        hidden: torch.Tensor,
        logits: torch.Tensor | None,
        lm_loss: torch.Tensor | None,
        features: VisionFeatures,
        pairs: tuple[torch.Tensor, torch.Tensor],
    ) -> SegOutputs:
        """:meth:`run`'s outputs when there is no [SEG] to decode (empty mask tensors)."""
        grid, side = self.config.mask_grid, self.config.embed_grid
        return SegOutputs(
            hidden, logits, lm_loss, features, hidden.new_zeros((0, hidden.shape[-1])),
            *pairs, hidden.new_zeros((0, grid, grid)), hidden.new_zeros((0, side, side)),
        )  # fmt: skip

    # ----------------------------------------------------------------- its steps
    def visual_tokens(self, features: VisionFeatures, frame_times: torch.Tensor) -> torch.Tensor:
        """LM tokens of every frame in order: (sum of tokens per frame, D_lm).

        Image frames (time < 0) give ``lm_grid**2`` tokens; video frames give
        ``video_lm_grid**2`` tokens with their time embedded.
        """
        is_video = frame_times >= 0
        pieces: list[torch.Tensor | None] = [None] * len(frame_times)
        for video, side in ((False, self.config.lm_grid), (True, self.config.video_lm_grid)):
            chosen = is_video if video else ~is_video
            if not bool(chosen.any()):
                continue
            index = chosen.nonzero()[:, 0]
            times = frame_times[index] if video else None
            tokens = self.neck.lm_tokens(features.lm_source[index], side, times)
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
        """(B, L, D_lm) LM input embeddings with visual tokens and region tokens filled in
        (the arguments as for :meth:`run`)."""
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

    def _first_frames(self, frame_sample: torch.Tensor | None, rows: int) -> torch.Tensor:
        """(B,) index of each row's first frame."""
        if frame_sample is None:
            return torch.arange(rows, device=self.device)
        first = torch.full((rows,), -1, dtype=torch.long, device=frame_sample.device)
        order = torch.arange(len(frame_sample), device=frame_sample.device)
        return first.scatter_reduce(0, frame_sample, order, "amin", include_self=False)

    def with_motion(
        self, features: VisionFeatures, keys: ClipKeys, times: torch.Tensor, clips: torch.Tensor
    ) -> VisionFeatures:
        """``features`` whose video frames' decoder embedding adds, with ``motion_features``,
        what the motion net makes of it and of how the clip changes around it: the embedding
        of the key frame after it minus that of the key frame before it (see
        :func:`parts.neighbour_keys`); unchanged otherwise.

        Args:
            features: F frames' features.
            keys: the key frames of the frames' clips.
            times: (F,) the frames' normalised times (-1 for images, left unchanged).
            clips: (F,) the clip of each frame, as ``keys.clips`` numbers them.
        """
        video = times >= 0
        net = self.head("motion_net")
        if net is None or not bool(video.any()):
            return features
        embed = features.embed
        index = video.nonzero()[:, 0]
        before, after = neighbour_keys(times[index], clips[index], keys.times, keys.clips)
        change = (keys.embed[after] - keys.embed[before]).to(embed.dtype)
        motion = net(torch.cat([embed[index], change], 1))
        return dataclasses.replace(
            features, embed=embed.index_add(0, index, motion.to(embed.dtype))
        )

    def frame_lm_states(
        self,
        features: VisionFeatures,
        frame_times: torch.Tensor,
        hidden: torch.Tensor,
        input_ids: torch.Tensor,
        frame_sample: torch.Tensor,
    ) -> torch.Tensor:
        """(F, lm_grid**2, D) LM states of each frame's ``lm_grid**2`` visual tokens.

        An image's states are read from the main pass ``hidden`` (B, L, D) where its row's
        ``<image>`` tokens of ``input_ids`` (B, L) start; a video frame gets its own pass
        over ``<s>`` + its tokens.
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
        if bool((~is_video).any()):
            index = (~is_video).nonzero()[:, 0]
            rows = frame_sample[index]
            starts = (input_ids[rows] == self.ids.image).int().argmax(1)
            places = starts[:, None] + torch.arange(count, device=starts.device)
            out[index] = hidden[rows[:, None], places].to(out.dtype)
        if bool(is_video.any()):
            index = is_video.nonzero()[:, 0]
            tokens = self.neck.lm_tokens(features.lm_source[index], self.config.lm_grid, None)
            bos = torch.full((len(index), 1), self.ids.bos, device=tokens.device)
            embeds = torch.cat([self.lm.get_input_embeddings()(bos), tokens.to(out.dtype)], 1)
            states = self.lm(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1]
            out[index] = states[:, 1:].to(out.dtype)
        return out

    def seg_queries(self, hidden: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """(S, D) the mask queries of the [SEG] tokens at ``where`` (S, 2) (row, position):
        the state that predicts each [SEG] (LISA's choice) plus what the SegReader reads
        before it, from the LM's last hidden states ``hidden`` (B, L, D)."""
        rows, index = where[:, 0], where[:, 1] - 1
        return self.reader(hidden[rows, index], hidden[rows], index)

    @staticmethod
    def seg_pairs(
        where: torch.Tensor, frame_sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For [SEG] tokens at ``where`` (S, 2): (state index, frame index) (P,) of every
        mask, each [SEG] on every frame of its row, state-major."""
        states, frames = [], []
        for j, row in enumerate(where[:, 0].tolist()):
            mine = (frame_sample == row).nonzero()[:, 0]
            states.append(torch.full_like(mine, j))
            frames.append(mine)
        if not states:
            empty = frame_sample.new_zeros((0,))
            return empty, empty
        return torch.cat(states), torch.cat(frames)

    def image_positional_embeddings(self) -> torch.Tensor:
        """(1, d, g, g) SAM2 positional encoding of the embedding grid."""
        side = self.config.embed_grid
        ref = self.image_pe.positional_embedding
        grid = torch.ones((side, side), device=ref.device, dtype=ref.dtype)
        y = (grid.cumsum(0) - 0.5) / side
        x = (grid.cumsum(1) - 0.5) / side
        return self.image_pe(torch.stack([x, y], dim=-1)).permute(2, 0, 1)[None]

    def time_shift(self, times: torch.Tensor | None) -> torch.Tensor | None:
        """(S, d) embedding of video frames' normalised times (zero rows for images, -1), or
        None when no frame is a video frame."""
        if times is None or not bool((times >= 0).any()):
            return None
        features = time_features(times.clamp(min=0)).to(self.time_proj.weight.dtype)
        return self.time_proj(features) * (times >= 0)[:, None]

    def coarse_prior(
        self, queries: torch.Tensor, features: VisionFeatures, times: torch.Tensor | None
    ) -> torch.Tensor:
        """Where each [SEG] points: (S, g, g) logits.

        ``q(seg) . k(image embedding + position)`` on the g x g grid plus ``q(seg) .
        k'(LM states of the visual tokens)`` on the lm_grid, upsampled; with the optional
        heads, plus the motion match (``motion_query``) and the position match
        (``position_query``). Supervised with the target pooled to g x g (losses.py), and
        given to SAM2's prompt encoder as its mask prompt.
        """
        query = self.prior_query(queries)
        shift = self.time_shift(times)
        if shift is not None:
            query = query + shift.to(query.dtype)
        embed = features.embed
        keys = self.prior_key(embed + self.image_positional_embeddings().to(embed.dtype))
        scale = keys.shape[1] ** 0.5
        prior = torch.einsum("sd,sdhw->shw", query.to(keys.dtype), keys) / scale
        lm_keys = self.prior_key_lm(features.lm_states.to(query.dtype))
        side = self.config.lm_grid
        lm_prior = torch.einsum("sd,snd->sn", query, lm_keys).view(-1, 1, side, side) / scale
        lm_prior = F.interpolate(
            lm_prior, size=prior.shape[-2:], mode="bilinear", align_corners=False
        )
        prior = prior + lm_prior[:, 0].to(prior.dtype)
        if "motion_gate" in self.heads and times is not None:
            prior = prior + motion_match(self.heads, queries, embed, times).to(prior.dtype)
        if "query_direction" in self.heads:
            prior = prior + position_match(self.heads, queries, prior.shape[-1]).to(prior.dtype)
        return prior

    def decode_masks(
        self, queries: torch.Tensor, features: VisionFeatures, times: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits for [SEG] queries, one frame each.

        Args:
            queries: (S, D_lm) [SEG] queries.
            features: VisionFeatures with one row per query, ``lm_states`` set.
            times: (S,) normalised frame time of video frames (-1 or None for images).

        Returns:
            (S, mask_grid, mask_grid) mask logits and the (S, g, g) coarse prior logits.
        """
        count, d = queries.shape[0], self.config.decoder_dim
        sparse = self.seg_proj(queries).view(count, 1, self.config.seg_prompt_tokens, d)
        shift = self.time_shift(times)
        if shift is not None:
            sparse = sparse + shift.view(count, 1, 1, d).to(sparse.dtype)
        position = self.image_positional_embeddings().to(features.embed.dtype)
        embed = features.embed
        prior = self.coarse_prior(queries, features, times)
        size = self.prompt_encoder.mask_input_size
        prompt = F.interpolate(prior[:, None], size=size, mode="bilinear", align_corners=False)
        _, dense = self.prompt_encoder(None, None, None, prompt)
        masks, _, _, _ = self.mask_decoder(
            image_embeddings=embed,
            image_positional_embeddings=position.expand(count, -1, -1, -1),
            sparse_prompt_embeddings=sparse.to(embed.dtype),
            dense_prompt_embeddings=dense.to(embed.dtype),
            multimask_output=False,
            high_resolution_features=features.high_res,
        )
        return masks[:, 0, 0], prior

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
        """Load a model written by :meth:`save_pretrained` (offline; no hub access).
        Checkpoints written before the optional heads moved into ``heads`` load too."""
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
        model.load_weights(directory / WEIGHTS_NAME)
        return model

    def load_weights(self, path: Path) -> None:
        """Load a safetensors file of this architecture, renaming the optional heads' keys
        of older checkpoints (``OLD_HEAD_PREFIXES``); tied weights may be stored once."""
        from safetensors.torch import load_file

        state = {renamed_key(key): tensor for key, tensor in load_file(str(path)).items()}
        missing, unexpected = self.load_state_dict(state, strict=False)
        own = self.state_dict()
        stored = {own[k].data_ptr() for k in state if k in own}
        missing = [k for k in missing if own[k].data_ptr() not in stored]
        if missing or unexpected:
            raise CheckpointMissingError(
                f"{path} does not match the model its config.json describes: missing "
                f"{missing[:5]}, unexpected {unexpected[:5]}"
            )
