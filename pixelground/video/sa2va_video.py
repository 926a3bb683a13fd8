"""Sa2VA's end-to-end video path: sampled frames to the language model, masks on every one.

Sa2VA's ``predict_forward(video=[PIL frames], text="<image>...", tokenizer=...)`` shows the
first five frames it is given to its language model, answers with ``[SEG]`` tokens, and
decodes every ``[SEG]`` into one mask per given frame: ``prediction_masks[i]`` is a (T, H, W)
array for the i-th ``[SEG]``. Sa2VA's own evaluation passes every frame of the video, which
holds the whole video in memory and shows the model only the first five frames. pixelground
passes a few key frames sampled across the whole video instead (the uniform sampling that
Sa2VA-i found better than first-frame sampling), and propagates the masks on those key frames
through the full video with its bounded-memory SAM2 tracking session.

The functions take any Sa2VA backend (``pixelground.backends.sa2va.Sa2VABackend``, or an
object with ``model``, ``tokenizer`` and ``processor`` whose model has ``predict_forward``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelground.backends.base import Phrase, PredictForward, WrapsModel
from pixelground.backends.sa2va_parsing import parse_seg_answer
from pixelground.core.errors import InputError, PixelgroundError, require
from pixelground.core.masks import resize_mask

log = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
SEGMENT_PROMPT = "Please segment {expression}."
VIDEO_GCG_PROMPT = (
    "Could you please give me a brief description of the video? Please respond with "
    "interleaved segmentation masks for the corresponding parts of the answer."
)
#: Sa2VA shows at most this many of the given frames to its language model.
LLM_FRAMES = 5


@dataclass
class VideoGroundedText:
    """Sa2VA's answer about a few frames of a video.

    Attributes:
        text: the answer without markup.
        phrases: marked phrases with [start, end) spans into ``text`` (an unowned [SEG]
            becomes a phrase with empty text at the offset where it stood).
        masks: one (T, H, W) bool stack per phrase, over the T given frames.
        raw: the raw answer.
    """

    text: str
    phrases: list[Phrase] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    raw: str = ""


def supports_video(backend: Any) -> bool:
    """Whether ``backend`` is a Sa2VA-style model (its ``model`` has ``predict_forward``)."""
    return isinstance(backend, WrapsModel) and isinstance(backend.model, PredictForward)


def predict_video(backend: Any, frames: Sequence[np.ndarray], prompt: str) -> dict[str, Any]:
    """Sa2VA's raw answer for a list of frames.

    Args:
        backend: a Sa2VA backend (``model``, ``tokenizer``, optional ``processor``).
        frames: T RGB uint8 (H, W, 3) frames of one size; the first five reach the LLM.
        prompt: the instruction; ``<image>`` is put in front unless already there.

    Returns:
        ``{"prediction": str, "prediction_masks": [(T, H, W) arrays, one per [SEG]]}``.
    """
    if not supports_video(backend):
        raise InputError(f"{type(backend).__name__} has no Sa2VA predict_forward for videos")
    if not frames:
        raise InputError("no frames given to Sa2VA")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("the prompt is empty; e.g. 'Please segment the swan.'")
    from PIL import Image

    text = prompt.strip()
    if not text.startswith(IMAGE_TOKEN):
        text = IMAGE_TOKEN + text
    kwargs: dict[str, Any] = {"tokenizer": backend.tokenizer}
    if getattr(backend, "processor", None) is not None:
        kwargs["processor"] = backend.processor
    video = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    torch = require("torch", "models")
    with torch.inference_mode():
        out = backend.model.predict_forward(video=video, text=text, **kwargs)
    if not isinstance(out, dict) or "prediction" not in out:
        raise PixelgroundError(
            "Sa2VA's predict_forward returned no 'prediction'; this checkpoint's remote code "
            "is not a Sa2VA release pixelground supports"
        )
    return out


def mask_stack(mask: Any, count: int, height: int, width: int) -> np.ndarray:
    """One [SEG]'s masks as (count, H, W) bool: resized if needed, missing frames empty.

    Accepts (T, h, w) or (h, w) arrays (a single mask is taken for every frame) and None.
    """
    out = np.zeros((count, height, width), dtype=bool)
    if mask is None:
        return out
    if hasattr(mask, "detach"):
        mask = mask.detach().float().cpu().numpy()
    array = np.asarray(mask)
    if array.ndim == 2:
        array = np.repeat(array[None], count, axis=0)
    if array.ndim != 3:
        raise PixelgroundError(f"Sa2VA returned a mask of shape {array.shape}; expected (T, H, W)")
    array = array > 0.5 if array.dtype.kind == "f" else array.astype(bool)
    if array.shape[1:] != (height, width):
        array = resize_mask(array, height, width)
    if len(array) != count:
        log.warning("Sa2VA returned masks for %d frames of %d", len(array), count)
    out[: min(count, len(array))] = array[:count]
    return out


def ground_video(backend: Any, frames: Sequence[np.ndarray], prompt: str) -> VideoGroundedText:
    """Ask Sa2VA about the frames; every marked phrase gets the (T, H, W) masks of its [SEG]."""
    height, width = np.asarray(frames[0]).shape[:2] if frames else (0, 0)
    out = predict_video(backend, frames, prompt)
    raw = str(out.get("prediction", ""))
    given = list(out.get("prediction_masks") or [])
    parsed = parse_seg_answer(raw)
    count = len(frames)
    per_seg = [
        mask_stack(given[i] if i < len(given) else None, count, height, width)
        for i in range(parsed.seg_count)
    ]
    empty = np.zeros((count, height, width), dtype=bool)
    entries = [
        (
            p.start,
            Phrase(p.text, p.start, p.end),
            per_seg[p.seg_index] if p.seg_index is not None else empty,
        )
        for p in parsed.phrases
    ]
    entries += [(at, Phrase("", at, at), per_seg[index]) for index, at in parsed.unowned]
    entries.sort(key=lambda e: e[0])
    return VideoGroundedText(
        text=parsed.text, phrases=[e[1] for e in entries], masks=[e[2] for e in entries], raw=raw
    )


def segment_video_frames(
    backend: Any, frames: Sequence[np.ndarray], expression: str
) -> list[np.ndarray]:
    """(T, H, W) masks of what ``expression`` names on the given frames, one stack per [SEG].

    Every mask answers the expression, so all are kept even when the text lost a [SEG];
    stacks that are empty on every frame are dropped.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise InputError("the referring expression is empty; e.g. 'the black swan'")
    height, width = np.asarray(frames[0]).shape[:2] if frames else (0, 0)
    out = predict_video(backend, frames, SEGMENT_PROMPT.format(expression=expression.strip()))
    given = list(out.get("prediction_masks") or [])
    count = max(parse_seg_answer(str(out.get("prediction", ""))).seg_count, len(given))
    stacks = [
        mask_stack(given[i] if i < len(given) else None, len(frames), height, width)
        for i in range(count)
    ]
    return [s for s in stacks if s.any()]
