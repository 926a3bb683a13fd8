"""SegTokenModelBackend: our trained [SEG]-token model (pixelground.models) as a backend.

It implements GroundingModel (``ground``), ReferringSegmenter (``segment_expression``) and
Captioner (``caption``, ``describe_region``), plus ``ground_video`` and
``segment_video_expression`` for videos, so the task classes, the CLI, the evaluator and the
server use it like any other backend. ``segment_expression``, ``caption`` and the region and
video methods send the prompts the checkpoint was trained with (stored in its config);
``gcg_prompt`` is the grounded-caption instruction to pass to ``ground``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.backends.base import GroundedText
from pixelground.backends.loading import load_pretrained, select_device, select_dtype
from pixelground.core.errors import CheckpointMissingError, InputError
from pixelground.core.media import load_image
from pixelground.models.checkpoints import find_checkpoint
from pixelground.models.config import REGION_TOKEN
from pixelground.models.generation import (
    answer_video,
    decode_video_frames,
    generate_grounded,
    generate_grounded_video,
    video_key_frames,
    video_times,
)
from pixelground.models.seg_model import SegTokenModel
from pixelground.models.target_decision import referring_mask
from pixelground.video.frames import Frame, FrameSource

logger = logging.getLogger(__name__)


def _expression(text: str) -> str:
    text = " ".join(text.split()).rstrip(".?!")
    if not text:
        raise InputError("the expression is empty; say what to segment")
    return text


class SegTokenModelBackend:
    """A trained SegTokenModel loaded from a checkpoint directory.

    Args:
        checkpoint_dir: a model directory, or a training run directory (its latest checkpoint).
        device: "auto"/None, "cpu", "cuda", "mps".
        dtype: "float32", "float16" or "bfloat16"; None keeps float32 (the model is small).
    """

    def __init__(
        self, checkpoint_dir: str | Path, device: str | None = None, dtype: str | None = None
    ):
        found = find_checkpoint(checkpoint_dir)
        if found is None:
            raise CheckpointMissingError(
                f"no [SEG]-model checkpoint in {checkpoint_dir} (expected config.json and "
                "model.safetensors, or a run directory with checkpoint-* folders); train one "
                "with `pixelground train CONFIG.json` or pass the directory it wrote"
            )
        self.device = select_device(device)
        self.model = load_pretrained(SegTokenModel, str(found))
        self.model.to(self.device).eval()
        if dtype not in (None, "", "auto"):
            self.model.to(select_dtype(self.device, dtype))
        self.checkpoint = found
        self.info: dict[str, Any] = {"class": "SegTokenModelBackend", "checkpoint": str(found)}

    @property
    def config(self) -> Any:
        """The model's SegModelConfig (prompts, sizes)."""
        return self.model.config

    @property
    def gcg_prompt(self) -> str:
        """The grounded-caption instruction this checkpoint was trained with."""
        return str(self.config.gcg_prompt)

    def ground(self, image: np.ndarray, prompt: str) -> GroundedText:
        """Answer ``prompt`` about ``image``; every [SEG] yields one (H, W) bool mask."""
        return generate_grounded(self.model, load_image(image).pixels, prompt)

    def segment_expression(self, image: np.ndarray, expression: str) -> list[np.ndarray]:
        """(H, W) bool masks of what ``expression`` refers to; [] when the model says none.

        The model alone answers: with the config's ``target_decision`` one pass decides
        whether there is a target and gives its mask (target_decision.py), else the LM
        answers. Reasoning over instances (ordinals, relations, sets) is a strategy of the
        referring task (tasks/compose.py), not of this backend.
        """
        pixels = load_image(image).pixels
        prompt = self.config.refer_template.format(expression=_expression(expression))
        if self.config.target_decision is None:
            return list(self.ground(pixels, prompt).masks)
        mask = referring_mask(self.model, pixels, prompt)
        return [] if mask is None else [mask]

    def caption(self, image: np.ndarray, detailed: bool = False) -> str:
        """The image's caption (the grounded caption with its markup removed)."""
        return self.ground(image, self.config.gcg_prompt).text

    def describe_mask(self, image: np.ndarray, mask: np.ndarray) -> str:
        """Caption of the region under an (H, W) bool mask (a mask-pooled visual prompt)."""
        pixels = load_image(image).pixels
        mask = np.asarray(mask, bool)
        if mask.shape != pixels.shape[:2]:
            raise InputError(f"region mask is {mask.shape} but the image is {pixels.shape[:2]}")
        if not mask.any():
            raise InputError("the region mask is empty; give a mask with at least one pixel")
        prompt = self.config.region_template
        if REGION_TOKEN not in prompt:
            prompt = f"{prompt} {REGION_TOKEN}"
        return generate_grounded(self.model, pixels, prompt, regions=[mask]).text

    def describe_region(
        self, image: np.ndarray, box: Sequence[float], detailed: bool = False
    ) -> str:
        """Caption of the region inside an xyxy pixel box."""
        pixels = load_image(image).pixels
        height, width = pixels.shape[:2]
        x0, y0, x1, y1 = (float(v) for v in box)
        mask = np.zeros((height, width), bool)
        mask[
            max(0, int(y0)) : min(height, int(np.ceil(y1))),
            max(0, int(x0)) : min(width, int(np.ceil(x1))),
        ] = True
        return self.describe_mask(pixels, mask)

    def ground_video(self, frames: Sequence[np.ndarray], prompt: str) -> GroundedText:
        """Answer ``prompt`` about a clip; masks are (T, H, W) bool stacks, one per phrase."""
        images = [load_image(f).pixels for f in frames]
        return generate_grounded_video(self.model, images, prompt)

    def segment_video_expression(
        self, frames: Sequence[np.ndarray], expression: str
    ) -> list[np.ndarray]:
        """(T, H, W) bool masks, one per object the expression refers to ([] for none)."""
        prompt = self.config.video_template.format(expression=_expression(expression))
        return list(self.ground_video(frames, prompt).masks)

    def video_key_frames(self, total: int) -> list[int]:
        """Indices of the frames the LM sees of a ``total``-frame video."""
        return video_key_frames(self.model, total)

    def stream_video_expression(
        self, frames: FrameSource, expression: str, chunk: int = 8
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Segment ``expression`` on every frame of a streamed video, a chunk at a time.

        The LM sees ``video_frames`` evenly spaced frames of the whole video; each [SEG] it
        writes is one object, decoded on every frame with the frame's normalised time (and how
        the clip moves around it, with ``motion_features``). Only ``chunk`` frames are held at
        once.

        Args:
            frames: the sampled frames of a video.
            expression: what to segment.
            chunk: frames decoded together.

        Yields:
            (frame indices, (S, t, H, W) bool masks) per chunk of t frames; S is the number of
            objects (0 for "no target", then nothing is decoded and one empty chunk is yielded).
        """
        prompt = self.config.video_template.format(expression=_expression(expression))
        total = len(frames)
        if total == 0:
            raise InputError("the video has no frames")
        size = (frames.height, frames.width)
        times = video_times(total, self.model.device, self.model.dtype)
        picks = self.video_key_frames(total)
        key_frames = [frames.read(i) for i in picks]
        _, answer, clip_keys = answer_video(self.model, key_frames, times[picks], prompt)
        if answer is None:
            yield [], np.zeros((0, 0, *size), dtype=bool)
            return
        batch: list[Frame] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == chunk:
                yield self._decode_chunk(answer, batch, times, clip_keys)
                batch = []
        if batch:
            yield self._decode_chunk(answer, batch, times, clip_keys)

    def _decode_chunk(
        self,
        answer: Any,
        batch: list[Frame],
        times: Any,
        clip_keys: Any,
    ) -> tuple[list[int], np.ndarray]:
        indices = [frame.index for frame in batch]
        masks = decode_video_frames(
            self.model, answer, [f.pixels for f in batch], times[indices], clip_keys
        )
        return indices, masks
