"""Video grounded captions: a caption of the video whose phrases are tracked through it.

1. **Caption** from ``sample_frames`` frames spread across the video. With a captioner
   (Florence-2) each sampled frame is captioned and the captions are merged: ``"consensus"``
   keeps the caption that agrees most with the others (content-word overlap), ``"vlm"`` asks
   the VLM to write one sentence from them. Without a captioner the VLM sees the sampled
   frames tiled in one image (in order) and describes the video. A caption can also be given
   (``<p>``-marked or plain), which makes this video phrase grounding.
2. **Ground** the caption's phrases (``<p>`` marks, else the parser's noun phrases): each
   phrase is detected on the sampled frames and starts tracks on the frame where it scores
   highest (plural phrases keep every box after NMS), masks from the image segmenter.
3. **Track** all phrases' objects in one SAM2 tracking session, forward and backward.

With a Sa2VA grounding model the sampled frames go to Sa2VA with its GCG instruction; its
answer is the caption and each phrase's masks on the sampled frames start its track.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelground.backends.base import (
    DETECTION_THRESHOLD,
    VLM,
    Captioner,
    Detector,
    Parser,
    Phrase,
    Segmenter,
)
from pixelground.core.errors import InputError
from pixelground.core.frames import FrameSource
from pixelground.core.result import CaptionEvent, Track, VideoResult
from pixelground.tasks.common import clean_text, model_info, parse_marked_phrases, wants_many
from pixelground.video.keyframes import (
    MATCH_IOU,
    KeyFrameGrounder,
    OnFrame,
    VideoSource,
    as_frames,
    candidates,
    key_frame_indices,
    read_frames,
    record_start,
    run_session,
    storyboard,
    unmatched,
)
from pixelground.video.referring import track_mask_stacks
from pixelground.video.sa2va_video import VIDEO_GCG_PROMPT, ground_video

log = logging.getLogger(__name__)

TASK = "caption"
MERGES = ("consensus", "vlm")
VIDEO_PROMPT = (
    "These are {count} frames of one video, in time order from left to right and top to "
    "bottom. Describe what happens in the video in one sentence."
)
MERGE_PROMPT = (
    "Descriptions of {count} frames of one video, in time order:\n{captions}\n"
    "Write one sentence that describes the whole video."
)
_STOP_WORDS = frozenset(
    "a an the of in on at to and with is are there this that it its image picture photo".split()
)


def consensus_caption(captions: Sequence[str]) -> str:
    """The caption sharing the most content words with the others (ties: more words, earlier).

    Empty captions are ignored; all empty gives "".
    """
    texts = [c.strip() for c in captions if c and c.strip()]
    if not texts:
        return ""
    words = [set(re.findall(r"[a-z]+", t.lower())) - _STOP_WORDS for t in texts]

    def agreement(i: int) -> float:
        return sum(
            len(words[i] & words[j]) / max(len(words[i] | words[j]), 1)
            for j in range(len(texts))
            if j != i
        )

    best = max(range(len(texts)), key=lambda i: (agreement(i), len(words[i]), -i))
    return texts[best]


@dataclass
class VideoGroundedCaptioning:
    """Caption a video from sampled frames; optionally ground and track the caption's phrases.

    Attributes:
        tracker: SAM2 video tracker (needed for grounded captions).
        captioner: captions single frames (Florence-2, a VLM).
        vlm: merges frame captions (``merge="vlm"``), or captions tiled frames without a
            captioner.
        detector: boxes phrases on the sampled frames.
        segmenter: turns boxes into masks; without one, boxes go to the tracker.
        parser: finds noun phrases in the caption.
        grounding_model: a Sa2VA backend; when given, it writes and grounds the caption.
        sample_frames: frames sampled across the video for captioning and grounding.
        merge: "consensus" or "vlm".
        detailed: ask the captioner for detailed frame captions.
        threshold: minimum detection score.
        match_iou: mask IoU at which two boxes of one phrase are the same object.
        memory_frames: memory bank size of the tracking session.
        preset: preset name recorded in results.
    """

    tracker: Any = None
    captioner: Captioner | None = None
    vlm: VLM | None = None
    detector: Detector | None = None
    segmenter: Segmenter | None = None
    parser: Parser | None = None
    grounding_model: Any = None
    sample_frames: int = 4
    merge: str = "consensus"
    detailed: bool = False
    threshold: float = DETECTION_THRESHOLD
    match_iou: float = MATCH_IOU
    memory_frames: int | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.merge not in MERGES:
            raise InputError(f"unknown merge {self.merge!r}; use one of {', '.join(MERGES)}")
        key_frame_indices(1, self.sample_frames)  # validates the count

    def __call__(
        self,
        video: VideoSource,
        grounded: bool = True,
        caption: str | None = None,
        on_frame: OnFrame | None = None,
    ) -> VideoResult:
        """Caption ``video`` (or take ``caption``) and, if ``grounded``, track its phrases.

        Args:
            video: video file, folder of frames, RGB frames, or a FrameSource.
            grounded: ground and track the caption's phrases.
            caption: a caption to ground instead of writing one (``<p>`` marks phrases).
            on_frame: progress callback, called with each propagated FrameTracks.

        Returns:
            VideoResult (task "caption"): text = the caption; with ``grounded`` one Track per
            grounded object with phrase, span ([start, end) into the text) and score (its
            detection score); events = the frame captions it was merged from, if any.
        """
        frames = as_frames(video)
        indices = key_frame_indices(len(frames), self.sample_frames)
        pixels = read_frames(frames, indices)
        if grounded and caption is None and self.grounding_model is not None:
            return self._end_to_end(frames, indices, pixels, on_frame)
        events: list[CaptionEvent] = []
        if caption is None:
            caption, events = self.caption_frames(pixels)
        else:
            caption = clean_text(caption, "caption")
        text, phrases = parse_marked_phrases(caption)
        tracks: list[Track] = []
        if grounded:
            if not phrases and self.parser is not None and text.strip():
                phrases = self.parser.noun_phrases(text)
            if not phrases:
                log.warning("no phrase to ground in the caption %r", text)
            tracks = self._ground(frames, indices, pixels, phrases, on_frame)
        return VideoResult(
            task=TASK,
            video=frames.video_info(),
            text=text,
            tracks=tracks,
            events=events,
            model=self._model_info(grounded, end_to_end=False),
        )

    # ----------------------------------------------------------------- captioning
    def caption_frames(self, pixels: dict[int, np.ndarray]) -> tuple[str, list[CaptionEvent]]:
        """One caption from the sampled frames, and the per-frame captions as events.

        Args:
            pixels: sampled frame index -> RGB (H, W, 3).
        """
        order = sorted(pixels)
        if self.captioner is None:
            if self.vlm is None:
                raise InputError("captioning a video needs a captioner or a VLM in the preset")
            board = storyboard([pixels[i] for i in order])
            return self.vlm.chat(board, VIDEO_PROMPT.format(count=len(order))).strip(), []
        captions = [
            self.captioner.caption(pixels[i], detailed=self.detailed).strip() for i in order
        ]
        events = [CaptionEvent(i, i, c) for i, c in zip(order, captions, strict=True) if c]
        merged = ""
        if self.merge == "vlm" and self.vlm is not None and any(captions):
            listing = "\n".join(f"{n}. {c}" for n, c in enumerate(captions, start=1) if c)
            board = storyboard([pixels[i] for i in order])
            merged = self.vlm.chat(
                board, MERGE_PROMPT.format(count=len(order), captions=listing)
            ).strip()
        return merged or consensus_caption(captions), events

    # ----------------------------------------------------------------- grounding
    def _ground(
        self,
        frames: FrameSource,
        indices: list[int],
        pixels: dict[int, np.ndarray],
        phrases: Sequence[Phrase],
        on_frame: OnFrame | None,
    ) -> list[Track]:
        if not phrases:
            return []
        if self.detector is None or self.tracker is None:
            raise InputError("grounded video captions need a detector and a video tracker")
        many = [p.plural or wants_many(p.text, None) for p in phrases]
        grounder = KeyFrameGrounder(
            frames, self.detector, [p.text for p in phrases], many, self.threshold
        )
        grounder.pixels.update(pixels)
        session = self.tracker.session(frames, memory_frames=self.memory_frames)
        started: dict[int, tuple[Phrase, Any]] = {}
        for phrase, grounding in zip(phrases, grounder.best(indices), strict=True):
            if grounding is None:
                continue
            found = candidates(
                self.segmenter,
                grounder.frame(grounding.frame),
                grounding.frame,
                grounding.detections,
            )
            for candidate in unmatched(found, [], self.match_iou):
                track_id, _ = session.add_prompt(candidate.frame, candidate.prompt())
                started[track_id] = (phrase, candidate)
        if not started:
            return []
        tracks = run_session(session, on_frame)
        for track in tracks:
            phrase, _ = started[track.id]
            track.phrase, track.span = phrase.text, (phrase.start, phrase.end)
        record_start(tracks, {tid: candidate for tid, (_, candidate) in started.items()})
        return tracks

    def _end_to_end(
        self,
        frames: FrameSource,
        indices: list[int],
        pixels: dict[int, np.ndarray],
        on_frame: OnFrame | None,
    ) -> VideoResult:
        if self.tracker is None:
            raise InputError("grounded video captions need a video tracker")
        answer = ground_video(self.grounding_model, [pixels[i] for i in indices], VIDEO_GCG_PROMPT)
        kept = [
            (phrase, stack)
            for phrase, stack in zip(answer.phrases, answer.masks, strict=True)
            if phrase.text and stack.any()
        ]
        tracks = track_mask_stacks(
            self.tracker, frames, indices, [s for _, s in kept], on_frame, self.memory_frames
        )
        for track in tracks:
            phrase = kept[track.id - 1][0]
            track.phrase, track.span = phrase.text, (phrase.start, phrase.end)
        return VideoResult(
            task=TASK,
            video=frames.video_info(),
            text=answer.text,
            tracks=tracks,
            model=self._model_info(True, end_to_end=True) | {"raw": answer.raw},
        )

    def _model_info(self, grounded: bool, end_to_end: bool) -> dict[str, Any]:
        if end_to_end:
            return model_info(
                self.preset, grounding_model=self.grounding_model, video_segmenter=self.tracker
            )
        uses_vlm = self.captioner is None or self.merge == "vlm"
        backends: dict[str, Any] = {
            "captioner": self.captioner,
            "vlm": self.vlm if uses_vlm else None,
        }
        if grounded:
            backends.update(
                detector=self.detector,
                segmenter=self.segmenter,
                parser=self.parser,
                video_segmenter=self.tracker,
            )
        return model_info(self.preset, **backends) | {"sample_frames": self.sample_frames}
