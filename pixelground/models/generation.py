"""Greedy generation of the [SEG]-token model: text, and one mask per emitted [SEG].

Decoding uses the LM's key/value cache. The hidden state of each generated [SEG] (taken when
the token is fed back) is decoded by the mask decoder, on the image, or on every frame of a
clip with the frame's normalised time, through ``SegTokenModel.run`` (the forward pass
training and the target decision use too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pixelground.backends.base import GroundedText
from pixelground.core.errors import InputError
from pixelground.core.guided_filter import guided_filter
from pixelground.core.masks import small_pieces
from pixelground.models.parts import ClipKeys
from pixelground.models.seg_model import SegTokenModel
from pixelground.models.tokenizer import grounded_text, prompt_ids


def banned_tokens(model: SegTokenModel) -> list[int]:
    """Ids an answer never contains: markup of the prompt side, padding and ``<unk>``."""
    banned = [
        model.ids.pad,
        model.ids.bos,
        model.ids.image,
        model.ids.user,
        model.ids.assistant,
        model.ids.region,
    ]
    if model.tokenizer.unk_token_id is not None:
        banned.append(int(model.tokenizer.unk_token_id))
    return banned


@torch.no_grad()
def greedy(
    model: SegTokenModel,
    ids: torch.Tensor,
    embeds: torch.Tensor,
    max_new_tokens: int,
    also_banned: Sequence[int] = (),
) -> tuple[list[int], torch.Tensor, list[int]]:
    """Greedy decoding from a prompt: its (1, L) ids and (1, L, D) embeddings.

    Args:
        also_banned: ids never generated besides ``banned_tokens`` (e.g. [SEG]).

    Returns:
        The generated ids (without ``</s>``), the (1, L + n, D) last hidden states of the whole
        sequence (every generated token is fed back), and the positions of generated [SEG]s.
    """
    banned = banned_tokens(model) + list(also_banned)
    table = model.lm.get_input_embeddings()
    out = model.lm(
        inputs_embeds=embeds,
        use_cache=True,
        output_hidden_states=True,
    )
    hidden = [out.hidden_states[-1][0]]
    start = embeds.shape[1]
    generated: list[int] = []
    positions: list[int] = []
    for k in range(max_new_tokens):
        logits = out.logits[0, -1].float()
        logits[banned] = float("-inf")
        token = int(logits.argmax())
        if token == model.ids.eos:
            break
        generated.append(token)
        if token == model.ids.seg:
            positions.append(start + k)
        step = table(torch.tensor([[token]], device=embeds.device))
        out = model.lm(
            inputs_embeds=step, use_cache=True, output_hidden_states=True, **_cache_kwargs(out)
        )
        hidden.append(out.hidden_states[-1][0])
    return generated, torch.cat(hidden)[None], positions


def _cache_kwargs(out: Any) -> dict[str, Any]:
    """The LM's key/value cache from ``out`` as the keyword its forward takes: ``cache``
    since transformers 5.25 (``past_key_values`` is deprecated there), else
    ``past_key_values``."""
    cache = getattr(out, "cache", None)
    if cache is not None:
        return {"cache": cache}
    return {"past_key_values": out.past_key_values}


def prompt_tensor(model: SegTokenModel, prompt: str, image_tokens: int) -> torch.Tensor:
    """(1, L) ids of ``prompt`` with ``image_tokens`` placeholders, in the model's layout."""
    ids = prompt_ids(model.tokenizer, prompt, image_tokens)
    return torch.tensor([ids], device=model.device)


def frame_masks(
    model: SegTokenModel, logits: torch.Tensor, count: int, pixels: Sequence[np.ndarray]
) -> np.ndarray:
    """(count, F, H, W) bool masks of (count * F, m, m) state-major mask logits on F frames
    (RGB uint8 (H, W, 3) ``pixels``): with the config's ``mask_refine`` guided by each frame
    (:func:`guided_masks`), else :func:`bool_masks`."""
    config = model.config
    size = (int(pixels[0].shape[0]), int(pixels[0].shape[1]))
    if config.mask_refine is None:
        return bool_masks(logits, count, len(pixels), size, config.min_mask_island)
    radius = max(1, round(config.mask_refine * min(size)))
    by_frame = logits.view(count, len(pixels), *logits.shape[-2:])
    masks = [
        guided_masks(by_frame[:, f], frame, radius, config.mask_refine_eps, config.min_mask_island)
        for f, frame in enumerate(pixels)
    ]
    return np.stack(masks, 1)


