"""Streaming region captions, as Perceive Anything does for videos.

A region given on one frame (a box, a click or a mask) is tracked through the video with the
SAM2 tracking session; the video is then cut into clips of ``clip_frames`` frames and the
region is described clip by clip, in time order. For each clip where the object is visible,
``views`` frames spread over the clip are cropped around the object (everything outside its
mask greyed, as region captioners expect) and tiled left to right into one image. A VLM
describes the clip *given the previous clip's caption* (it is quoted in the prompt, so each
caption continues the story and says what changed); the first clip has no previous caption.
With only a captioner (no chat model) the clip's middle view is described by
``describe_region`` without that context. Consecutive clips with the same caption merge into
one event. Every clip's caption is a CaptionEvent with its frame range, as it is produced
(``on_event``), so a caller can show them while the rest of the video is described.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelground.backends.base import VLM, Captioner
from pixelground.core.errors import InputError
from pixelground.core.frames import FrameSource
from pixelground.core.prompts import Box, Point, Prompt
from pixelground.core.result import CaptionEvent, Track, VideoResult
from pixelground.tasks.association import mask_crops
from pixelground.tasks.common import model_info
from pixelground.video.keyframes import OnFrame, VideoSource, as_frames, run_session
from pixelground.video.keyframes import storyboard as tile

log = logging.getLogger(__name__)

TASK = "describe"
TRACK_ID = 1
FIRST_PROMPT = (
    "The images show one object at {count} moments of a video clip, in time order from left "
    "to right; everything but the object is greyed out. Describe the object and what it is "
    "doing, in one sentence."
)
NEXT_PROMPT = (
    'Earlier in the video: "{previous}"\n'
    "The images show the same object at {count} later moments, in time order from left to "
    "right; everything but the object is greyed out. Describe what it is doing now, in one "
    "sentence, saying what changed."
)
OnEvent = Callable[[CaptionEvent], None]


def clip_ranges(num_frames: int, clip_frames: int | None) -> list[tuple[int, int]]:
    """[start, end] (inclusive) frame ranges of consecutive clips; None: one clip for all."""
    if clip_frames is None:
        return [(0, num_frames - 1)] if num_frames else []
    if int(clip_frames) != clip_frames or clip_frames < 1:
        raise InputError(f"clip_frames must be a whole number >= 1, got {clip_frames}")
    step = int(clip_frames)
    return [(s, min(s + step, num_frames) - 1) for s in range(0, num_frames, step)]


def spread(values: list[int], count: int) -> list[int]:
    """Up to ``count`` items of ``values`` spread evenly (first and last included)."""
    if len(values) <= count:
        return list(values)
    picks = np.linspace(0, len(values) - 1, count)
    return [values[int(round(p))] for p in picks]


@dataclass
class StreamingRegionCaptioning:
    """Track one region and describe it clip by clip, each caption conditioned on the last.

    Attributes:
        tracker: SAM2 video tracker (``Sam2VideoTracker``).
        vlm: describes each clip's tiled crops, given the previous caption.
        captioner: used when there is no VLM (``describe_region``, no conditioning).
        clip_frames: frames per clip; None describes the whole video as one clip.
        views: frames per clip shown to the model.
        margin: context kept around the object's box in the crops (fraction of its size).
        memory_frames: memory bank size of the tracking session.
        preset: preset name recorded in results.
    """

    tracker: Any
    vlm: VLM | None = None
    captioner: Captioner | None = None
    clip_frames: int | None = 8
    views: int = 3
    margin: float = 0.15
    memory_frames: int | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.tracker is None:
            raise InputError("streaming region captions need a video tracker (SAM2 video)")
        if self.vlm is None and self.captioner is None:
            raise InputError("streaming region captions need a VLM or a captioner")
        if int(self.views) != self.views or self.views < 1:
            raise InputError(f"views must be a whole number >= 1, got {self.views}")
        clip_ranges(1, self.clip_frames)  # validates clip_frames

    def __call__(
        self,
        video: VideoSource,
        frame: int = 0,
        box: Box | None = None,
        point: Point | None = None,
        mask: np.ndarray | None = None,
        on_frame: OnFrame | None = None,
        on_event: OnEvent | None = None,
    ) -> VideoResult:
        """Describe the region given by exactly one of ``box``, ``point`` or ``mask`` on ``frame``.

        Args:
            video: video file, folder of frames, RGB frames, or a FrameSource.
            frame: sampled frame index of the prompt.
            box: xyxy box in pixels.
            point: a click on the object.
            mask: (H, W) bool mask of the object.
            on_frame: progress callback while tracking.
            on_event: called after each described clip with the event it created or extended.

        Returns:
            VideoResult (task "describe"): one track (id 1) with the object's masks; events =
            the clip captions with [start_frame, end_frame] ranges, track_id 1; text = the
            captions joined in time order.
        """
        given = [v is not None for v in (box, point, mask)]
        if sum(given) != 1:
            raise InputError("describe needs exactly one of a box, a point or a mask")
        prompt = Prompt(
            points=(point,) if point is not None else (),
            box=box,
            mask=None if mask is None else np.asarray(mask, dtype=bool),
        )
        frames = as_frames(video)
        session = self.tracker.session(frames, memory_frames=self.memory_frames)
        session.add_prompt(int(frame), prompt, track_id=TRACK_ID)
        track = run_session(session, on_frame)[0]
        track.attributes["prompt"] = {"frame": int(frame), **_prompt_dict(box, point, mask)}
        events = self.describe_track(frames, track, on_event)
        return VideoResult(
            task=TASK,
            video=frames.video_info(),
            text=" ".join(e.text for e in events),
            tracks=[track],
            events=events,
            model=self._model_info(),
        )

    def describe_track(
        self, frames: FrameSource, track: Track, on_event: OnEvent | None = None
    ) -> list[CaptionEvent]:
        """Caption a tracked object clip by clip, in time order (see the module docstring)."""
        events: list[CaptionEvent] = []
        previous: str | None = None
        for start, end in clip_ranges(len(frames), self.clip_frames):
            present = [f for f in range(start, end + 1) if f in track.frames]
            if not present:
                continue
            chosen = spread(present, int(self.views))
            text = self.describe_clip(frames, track, chosen, previous)
            if not text:
                log.warning("no caption for frames %d-%d", start, end)
                continue
            last = events[-1] if events else None
            if last is not None and last.text == text and last.end_frame >= start - 1:
                last.end_frame = end
                event = last
            else:
                event = CaptionEvent(start, end, text, track_id=track.id)
                events.append(event)
            previous = text
            if on_event is not None:
                on_event(event)
        return events

    def describe_clip(
        self, frames: FrameSource, track: Track, chosen: list[int], previous: str | None
    ) -> str:
        """One clip's caption from the object on frames ``chosen`` (sorted sampled indices)."""
        wanted = set(chosen)
        pixels = {
            f.index: f.pixels for f in frames.frames(chosen[0], chosen[-1] + 1) if f.index in wanted
        }
        if self.vlm is None:
            middle = chosen[len(chosen) // 2]
            box = track.frames[middle].box
            return self.captioner.describe_region(pixels[middle], box, detailed=True).strip()
        crops = [mask_crops(pixels[f], [track.frames[f].mask], self.margin)[0] for f in chosen]
        board = tile(crops, columns=len(crops), height=min(384, max(c.shape[0] for c in crops)))
        if previous is None:
            question = FIRST_PROMPT.format(count=len(chosen))
        else:
            question = NEXT_PROMPT.format(count=len(chosen), previous=previous)
        return self.vlm.chat(board, question).strip()

    def _model_info(self) -> dict[str, Any]:
        info = model_info(
            self.preset,
            vlm=self.vlm,
            captioner=None if self.vlm is not None else self.captioner,
            video_segmenter=self.tracker,
        )
        return info | {"clip_frames": self.clip_frames, "views": int(self.views)}


def _prompt_dict(box: Box | None, point: Point | None, mask: np.ndarray | None) -> dict[str, Any]:
    if box is not None:
        return {"box": [float(box.x0), float(box.y0), float(box.x1), float(box.y1)]}
    if point is not None:
        return {"point": [float(point.x), float(point.y)]}
    return {"mask": True}
