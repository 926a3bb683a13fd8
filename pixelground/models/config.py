"""Flat configuration of the [SEG]-token grounding model.

One dataclass, one level deep, JSON-serialisable: it is what ``config.json`` of a checkpoint
holds. The vision tower and the causal LM are named by a transformers ``model_type``
(built from config with random weights, overridden by ``vision_kwargs``/``lm_kwargs``) or by a
hub id / local directory (loaded with ``from_pretrained`` when ``*_pretrained`` is true). The
resolved transformers configs are stored in ``vision_config``/``lm_config`` so a saved
checkpoint rebuilds offline without the hub.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from pixelground.core.errors import InputError

logger = logging.getLogger(__name__)

#: Options of inference rules that read the benchmark's own wordings (ordinals, sets,
#: relations, hue views), removed in December 2026; checkpoints that name them still load.
RETIRED_KEYS = frozenset(
    {"ordinal_by_instances", "set_fallback", "set_noun", "relation_check", "hue_views"}
)

SEG_TOKEN = "[SEG]"
PHRASE_OPEN = "<p>"
PHRASE_CLOSE = "</p>"
REGION_TOKEN = "<region>"
IMAGE_TOKEN = "<image>"
USER_TOKEN = "<user>"
ASSISTANT_TOKEN = "<assistant>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"

#: Markup tokens added to every vocabulary, in this order.
MARKUP_TOKENS = (
    IMAGE_TOKEN,
    USER_TOKEN,
    ASSISTANT_TOKEN,
    SEG_TOKEN,
    PHRASE_OPEN,
    PHRASE_CLOSE,
    REGION_TOKEN,
)


#: Options removed from the model (the shipped recipe left them off), with their off values:
#: a saved config may still hold them at these values.
RETIRED_OPTIONS: dict[str, Any] = {
    "seg_state": "predict",
    "box_loss_weight": 0.0,
    "box_prompt": False,
    "query_word_loss_weight": 0.0,
    "colour_path": False,
    "colour_gain": 1.0,
    "coarse_prior": True,
    "lm_prior": True,
    "image_after_question": False,
    "image_prefix_attention": False,
    "lm_features": False,
    "top_down": False,
    "context_layers": 0,
    "fusion_layers": 0,
    "fusion_text_tokens": 4,
    "no_target_masks": False,
    "time_query": False,
    "video_memory": 0,
    "memory_layers": 1,
}


def _default_vision_kwargs() -> dict[str, Any]:
    return {"hidden_sizes": [32, 64, 96, 128], "depths": [1, 1, 2, 1], "drop_path_rate": 0.0}


def _default_lm_kwargs() -> dict[str, Any]:
    return {
        "hidden_size": 192,
        "intermediate_size": 512,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 512,
        "tie_word_embeddings": True,
    }


@dataclass
class SegModelConfig:
    """Architecture of a SegTokenModel (defaults: the small CPU-trainable `shapes` model).

    Attributes:
        vision_tower: transformers ``model_type`` ("convnext", "resnet", "siglip_vision_model",
            "clip_vision_model", "dinov2", ...) or a hub id / local directory.
        vision_kwargs: config overrides when ``vision_tower`` is a model_type.
        vision_pretrained: load the tower's weights when ``vision_tower`` is a hub id / dir.
        image_size: square input side in pixels; images are resized to it.
        image_mean: per-channel mean used to normalise [0, 1] pixels.
        image_std: per-channel std used to normalise [0, 1] pixels.
        lm: transformers causal-LM ``model_type`` ("llama", "qwen2", ...) or hub id / dir.
        lm_kwargs: config overrides when ``lm`` is a model_type (vocab size is set for you).
        lm_pretrained: load the LM's weights when ``lm`` is a hub id / dir.
        tokenizer: hub id / dir of a pretrained tokenizer; None builds a word-level one from data.
        lowercase: lower-case text in the word-level tokenizer.
        lm_grid: the LM sees lm_grid x lm_grid visual tokens (pooled from the tower).
        mask_grid: side of the decoder's low-resolution mask logits (4x its embedding grid).
        decoder_dim: hidden size of SAM2's prompt encoder and mask decoder.
        decoder_layers: two-way transformer layers in the mask decoder.
        decoder_heads: attention heads in the mask decoder.
        decoder_mlp_dim: MLP width in the mask decoder.
        seg_prompt_tokens: sparse prompt tokens each [SEG] state is projected to.
        seg_reader_heads: heads of the SegReader attention from the [SEG] state over the LM's
            hidden states before it (LISA's query is the state that predicts the [SEG]).
        lm_loss_weight: weight of the LM cross-entropy.
        bce_loss_weight: weight of the per-pixel mask BCE.
        dice_loss_weight: weight of the mask DICE loss.
        prior_loss_weight: weight of the coarse localisation BCE: each [SEG] scores the g x g
            image embedding and the LM's states of the visual tokens (the coarse prior, SAM2's
            mask prompt) against its target pooled to g x g.
        point_loss_weight: weight of the pointing loss: each [SEG]'s coarse map, as a softmax
            over its places, against the target's share of each place (cross-entropy), so the
            query must tell the target from look-alikes elsewhere (0: off).
        word_loss_weight: weight of the phrase-word loss: every place of the decoder's image
            embedding and of the tower grid the LM reads that lies inside a grounded caption's
            mask predicts the words of its ``<p>`` phrase (multi-label BCE through a linear
            head per grid), so the image features must carry what the phrases say (size,
            texture, kind), not only what is easiest to see (0: off).
        head_word_loss_weight: weight of the phrase-head loss: the same places predict the
            last word of their ``<p>`` phrase (its head noun: the kind of thing it names)
            with a softmax over the vocabulary, through a linear head per grid (0: off).
        motion_loss_weight: weight of the motion loss: a linear head on a video frame's
            decoder embedding, averaged over the target's places, predicts the target's
            velocity across the clip (from its masks' centroids), so each place carries how
            what lies there moves (needs ``motion_features``; 0: off).
        motion_query: each video [SEG] also asks for a velocity (a linear head on its state,
            trained against its target's velocity as ``motion_loss_weight`` trains the
            places'), and the coarse prior adds minus its squared distance from the velocity
            read at each place, times a gate of the [SEG]'s own (zero at first; needs
            ``motion_loss_weight``).
        position_query: each [SEG] also asks for a direction (a linear head on its state,
            zero at first), and the coarse prior adds, per place, that direction's dot
            product with the place's position (x and y from -1 to 1, times
            ``POSITION_SCALE``): "the leftmost ..." or "... left of ..." can favour the
            matching shape furthest that way. Trained by the prior's losses.
        lora_r: LoRA rank on the LM (0: train the LM fully).
        lora_alpha: LoRA alpha.
        lora_dropout: LoRA dropout.
        lora_target_modules: LM module names LoRA adapts.
        freeze_vision: keep the vision tower's weights fixed.
        refer_template: user prompt for referring segmentation; ``{expression}`` is filled in.
        gcg_prompt: user prompt for grounded caption generation.
        region_template: user prompt for a region caption; contains the region marker.
        video_template: user prompt for referring video segmentation.
        video_frames: frames of a clip the LM sees (sampled evenly at inference).
        video_lm_grid: a video frame is video_lm_grid x video_lm_grid LM tokens.
        motion_features: add to a video frame's decoder embedding two 3 x 3 convolutions
            (the last zero at first) of it and of how the clip changes around it: the
            embedding of the next frame the LM sees minus that of the one before (in
            training, of the row's sampled frames), so each place can carry whether what
            lies there moves, and which way, as it carries colour.
        max_new_tokens: generation limit.
        min_mask_island: at inference, pieces of a mask smaller than this many cells of the
            ``mask_grid`` (8-connected pieces of the low-resolution logits above 0) are dropped
            before upsampling, as SAM2 drops "sprinkles"; 0 keeps every piece.
        target_decision: (w_lm, w_prior, bias) or (w_lm, w_prior, w_words, bias): referring
            answers decide whether there is a target from the LM's odds of [SEG], the coarse
            prior's peak and (with four numbers) the phrase-word heads' read of the answered
            mask, instead of from the LM's first token alone (see target_decision.py; fitted
            on a validation split by ``pixelground calibrate``); None: the LM decides.
        phrase_words: the tokens the phrase-word heads were trained on (those inside the
            training lines' grounded phrases), recorded by training; the target decision
            reads the expression's words among them on the answered mask.
        mask_refine: every mask's probabilities (referring answers, grounded captions,
            region prompts' answers, video frames), upsampled from ``mask_grid``, are
            guided-filtered with their image as guide before the 0.5 threshold, so that the
            mask's border follows the image's colour edges (core.guided_filter; window radius
            this fraction of the image's shorter side, at least 1 pixel). None: the upsampled
            logits above 0.
        mask_refine_eps: the guided filter's regulariser (colours in [0, 1]).
        max_length: training sequences are cut to this many tokens.
        vision_config: resolved transformers config of the tower (filled when built).
        lm_config: resolved transformers config of the LM (filled when built).
    """

    vision_tower: str = "convnext"
    vision_kwargs: dict[str, Any] = field(default_factory=_default_vision_kwargs)
    vision_pretrained: bool = False
    image_size: int = 256
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    lm: str = "llama"
    lm_kwargs: dict[str, Any] = field(default_factory=_default_lm_kwargs)
    lm_pretrained: bool = False
    tokenizer: str | None = None
    lowercase: bool = True
    lm_grid: int = 8
    mask_grid: int = 64
    decoder_dim: int = 64
    decoder_layers: int = 2
    decoder_heads: int = 4
    decoder_mlp_dim: int = 256
    seg_prompt_tokens: int = 2
    seg_reader_heads: int = 4
    lm_loss_weight: float = 1.0
    bce_loss_weight: float = 2.0
    dice_loss_weight: float = 1.0
    prior_loss_weight: float = 0.5
    point_loss_weight: float = 0.0
    word_loss_weight: float = 0.0
    head_word_loss_weight: float = 0.0
    motion_loss_weight: float = 0.0
    motion_query: bool = False
    position_query: bool = False
    lora_r: int = 0
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    freeze_vision: bool = False
    refer_template: str = "Please segment {expression}."
    gcg_prompt: str = "Please describe the image and segment every shape you mention."
    region_template: str = "Please describe the region <region>."
    video_template: str = "Please segment {expression} in the video."
    video_frames: int = 4
    video_lm_grid: int = 4
    motion_features: bool = False
    max_new_tokens: int = 96
    min_mask_island: int = 0
    target_decision: tuple[float, ...] | None = None
    phrase_words: tuple[str, ...] = ()
    mask_refine: float | None = None
    mask_refine_eps: float = 1e-3
    max_length: int = 192
    vision_config: dict[str, Any] | None = None
    lm_config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.image_mean = tuple(float(v) for v in self.image_mean)  # type: ignore[assignment]
        self.image_std = tuple(float(v) for v in self.image_std)  # type: ignore[assignment]
        self.lora_target_modules = tuple(self.lora_target_modules)
        if self.target_decision is not None:
            self.target_decision = tuple(float(v) for v in self.target_decision)
        self.phrase_words = tuple(str(word) for word in self.phrase_words)
        self.validate()

    @property
    def embed_grid(self) -> int:
        """Side of the decoder's image-embedding grid (mask_grid / 4)."""
        return self.mask_grid // 4

    def validate(self) -> None:
        """Raise InputError for inconsistent sizes."""
        if self.mask_grid % 4 or self.mask_grid < 8:
            raise InputError(f"mask_grid must be a multiple of 4 and >= 8, got {self.mask_grid}")
        if self.image_size % self.embed_grid:
            raise InputError(
                f"image_size ({self.image_size}) must be divisible by mask_grid / 4 "
                f"({self.embed_grid}); change image_size or mask_grid"
            )
        if self.decoder_dim % 8 or self.decoder_dim % self.decoder_heads:
            raise InputError(
                f"decoder_dim ({self.decoder_dim}) must be a multiple of 8 and of decoder_heads"
            )
        if (self.decoder_dim // 2) % self.decoder_heads:
            raise InputError("decoder_dim / 2 must be divisible by decoder_heads")
        sizes = (self.lm_grid, self.seg_prompt_tokens, self.video_frames, self.video_lm_grid)
        if min(*sizes, self.seg_reader_heads) < 1:
            raise InputError(
                "lm_grid, seg_prompt_tokens, video_frames, video_lm_grid and seg_reader_heads "
                "must be >= 1"
            )
        if self.min_mask_island < 0:
            raise InputError(f"min_mask_island must be >= 0, got {self.min_mask_island}")
        if self.mask_refine is not None and not 0 < self.mask_refine <= 1:
            raise InputError(f"mask_refine must be in (0, 1], got {self.mask_refine}")
        if not self.mask_refine_eps > 0:
            raise InputError(f"mask_refine_eps must be > 0, got {self.mask_refine_eps}")
        if self.motion_loss_weight and not self.motion_features:
            raise InputError("motion_loss_weight needs motion_features")
        if self.motion_query and not self.motion_loss_weight:
            raise InputError("motion_query needs motion_loss_weight > 0")
        weights = (
            "point_loss_weight",
            "word_loss_weight",
            "head_word_loss_weight",
            "motion_loss_weight",
        )
        for name in weights:
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("refer_template", "video_template"):
            if "{expression}" not in getattr(self, name):
                raise InputError(f"{name} must contain '{{expression}}'")
        decision = self.target_decision
        if decision is not None and (
            len(decision) not in (3, 4) or not all(map(math.isfinite, decision))
        ):
            raise InputError(
                "target_decision must be three or four finite numbers (w_lm, w_prior, bias) "
                f"or (w_lm, w_prior, w_words, bias), got {decision}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field."""
        data = dataclasses.asdict(self)
        for key in ("image_mean", "image_std", "lora_target_modules", "phrase_words"):
            data[key] = list(data[key])
        if self.target_decision is not None:
            data["target_decision"] = list(self.target_decision)
        return data

    @classmethod
    def field_names(cls) -> set[str]:
        """Names of all fields."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegModelConfig:
        """Build from a dict; unknown keys are an InputError naming the valid ones.

        ``RETIRED_KEYS`` (options of inference rules since removed) are ignored. Keys of
        removed model options (``RETIRED_OPTIONS``, see docs/shapes-research.md) are dropped
        when they hold the value that left the option off; any other value is an InputError.
        """
        retired = sorted(RETIRED_KEYS & set(data))
        if retired:
            logger.warning("ignoring retired model config keys %s", retired)
            data = {k: v for k, v in data.items() if k not in RETIRED_KEYS}
        data = dict(data)
        for key, off in RETIRED_OPTIONS.items():
            if key in data and data.pop(key) != off:
                raise InputError(
                    f"model config key {key!r} is an option that was removed (see "
                    f"docs/shapes-research.md); only {off!r}, the value that left it off, "
                    "is accepted"
                )
        unknown = sorted(set(data) - cls.field_names())
        if unknown:
            raise InputError(
                f"unknown model config keys {unknown}; valid keys: {sorted(cls.field_names())}"
            )
        return cls(**data)