def bool_masks(
    logits: torch.Tensor, count: int, frames: int, size: tuple[int, int], min_island: int = 0
) -> np.ndarray:
    """(count, frames, H, W) bool masks of (count * frames, m, m) state-major mask logits.

    Pieces of the m x m logits above 0 smaller than ``min_island`` cells (8-connected) are
    set below 0 first, so they and their upsampled borders leave the mask.
    """
    full = _upsampled(logits, size, min_island)
    return (full > 0).view(count, frames, *size).cpu().numpy()


def guided_masks(
    logits: torch.Tensor, image: np.ndarray, radius: int, eps: float, min_island: int = 0
) -> np.ndarray:
    """(N, H, W) bool masks of (N, m, m) mask logits on one RGB uint8 (H, W, 3) image: the
    probabilities upsampled as in :func:`bool_masks`, then guided-filtered with the image as
    guide (core.guided_filter) so that their borders follow its colour edges, above 0.5."""
    full = torch.sigmoid(_upsampled(logits, image.shape[:2], min_island)).cpu().numpy()
    return np.stack([guided_filter(image, p, radius, eps) > 0.5 for p in full])


def _upsampled(logits: torch.Tensor, size: tuple[int, int], min_island: int) -> torch.Tensor:
    """(N, H, W) float logits bilinearly upsampled from (N, m, m), pieces above 0 smaller than
    ``min_island`` cells set below 0 first."""
    logits = logits.float()
    if min_island > 0:
        small = torch.from_numpy(small_pieces((logits > 0).cpu().numpy(), min_island))
        logits = logits.masked_fill(small.to(logits.device), -1.0)
    size = (int(size[0]), int(size[1]))
    return F.interpolate(logits[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


@torch.no_grad()
def generate_grounded(
    model: SegTokenModel,
    image: np.ndarray,
    prompt: str,
    regions: Sequence[np.ndarray] | None = None,
    max_new_tokens: int | None = None,
) -> GroundedText:
    """Answer ``prompt`` about ``image`` greedily; one mask per emitted [SEG].

    Args:
        model: the model (in eval mode).
        image: RGB uint8 (H, W, 3).
        prompt: user text; may contain ``<region>`` markers, one per entry of ``regions``.
        regions: (H, W) bool masks for the ``<region>`` markers, in order.
        max_new_tokens: generation limit (default: the config's).

    Returns:
        GroundedText whose masks are bool (H, W) at the image's size.
    """
    if not prompt.strip():
        raise InputError("the prompt is empty; ask a question or give an expression")
    size = (int(image.shape[0]), int(image.shape[1]))
    features = model.encode_image(model.preprocess([image]))
    times = torch.full((1,), -1.0, device=model.device, dtype=model.dtype)
    ids = prompt_tensor(model, prompt, model.num_image_tokens)
    region_masks = None
    if regions:
        stack = np.stack([np.asarray(r, bool) for r in regions])
        region_masks = torch.from_numpy(stack).to(model.device, dtype=model.dtype)
    embeds = model.embed_inputs(ids, features, times, region_masks)
    generated, hidden, positions = greedy(
        model, ids, embeds, max_new_tokens or model.config.max_new_tokens
    )
    masks: list[np.ndarray] = []
    if positions:
        out = model.run(features, ids, times, hidden=hidden, where=_where(positions, ids.device))
        masks = list(frame_masks(model, out.mask_logits, len(positions), [image])[:, 0])
    return grounded_text(model.tokenizer, generated, masks, size)


def _where(positions: Sequence[int], device: torch.device) -> torch.Tensor:
    """(S, 2) (row 0, position) of generated [SEG]s."""
    return torch.tensor([[0, p] for p in positions], device=device, dtype=torch.long)


def video_times(total: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(total,) normalised time of each frame of a clip: 0 for the first, 1 for the last
    (a single frame is at 0)."""
    return torch.linspace(0, 1, total, device=device, dtype=dtype)


def video_key_frames(model: SegTokenModel, total: int) -> list[int]:
    """The ``video_frames`` evenly spaced frames (indices) the LM sees of a ``total``-frame clip."""
    count = min(model.config.video_frames, total)
    return [int(i) for i in np.unique(np.linspace(0, total - 1, count).round())]


@dataclass
class VideoAnswer:
    """The [SEG]s of a greedy answer about a clip, to decode on any of its frames.

    Attributes:
        ids: (1, L) the prompt's ids.
        hidden: (1, L + n, D_lm) the LM's last hidden states of the prompt and the answer.
        where: (S, 2) (row, position) of the answer's [SEG]s.
    """

    ids: torch.Tensor
    hidden: torch.Tensor
    where: torch.Tensor

    def __len__(self) -> int:
        return len(self.where)


@torch.no_grad()
def answer_video(
    model: SegTokenModel,
    key_frames: Sequence[np.ndarray],
    key_times: torch.Tensor,
    prompt: str,
    max_new_tokens: int | None = None,
) -> tuple[list[int], VideoAnswer | None, ClipKeys]:
    """Greedy answer about a clip's key frames, its [SEG]s, and the key frames' embeddings
    that each frame's motion is measured against.

    Args:
        model: the model (in eval mode).
        key_frames: K RGB uint8 (H, W, 3) frames the LM sees.
        key_times: (K,) their normalised times.
        prompt: user text.
        max_new_tokens: generation limit (default: the config's).

    Returns:
        The generated ids, the answer's [SEG]s (None when no [SEG] was written) and the key
        frames' decoder embeddings and times, for :func:`decode_video_frames`.
    """
    if not prompt.strip():
        raise InputError("the prompt is empty; give an expression")
    features = model.encode_image(model.preprocess(key_frames))
    count = len(key_frames) * model.config.video_lm_grid**2
    ids = prompt_tensor(model, prompt, count)
    sample = torch.zeros(len(key_frames), dtype=torch.long, device=model.device)
    embeds = model.embed_inputs(ids, features, key_times, None, sample)
    generated, hidden, positions = greedy(
        model, ids, embeds, max_new_tokens or model.config.max_new_tokens
    )
    answer = VideoAnswer(ids, hidden, _where(positions, ids.device)) if positions else None
    return generated, answer, ClipKeys(features.embed, key_times, torch.zeros_like(sample))


@torch.no_grad()
def decode_video_frames(
    model: SegTokenModel,
    answer: VideoAnswer,
    frames: Sequence[np.ndarray],
    times: torch.Tensor,
    keys: ClipKeys,
) -> np.ndarray:
    """(S, t, H, W) bool masks of an answer's S [SEG]s on t frames (encoded together), at
    the frames' size.

    Args:
        model: the model (in eval mode).
        answer: the [SEG]s from :func:`answer_video`.
        frames: t RGB uint8 (H, W, 3) frames, in time order.
        times: (t,) their normalised times in the clip.
        keys: the clip's key frames from :func:`answer_video`.
    """
    features = model.encode_image(model.preprocess(frames))
    sample = torch.zeros(len(frames), dtype=torch.long, device=model.device)
    out = model.run(
        features, answer.ids, times, sample, hidden=answer.hidden, where=answer.where, keys=keys
    )
    return frame_masks(model, out.mask_logits, len(answer), frames)


@torch.no_grad()
def generate_grounded_video(
    model: SegTokenModel,
    frames: Sequence[np.ndarray],
    prompt: str,
    max_new_tokens: int | None = None,
    chunk: int = 8,
) -> GroundedText:
    """Answer ``prompt`` about a clip; each [SEG] yields a mask on every frame.

    The LM sees ``video_frames`` evenly spaced frames; every frame is then decoded with the
    [SEG] prompt and its normalised time (as Sa2VA does for its key frames).

    Args:
        model: the model (in eval mode).
        frames: T RGB uint8 (H, W, 3) frames of one size.
        prompt: user text.
        max_new_tokens: generation limit (default: the config's).
        chunk: frames encoded at once when decoding masks.

    Returns:
        GroundedText whose masks are bool (T, H, W) per phrase.
    """
    if not frames:
        raise InputError("the video has no frames")
    total = len(frames)
    size = (int(frames[0].shape[0]), int(frames[0].shape[1]))
    times = video_times(total, model.device, model.dtype)
    picks = video_key_frames(model, total)
    generated, answer, clip_keys = answer_video(
        model, [frames[i] for i in picks], times[picks], prompt, max_new_tokens
    )
    masks: list[np.ndarray] = []
    if answer is not None:
        parts = [
            decode_video_frames(
                model,
                answer,
                frames[start : start + chunk],
                times[start : start + chunk],
                clip_keys,
            )
            for start in range(0, total, chunk)
        ]
        masks = list(np.concatenate(parts, axis=1))
    return grounded_text(model.tokenizer, generated, masks, (total, *size))
