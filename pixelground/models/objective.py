"""The training objective: one :meth:`SegTokenModel.run` over a collated batch, weighed by the
loss functions of losses.py.

Loss = ``lm_loss_weight`` * LM cross-entropy + ``bce_loss_weight`` * mask BCE +
``dice_loss_weight`` * mask DICE + ``prior_loss_weight`` * coarse-prior BCE +
``point_loss_weight`` * pointing loss (+ the phrase-word and motion terms when their heads
are on), the mask terms averaged over every [SEG] mask of the batch.
"""

from __future__ import annotations

from typing import Any

import torch

from pixelground.models.losses import (
    LOSS_TERMS,
    mask_losses,
    motion_loss,
    phrase_words,
    prior_losses,
    word_losses,
)
from pixelground.models.parts import VisionFeatures
from pixelground.models.seg_model import SegTokenModel


def loss_weight(model: SegTokenModel, term: str, scale: dict[str, float] | None = None) -> float:
    """The weight of a loss term (one of ``LOSS_TERMS``): its ``<term>_weight`` in the config
    times ``scale.get(term, 1)`` (a trainer's phase may scale terms)."""
    return getattr(model.config, f"{term}_weight") * (scale or {}).get(term, 1.0)


def _weighed(
    model: SegTokenModel, terms: dict[str, torch.Tensor], scale: dict[str, float] | None
) -> torch.Tensor:
    return sum(loss_weight(model, name, scale) * terms[name] for name in LOSS_TERMS)


def training_losses(
    model: SegTokenModel, batch: dict[str, Any], scale: dict[str, float] | None = None
) -> dict[str, torch.Tensor]:
    """The losses of a collated batch (``data.collate``).

    Returns:
        ``loss`` (weighted sum), every term of ``LOSS_TERMS``, ``mask_logits``
        (M, mask_grid, mask_grid) of the [SEG] masks and the LM's ``logits`` (B, L, V).
    """
    features, frame_sample = model.encode_batch(
        batch["pixel_values"], batch.get("frame_image"), batch.get("frame_sample")
    )
    input_ids, gt_masks = batch["input_ids"], batch.get("gt_masks")
    out = model.run(
        features,
        input_ids,
        frame_times=batch.get("frame_times"),
        frame_sample=frame_sample,
        attention_mask=batch.get("attention_mask"),
        labels=batch.get("labels"),
        region_masks=batch.get("region_masks"),
    )
    zero = out.hidden.new_zeros(()).float()
    terms = dict.fromkeys(LOSS_TERMS, zero)
    if out.lm_loss is not None:
        terms["lm_loss"] = out.lm_loss
    if gt_masks is not None and len(out.mask_logits):
        if len(gt_masks) != len(out.mask_logits):
            raise ValueError(f"{len(out.mask_logits)} masks to predict but {len(gt_masks)} given")
        terms["bce_loss"], terms["dice_loss"] = mask_losses(out.mask_logits, gt_masks)
        terms["prior_loss"], terms["point_loss"] = prior_losses(out.prior, gt_masks)
        if model.head("velocity") is not None:
            times = out.features.embed.new_full((len(out.frame_index),), -1.0)
            if batch.get("frame_times") is not None:
                times = batch["frame_times"][out.frame_index]
            terms["motion_loss"] = motion_loss(
                out.features.embed[out.frame_index],
                out.queries,
                out.state_index,
                times,
                gt_masks,
                model.heads["velocity"],
                model.head("query_velocity"),
            )
    terms["word_loss"], terms["head_word_loss"] = phrase_word_losses(
        model, input_ids, out.features, frame_sample, gt_masks, batch.get("colour_blind")
    )
    return {"loss": _weighed(model, terms, scale), **terms, "mask_logits": out.mask_logits,
            "logits": out.logits}  # fmt: skip


def image_word_losses(
    model: SegTokenModel, batch: dict[str, Any], scale: dict[str, float] | None = None
) -> dict[str, torch.Tensor]:
    """The phrase-word losses of a batch alone: the images are encoded and their places read
    by the word heads; the language model and the mask decoder are not run.

    Returns:
        ``loss`` (weighted sum) and every term of LOSS_TERMS, zero but ``word_loss`` and
        ``head_word_loss``.
    """
    features, frame_sample = model.encode_batch(
        batch["pixel_values"], batch.get("frame_image"), batch.get("frame_sample")
    )
    terms = dict.fromkeys(LOSS_TERMS, features.embed.new_zeros(()).float())
    terms["word_loss"], terms["head_word_loss"] = phrase_word_losses(
        model,
        batch["input_ids"],
        features,
        frame_sample,
        batch.get("gt_masks"),
        batch.get("colour_blind"),
    )
    return {"loss": _weighed(model, terms, scale), **terms}


def phrase_word_losses(
    model: SegTokenModel,
    input_ids: torch.Tensor,
    features: VisionFeatures,
    frame_sample: torch.Tensor,
    gt_masks: torch.Tensor | None,
    colour_blind: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``losses.word_losses`` of every ``<p>phrase</p> [SEG]`` of a batch on the decoder
    embedding and the LM's tower grid; the rows of ``colour_blind`` (B,) (hue-rotated
    images) leave the colour words out of the phrase-word loss."""
    zero = features.embed.new_zeros(()).float()
    where = (input_ids == model.ids.seg).nonzero()
    word_heads, head_word_heads = model.head("word"), model.head("head_word")
    if (word_heads is None and head_word_heads is None) or gt_masks is None or not len(where):
        return zero, zero
    state_index, frame_index = model.seg_pairs(where, frame_sample)
    words, head_word = phrase_words(
        input_ids, where, model.ids.p_open, model.ids.p_close, len(model.tokenizer)
    )
    words, head_word = words[state_index], head_word[state_index]
    blind = torch.zeros(len(words), dtype=torch.bool, device=words.device)
    colour = model.colour_columns().to(words.device)
    if colour_blind is not None and bool(colour_blind.any()):
        blind = colour_blind[where[state_index, 0]].to(words.device)
        words = words.masked_fill(blind[:, None] & colour[None], 0.0)
    keep = words.any(1)
    if not bool(keep.any()):
        return zero, zero
    return word_losses(
        (features.embed, features.lm_source),
        frame_index[keep],
        gt_masks[keep],
        words[keep],
        head_word[keep],
        blind[keep][:, None] & colour[None],
        word_heads,
        head_word_heads,
    )
