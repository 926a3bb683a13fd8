"""Referring video segmentation: every object an expression names, tracked through a video.

Two strategies, chosen by the backends given (as the image task does):

- **detector first** (Grounded-SAM-2 style): the expression is detected on ``key_frames``
  frames sampled evenly across the video (not only frame 0); tracks start on the key frame
  whose best detection scores highest, from the image segmenter's masks of the kept boxes, and
  SAM2's tracking session propagates them forward and backward. A singular expression keeps
  one object; a plural or quantified one ("all swans", "two dogs") keeps every box after NMS
  and also looks at the other key frames. With ``redetect_every=N`` the expression is
  detected again on every N-th frame: a detection whose mask overlaps no current track
  (IoU below ``match_iou``) is a newly appearing instance and gets a new track, propagated both
  ways; one that overlaps a track is the same object and is dropped, so nothing is tracked
  twice. Track ids are 1, 2, ... in the order tracks start, and never change.
- **end to end** (Sa2VA): the key frames go to Sa2VA together (its language model sees them
  all), its masks on them become mask prompts of one track per ``[SEG]``, propagated through
  the whole video by the bounded-memory session (see :mod:`pixelground.video.sa2va_video`).
  A grounding model that decodes every frame itself (pixelground's own [SEG]-token model,
  ``stream_video_expression``) needs no tracker: each ``[SEG]`` it writes is one track,
  decoded chunk by chunk as the video streams.

    result = pixelground.load("default").segment_video("clip.mp4", "the black swan")
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelground.backends.base import (
    DETECTION_THRESHOLD,
    Detector,
    Parser,
    Segmenter,
    VideoStreamer,
)
from pixelground.backends.sam2_video import FrameTracks, TrackMask
from pixelground.core.errors import InputError
from pixelground.core.frames import FrameSource
from pixelground.core.prompts import Prompt
from pixelground.core.result import Track, VideoResult
from pixelground.tasks.common import clean_text, model_info, wants_many
from pixelground.video.keyframes import (
    MATCH_IOU,
    Candidate,
    KeyFrameGrounder,
    OnFrame,
    VideoSource,
    as_frames,
    candidates,
    key_frame_indices,
    masks_on,
    read_frames,
    record_start,
    run_session,
    unmatched,
)
from pixelground.video.sa2va_video import segment_video_frames, supports_video

log = logging.getLogger(__name__)

TASK = "segment"
STRATEGIES = ("auto", "detector", "end-to-end")


@dataclass
class ReferringVideoSegmentation:
    """Segment and track what a referring expression names in a video.

    Attributes:
        tracker: SAM2 video tracker (``Sam2VideoTracker``; anything with ``session(frames)``);
            may be None when the grounding model decodes every frame itself.
        detector: boxes the expression on frames (detector-first strategy).
        segmenter: turns boxes into masks on the start frame; without one, boxes are given to
            the tracker directly.
        parser: tells singular from plural expressions.
        grounding_model: a Sa2VA backend, or a model with ``stream_video_expression``; when
            given, the end-to-end strategy is used.
        key_frames: frames sampled across the video to ground the expression on.
        redetect_every: detect again every N frames to find instances that appear later
            (None: key frames only).
        threshold: minimum detection score.
        match_iou: mask IoU at or above which a detection is an already tracked object.
        memory_frames: memory bank size of the tracking session (None: the model's).
        preset: preset name recorded in results.
    """

    tracker: Any
    detector: Detector | None = None
    segmenter: Segmenter | None = None
    parser: Parser | None = None
    grounding_model: Any = None
    key_frames: int = 5
    redetect_every: int | None = None
    threshold: float = DETECTION_THRESHOLD
    match_iou: float = MATCH_IOU
    memory_frames: int | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.tracker is None and not streams_video(self.grounding_model):
            raise InputError("referring video segmentation needs a video tracker (SAM2 video)")
        if self.grounding_model is not None and not (
            supports_video(self.grounding_model) or streams_video(self.grounding_model)
        ):
            raise InputError(
                f"{type(self.grounding_model).__name__} cannot segment videos end to end; "
                "use the detector strategy"
            )
        if self.grounding_model is None and self.detector is None:
            raise InputError(
                "referring video segmentation needs a detector (or a Sa2VA grounding model)"
            )
        key_frame_indices(1, self.key_frames)  # validates the count
        if self.redetect_every is not None and (
            int(self.redetect_every) != self.redetect_every or self.redetect_every < 1
        ):
            raise InputError(
                f"redetect_every must be a whole number >= 1, got {self.redetect_every}"
            )

    @property
    def strategy(self) -> str:
        return "end-to-end" if self.grounding_model is not None else "detector"

    def __call__(
        self, video: VideoSource, expression: str, on_frame: OnFrame | None = None
    ) -> VideoResult:
        """Segment ``expression`` in every frame of ``video``.

        Args:
            video: video file, folder of frames, RGB frames, or a FrameSource.
            expression: e.g. "the black swan", "all the dogs".
            on_frame: called with each propagated FrameTracks (progress).

        Returns:
            VideoResult (task "segment"), text = the expression; one Track per object with
            phrase = expression, span = the whole text, score = its detection score (1.0 end
            to end), per-frame masks (absent frames omitted) and attributes ``start_frame``,
            ``origin`` ("key frame", "re-detection" or "sa2va"), ``presence`` (mean presence
            score) and ``prompt_frames``. No track is the "no target" answer.
        """
        text = clean_text(expression, "expression")
        frames = as_frames(video)
        indices = key_frame_indices(len(frames), self.key_frames)
        if streams_video(self.grounding_model):
            indices = self.grounding_model.video_key_frames(len(frames))
            tracks = self._model_decoded(frames, text, on_frame)
        elif self.grounding_model is not None:
            tracks = self._end_to_end(frames, text, indices, on_frame)
        else:
            tracks = self._detector_first(frames, text, indices, on_frame)
        for track in tracks:
            track.phrase, track.span = text, (0, len(text))
        return VideoResult(
            task=TASK,
            video=frames.video_info(),
            text=text,
            tracks=tracks,
            model=self._model_info(indices),
        )

    # ----------------------------------------------------------------- detector first
    def _detector_first(
        self, frames: FrameSource, text: str, indices: list[int], on_frame: OnFrame | None
    ) -> list[Track]:
        many = wants_many(text, self.parser)
        limit = None if many else 1
        grounder = KeyFrameGrounder(frames, self.detector, [text], [many], self.threshold)
        grounding = grounder.best(indices)[0]
        tracks: list[Track] = []
        if grounding is not None:
            log.info(
                "grounded %r on key frame %d (score %.3f)", text, grounding.frame, grounding.score
            )
            pixels = grounder.frame(grounding.frame)
            found = unmatched(
                candidates(self.segmenter, pixels, grounding.frame, grounding.detections),
                [],
                self.match_iou,
            )
            tracks = self._track(frames, found[:limit], 1, "key frame", on_frame)
        grounder.pixels.clear()  # frames are read again if re-detection needs them
        checks = self.check_frames(
            len(frames), indices, many, grounding.frame if grounding else None
        )
        for frame in checks:
            if limit is not None and len(tracks) >= limit:
                break
            fresh = self._new_instances(grounder, frame, tracks)
            grounder.forget(frame)
            if limit is not None:
                fresh = fresh[: limit - len(tracks)]
            if fresh:
                next_id = max((t.id for t in tracks), default=0) + 1
                origin = "key frame" if frame in indices else "re-detection"
                tracks += self._track(frames, fresh, next_id, origin, on_frame)
        return tracks

    def check_frames(
        self, num_frames: int, indices: Sequence[int], many: bool, start: int | None
    ) -> list[int]:
        """Frames to look for instances not tracked yet, in time order.

        Every ``redetect_every``-th frame, plus the other key frames for a multi-target
        expression; never the frame the first tracks started on (``start``), nor key frames
        when none of them had a detection (``start`` None).
        """
        every = self.redetect_every
        frames = set(range(0, num_frames, int(every))) if every is not None else set()
        if start is None:
            return sorted(frames - set(indices))
        if many:
            frames |= set(indices)
        frames.discard(start)
        return sorted(frames)

    def _new_instances(
        self, grounder: KeyFrameGrounder, frame: int, tracks: list[Track]
    ) -> list[Candidate]:
        detections = grounder.detections(frame)[0]
        if not detections:
            return []
        found = candidates(self.segmenter, grounder.frame(frame), frame, detections)
        fresh = unmatched(found, masks_on(tracks, frame), self.match_iou)
        if fresh:
            log.info("re-detection: %d new instance(s) on frame %d", len(fresh), frame)
        return fresh

    def _track(
        self,
        frames: FrameSource,
        found: Sequence[Candidate],
        first_id: int,
        origin: str,
        on_frame: OnFrame | None,
    ) -> list[Track]:
        """Start one track per candidate in a new session and propagate them both ways."""
        if not found:
            return []
        session = self.tracker.session(frames, memory_frames=self.memory_frames)
        started = {}
        for offset, candidate in enumerate(found):
            track_id, _ = session.add_prompt(
                candidate.frame, candidate.prompt(), track_id=first_id + offset
            )
            started[track_id] = candidate
        tracks = run_session(session, on_frame)
        record_start(tracks, started, origin=origin)
        return tracks

    # ----------------------------------------------------------------- end to end
    def _end_to_end(
        self, frames: FrameSource, text: str, indices: list[int], on_frame: OnFrame | None
    ) -> list[Track]:
        pixels = read_frames(frames, indices)
        stacks = segment_video_frames(self.grounding_model, [pixels[i] for i in indices], text)
        del pixels
        return track_mask_stacks(
            self.tracker, frames, indices, stacks, on_frame, self.memory_frames
        )

    def _model_decoded(
        self, frames: FrameSource, text: str, on_frame: OnFrame | None
    ) -> list[Track]:
        """One track per [SEG] of a model that decodes every frame (ids 1, 2, ... in order)."""
        tracks: list[Track] = []
        for indices, masks in self.grounding_model.stream_video_expression(frames, text):
            while len(tracks) < len(masks):
                tracks.append(Track(id=len(tracks) + 1, attributes={"origin": "model"}))
            for j, index in enumerate(indices):
                for track, stack in zip(tracks, masks, strict=True):
                    track.add(index, stack[j])
                if on_frame is not None:
                    on_frame(
                        FrameTracks(
                            index,
                            frames.source_index(index),
                            {
                                t.id: TrackMask(stack[j], 1.0)
                                for t, stack in zip(tracks, masks, strict=True)
                            },
                        )
                    )
        kept = [track for track in tracks if track.frames]
        for new_id, track in enumerate(kept, start=1):
            visible = sorted(track.frames)
            track.id = new_id
            track.attributes.update(
                {"start_frame": visible[0], "presence": len(visible) / max(len(frames), 1)}
            )
        return kept

    def _model_info(self, indices: list[int]) -> dict[str, Any]:
        end_to_end = self.grounding_model is not None
        info = model_info(
            self.preset,
            grounding_model=self.grounding_model,
            detector=None if end_to_end else self.detector,
            segmenter=None if end_to_end else self.segmenter,
            parser=None if end_to_end else self.parser,
            video_segmenter=self.tracker,
        )
        info.update({"strategy": self.strategy, "key_frames": list(indices)})
        if self.redetect_every is not None and not end_to_end:
            info["redetect_every"] = int(self.redetect_every)
        return info


def streams_video(backend: Any) -> bool:
    """Whether ``backend`` decodes every frame of a streamed video itself (our [SEG] model)."""
    return isinstance(backend, VideoStreamer)


def track_mask_stacks(
    tracker: Any,
    frames: FrameSource,
    indices: Sequence[int],
    stacks: Sequence[np.ndarray],
    on_frame: OnFrame | None = None,
    memory_frames: int | None = None,
) -> list[Track]:
    """Track objects given by masks on key frames: one track per (K, H, W) stack.

    Each stack's non-empty masks become mask prompts on their key frames (the first defines
    the track, the others correct it); stacks empty on every key frame start no track.

    Returns:
        Tracks with ids 1, 2, ... in stack order (skipping empty stacks), score 1.0 and
        attributes ``origin`` = "sa2va", ``start_frame`` and ``presence``.
    """
    usable = [s for s in stacks if np.asarray(s).any()]
    if not usable:
        return []
    session = tracker.session(frames, memory_frames=memory_frames)
    for track_id, stack in enumerate(usable, start=1):
        for frame, mask in zip(indices, stack, strict=True):
            if mask.any():
                session.add_prompt(int(frame), Prompt(mask=np.asarray(mask, dtype=bool)), track_id)
    tracks = run_session(session, on_frame)
    for track in tracks:
        prompt_frames = track.attributes.get("prompt_frames") or [None]
        track.attributes.update(
            {"origin": "sa2va", "start_frame": prompt_frames[0], "presence": track.score}
        )
        track.score = 1.0
    return tracks
