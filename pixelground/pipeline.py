"""The Python API: ``pixelground.load(preset)`` -> Pipeline with one method per task.

Image tasks return a GroundedResult, video tasks (``track``, ``segment_video``,
``caption_video``, ``describe_video``) a VideoResult. Backends load lazily, on the first task
that needs them, and parts of a preset that share a backend and checkpoint (Florence-2 as
detector and captioner) share one instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pixelground.backends.base import (
    DETECTION_THRESHOLD,
    CaptionInstructed,
    Phrase,
    VideoStreamer,
)
from pixelground.backends.presets import (
    PACKAGE_PREFIX,
    ROLES,
    Part,
    Preset,
    get_preset,
    package_checkpoint,
)
from pixelground.backends.registry import backend_class
from pixelground.backends.tiny import ensure_tiny
from pixelground.core.errors import CheckpointMissingError, InputError
from pixelground.core.media import ImageSource
from pixelground.core.prompts import Box, Point, Prompt
from pixelground.core.result import GroundedResult, VideoResult
from pixelground.tasks.chat import Chat
from pixelground.tasks.entity import EntitySegmentation
from pixelground.tasks.gcg import GroundedCaptioning
from pixelground.tasks.grounding import PhraseGrounding
from pixelground.tasks.referring import ReferringSegmentation
from pixelground.tasks.region import RegionUnderstanding
from pixelground.tasks.semseg import OpenVocabSegmentation
from pixelground.video.captions import VideoGroundedCaptioning
from pixelground.video.interactive import VideoPrompt, segment_video_interactive
from pixelground.video.keyframes import MATCH_IOU, OnFrame, VideoSource, as_frames
from pixelground.video.referring import STRATEGIES, ReferringVideoSegmentation
from pixelground.video.sa2va_video import supports_video
from pixelground.video.streaming import OnEvent, StreamingRegionCaptioning

log = logging.getLogger(__name__)

#: The parser compositional referring reads expressions with when a preset has none.
TEXT_PARSER = Part("textblob")


def _as_box(box: Box | Sequence[float] | None) -> Box | None:
    return None if box is None else Box.of(box)


def _as_point(point: Point | Sequence[float] | None) -> Point | None:
    return None if point is None else Point.of(point)


def build_part(part: Part, device: str | None = None, dtype: str | None = None) -> Any:
    """Instantiate one part: resolve ``tiny:NAME`` and ``package:NAME`` checkpoints, then call
    the backend class."""
    cls = backend_class(part.backend)
    options = dict(part.options)
    if part.checkpoint is None:
        return cls(**options)
    checkpoint = part.checkpoint
    if checkpoint.startswith("tiny:"):
        checkpoint = str(ensure_tiny(checkpoint.removeprefix("tiny:")))
    elif checkpoint.startswith(PACKAGE_PREFIX):
        checkpoint = str(package_checkpoint(checkpoint))
    return cls(checkpoint, device=device, dtype=dtype, **options)


class Pipeline:
    """A preset's backends plus one method per image task, each returning GroundedResult.

    Args:
        preset: a Preset (see pixelground.backends.presets).
        device: ``"auto"``/None (cuda, then mps, then cpu), ``"cpu"``, ``"cuda:0"``, ``"mps"``.
        dtype: ``"float32"``, ``"float16"``, ``"bfloat16"`` or None for the device default.
        backends: role -> an already built backend object, used instead of building the
            preset's part for that role (your own backend classes; fakes in unit tests).
    """

    def __init__(
        self,
        preset: Preset,
        device: str | None = None,
        dtype: str | None = None,
        backends: Mapping[str, Any] | None = None,
    ):
        self.preset = preset
        self.device = device
        self.dtype = dtype
        self.given = dict(backends or {})
        unknown = sorted(set(self.given) - set(ROLES))
        if unknown:
            raise InputError(f"unknown roles {unknown}; roles are: {', '.join(ROLES)}")
        self._instances: dict[tuple, Any] = {}

    def __repr__(self) -> str:
        return f"Pipeline(preset={self.preset.name!r}, device={self.device!r})"

    def backend(self, role: str) -> Any:
        """The loaded backend for ``role``, or None when the preset has no such part."""
        if role not in ROLES:
            raise InputError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}")
        if role in self.given:
            return self.given[role]
        part = self.preset.parts.get(role)
        if part is None:
            return None
        if part.key not in self._instances:
            try:
                self._instances[part.key] = build_part(part, self.device, self.dtype)
            except CheckpointMissingError as error:
                raise CheckpointMissingError(
                    f"{role} of preset {self.preset.name!r}: {error}"
                ) from error
        return self._instances[part.key]

    def require(self, role: str, task: str) -> Any:
        """The backend for ``role``; InputError naming the task when the preset has none."""
        backend = self.backend(role)
        if backend is None:
            raise InputError(
                f"{task} needs a {role}, and preset {self.preset.name!r} has none; use a preset "
                f"with one (pixelground presets lists them) or add one with --model {role}=SOURCE"
            )
        return backend

    def __getattr__(self, name: str) -> Any:
        if name in ROLES:
            return self.backend(name)
        raise AttributeError(name)

    def has(self, role: str) -> bool:
        """Whether the pipeline has a backend for ``role`` (without loading it)."""
        return role in self.given or role in self.preset.parts

    @property
    def meaningful(self) -> bool:
        """False for random-weight presets (their output means nothing)."""
        return self.preset.meaningful

    def _grounding(
        self,
        strategy: str = "detector",
        threshold: float = DETECTION_THRESHOLD,
        entity_options: dict[str, Any] | None = None,
    ):
        return PhraseGrounding(
            entity_options=entity_options,
            segmenter=self.require("segmenter", "phrase grounding"),
            parser=self.backend("parser"),
            detector=self.require("detector", "phrase grounding")
            if strategy == "detector"
            else None,
            scorer=self.require("scorer", "entity-first grounding")
            if strategy == "entity"
            else None,
            strategy=strategy,
            threshold=threshold,
            preset=self.preset.name,
        )

    def _finish(self, result: Any) -> Any:
        """Record the preset in a result's ``model`` (image or video); flag random weights."""
        result.model.setdefault("preset", self.preset.name)
        if not self.preset.meaningful:
            result.model["note"] = "random-weight models: this output is not meaningful"
        return result

    def segment(
        self,
        image: ImageSource,
        text: str,
        threshold: float = DETECTION_THRESHOLD,
        compose: bool | None = None,
    ) -> GroundedResult:
        """Referring segmentation: masks of what ``text`` refers to (may be none or several).

        ``compose`` (None: the preset's ``compose``, off in the built-in presets) answers
        ordinals, extremes, relations and sets from the preset's answers to their parts,
        split into instances (tasks/compose.py); the preset's parser reads them (textblob's
        when the preset has none).
        """
        compose = self.preset.compose if compose is None else bool(compose)
        grounding_model = self.backend("grounding_model")
        parser = self.backend("parser")
        if compose and parser is None:
            if TEXT_PARSER.key not in self._instances:
                self._instances[TEXT_PARSER.key] = build_part(TEXT_PARSER)
            parser = self._instances[TEXT_PARSER.key]
        task = ReferringSegmentation(
            segmenter=None if grounding_model else self.require("segmenter", "segment"),
            detector=None if grounding_model else self.require("detector", "segment"),
            referring_segmenter=grounding_model,
            parser=parser,
            threshold=threshold,
            preset=self.preset.name,
            compose=compose,
        )
        return self._finish(task(image, text))

    def ground(
        self,
        image: ImageSource,
        caption: str,
        strategy: str = "detector",
        threshold: float = DETECTION_THRESHOLD,
        entity_options: dict[str, Any] | None = None,
    ) -> GroundedResult:
        """Phrase grounding: each phrase of ``caption`` (``<p>``-marked or parsed) gets masks.

        ``entity_options`` (entity strategy) are EntitySegmentation settings, e.g.
        ``{"points_per_side": 8}``.
        """
        grounding = self._grounding(strategy, threshold, entity_options)
        return self._finish(grounding(image, caption))

    def caption(
        self,
        image: ImageSource,
        grounded: bool = False,
        detailed: bool = False,
        strategy: str = "detector",
    ) -> GroundedResult:
        """A caption of the image; with ``grounded`` its phrases are tied to masks."""
        task = GroundedCaptioning(
            captioner=self.backend("captioner"),
            grounding=self._grounding(strategy) if grounded and self.has("segmenter") else None,
            grounding_model=self.backend("grounding_model") if grounded else None,
            detailed=detailed,
            preset=self.preset.name,
        )
        return self._finish(task(image, grounded=grounded))

    def describe(
        self,
        image: ImageSource,
        box: Box | Sequence[float] | None = None,
        point: Point | Sequence[float] | None = None,
        mask: np.ndarray | None = None,
        *,
        detailed: bool = True,
    ) -> GroundedResult:
        """Region understanding: label, short caption and detailed caption of one region.

        ``detailed=False`` skips the detailed caption (one generation fewer per region).
        """
        task = RegionUnderstanding(
            captioner=self.require("captioner", "describe"),
            segmenter=self.backend("segmenter"),
            preset=self.preset.name,
            detailed=detailed,
        )
        return self._finish(task(image, box=_as_box(box), point=_as_point(point), mask=mask))

    def entities(self, image: ImageSource, **options: Any) -> GroundedResult:
        """Entity segmentation: class-agnostic, non-overlapping masks of everything."""
        segmenter = self.require("segmenter", "entity segmentation")
        task = EntitySegmentation(segmenter, preset=self.preset.name, **options)
        return self._finish(task(image))

    def semseg(
        self,
        image: ImageSource,
        classes: str | Sequence[str | Sequence[str]],
        mode: str = "dense",
        setting: str | None = None,
    ) -> GroundedResult:
        """Open-vocabulary semantic segmentation into ``classes`` (one region per class present).

        Args:
            mode: ``"dense"``, ``"entity"`` or ``"cass"`` (needs the preset's ``dino`` part).
            setting: cass mode's named setting (an official dataset config, e.g.
                ``"voc21"``); classes ``"@NAME"`` use that setting's class-name file.
        """
        task = OpenVocabSegmentation(
            scorer=self.require("scorer", "semantic segmentation"),
            segmenter=self.require("segmenter", "entity-mode semseg") if mode == "entity" else None,
            mode=mode,
            preset=self.preset.name,
            dino=self.require("dino", "cass-mode semseg") if mode == "cass" else None,
            cass_setting=setting,
        )
        return self._finish(task(image, classes))

    def chat(
        self,
        image: ImageSource,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        ground_answer: bool = True,
    ) -> GroundedResult:
        """Answer a question about the image; grounded phrases in the answer get masks."""
        grounding_model = self.backend("grounding_model")
        task = Chat(
            vlm=None if grounding_model else self.backend("vlm"),
            grounding=self._grounding() if ground_answer and not grounding_model else None,
            grounding_model=grounding_model,
            preset=self.preset.name,
        )
        return self._finish(task(image, question, history, ground_answer=ground_answer))

    # ------------------------------------------------------------------ video tasks
    # ``video`` is a video file, a folder of frames, a sequence of RGB (H, W, 3) arrays or an
    # opened FrameSource; ``**sampling`` (stride, fps, start, end, max_frames, frame_rate) picks
    # the frames of a path or arrays. ``on_frame`` is called with each propagated FrameTracks.

    def track(
        self,
        video: VideoSource,
        prompts: VideoPrompt | Sequence[VideoPrompt] = (),
        *,
        box: Box | Sequence[float] | None = None,
        point: Point | Sequence[float] | None = None,
        mask: np.ndarray | None = None,
        frame: int = 0,
        direction: str = "both",
        memory_frames: int | None = None,
        on_frame: OnFrame | None = None,
        **sampling: Any,
    ) -> VideoResult:
        """Interactive video segmentation: boxes, clicks or masks on any frames, tracked.

        ``box``/``point``/``mask`` on ``frame`` is one more object (a shorthand for one
        VideoPrompt). A track's earliest prompted frame defines it; its later prompts correct
        it. ``direction``: "both", "forward" or "backward" from the prompts.

        Returns:
            VideoResult (task "track"), track ids as given (new objects 1, 2, ...).
        """
        tracker = self._tracker()
        given = [prompts] if isinstance(prompts, VideoPrompt) else list(prompts)
        if box is not None or point is not None or mask is not None:
            prompt = Prompt(
                points=() if point is None else (Point.of(point),),
                box=None if box is None else Box.of(box),
                mask=None if mask is None else np.asarray(mask, dtype=bool),
            )
            given.append(VideoPrompt(frame, prompt))
        session = tracker.session(as_frames(video, **sampling), memory_frames=memory_frames)
        return self._finish(segment_video_interactive(session, given, direction, on_frame))

    def _tracker(self) -> Any:
        tracker = self.backend("video_segmenter")
        if tracker is None:
            raise InputError(f"preset {self.preset.name!r} has no video segmenter")
        return tracker

    def _video_model(
        self, strategy: str, usable: Callable[[Any], bool], kinds: str, wanted: bool = True
    ) -> Any:
        """The grounding model a video task's ``strategy`` picks (None: detector first)."""
        if strategy not in STRATEGIES:
            raise InputError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
        if strategy == "detector" or not wanted:
            return None
        model = self.backend("grounding_model")
        if model is not None and not usable(model):
            model = None
        if model is None and strategy == "end-to-end":
            raise InputError(f"preset {self.preset.name!r} has no end-to-end video model ({kinds})")
        return model

    def segment_video(
        self,
        video: VideoSource,
        expression: str,
        *,
        key_frames: int = 5,
        redetect_every: int | None = None,
        threshold: float = DETECTION_THRESHOLD,
        match_iou: float = MATCH_IOU,
        strategy: str = "auto",
        memory_frames: int | None = None,
        on_frame: OnFrame | None = None,
        **sampling: Any,
    ) -> VideoResult:
        """Referring video segmentation: every object ``expression`` names, tracked.

        Args:
            key_frames: frames sampled across the video to ground the expression on.
            redetect_every: detect again every N frames for objects that appear later.
            threshold: minimum detection score.
            match_iou: mask IoU at which a new detection is an already tracked object.
            strategy: "auto" (the preset's end-to-end video model when it has one: Sa2VA,
                or pixelground's own [SEG] model), "detector" or "end-to-end".
            memory_frames: memory bank size of the tracking session.

        Returns:
            VideoResult (task "segment"); see pixelground.video.referring.
        """
        model = self._video_model(
            strategy,
            lambda m: supports_video(m) or isinstance(m, VideoStreamer),
            "Sa2VA or pixelground's own [SEG] model",
        )
        tracker = self.backend("video_segmenter")
        if tracker is None and not isinstance(model, VideoStreamer):
            raise InputError(f"preset {self.preset.name!r} has no video segmenter")
        two_stage = model is None
        task = ReferringVideoSegmentation(
            tracker=tracker,
            detector=self.backend("detector") if two_stage else None,
            segmenter=self.backend("segmenter") if two_stage else None,
            parser=self.backend("parser") if two_stage else None,
            grounding_model=model,
            key_frames=key_frames,
            redetect_every=redetect_every,
            threshold=threshold,
            match_iou=match_iou,
            memory_frames=memory_frames,
            preset=self.preset.name,
        )
        return self._finish(task(as_frames(video, **sampling), expression, on_frame=on_frame))

    def caption_video(
        self,
        video: VideoSource,
        grounded: bool = True,
        *,
        caption: str | None = None,
        sample_frames: int = 4,
        merge: str = "consensus",
        detailed: bool = False,
        threshold: float = DETECTION_THRESHOLD,
        strategy: str = "auto",
        memory_frames: int | None = None,
        on_frame: OnFrame | None = None,
        **sampling: Any,
    ) -> VideoResult:
        """A caption of the video; with ``grounded`` its phrases are tracked through it.

        Args:
            caption: ground this caption (``<p>``-marked or plain) instead of writing one.
            sample_frames: frames sampled across the video.
            merge: how frame captions become one: "consensus" or "vlm".
            detailed: detailed frame captions.
            threshold: minimum detection score.
            strategy: "auto" (Sa2VA end to end when the preset has it), "detector" or
                "end-to-end".

        Returns:
            VideoResult (task "caption"); see pixelground.video.captions.
        """
        model = self._video_model(strategy, supports_video, "Sa2VA", grounded and caption is None)
        if grounded and model is None and not self.has("video_segmenter"):
            streamer = self.backend("grounding_model")
            if isinstance(streamer, VideoStreamer) and isinstance(streamer, CaptionInstructed):
                frames = as_frames(video, **sampling)
                return self._finish(self._caption_then_track(streamer, frames, caption, on_frame))
        two_stage = model is None
        writes = two_stage and caption is None
        needs_vlm = merge == "vlm" or not self.has("captioner")
        task = VideoGroundedCaptioning(
            tracker=self.backend("video_segmenter") if grounded else None,
            captioner=self.backend("captioner") if writes else None,
            vlm=self.backend("vlm") if writes and needs_vlm else None,
            detector=self.backend("detector") if grounded and two_stage else None,
            segmenter=self.backend("segmenter") if grounded and two_stage else None,
            parser=self.backend("parser") if grounded and two_stage else None,
            grounding_model=model,
            sample_frames=sample_frames,
            merge=merge,
            detailed=detailed,
            threshold=threshold,
            memory_frames=memory_frames,
            preset=self.preset.name,
        )
        frames = as_frames(video, **sampling)
        return self._finish(task(frames, grounded=grounded, caption=caption, on_frame=on_frame))

    def _caption_then_track(
        self, model: Any, frames: Any, caption: str | None, on_frame: OnFrame | None
    ) -> VideoResult:
        """Grounded video caption with a model that tracks expressions itself (``shapes``):
        its grounded caption of the middle frame, then each phrase segmented through the
        video as a referring expression."""
        middle = frames.read(len(frames) // 2)
        answer = model.ground(middle, model.gcg_prompt)
        text, phrases = answer.text, [p for p in answer.phrases if p.text.strip()]
        if caption is not None:
            text, phrases = caption, [Phrase(caption, 0, len(caption))]
        tracks = []
        for phrase in phrases:
            found = self.segment_video(
                frames, phrase.text, strategy="end-to-end", on_frame=on_frame
            )
            for track in found.tracks:
                track.id, track.phrase = len(tracks) + 1, phrase.text
                track.span = (phrase.start, phrase.end)
                tracks.append(track)
        return VideoResult(
            task="caption",
            video=frames.video_info(),
            text=text,
            tracks=tracks,
            model={
                "preset": self.preset.name,
                "strategy": "caption the middle frame, then segment each phrase through the video",
            },  # fmt: skip
        )

    def describe_video(
        self,
        video: VideoSource,
        *,
        frame: int = 0,
        box: Box | Sequence[float] | None = None,
        point: Point | Sequence[float] | None = None,
        mask: np.ndarray | None = None,
        clip_frames: int | None = 8,
        views: int = 3,
        on_frame: OnFrame | None = None,
        on_event: OnEvent | None = None,
        **sampling: Any,
    ) -> VideoResult:
        """Streaming region captions: one region (box, point or mask on ``frame``), tracked
        and described clip by clip (the preset's VLM, else its captioner).

        Args:
            clip_frames: frames per clip (None: one caption for the whole video).
            views: frames per clip shown to the model.
            on_event: called with each CaptionEvent as its clip is described.

        Returns:
            VideoResult (task "describe") with one track and its caption events.
        """
        tracker = self._tracker()
        vlm = self.backend("vlm")
        task = StreamingRegionCaptioning(
            tracker=tracker,
            vlm=vlm,
            captioner=self.backend("captioner") if vlm is None else None,
            clip_frames=clip_frames,
            views=views,
            preset=self.preset.name,
        )
        result = task(
            as_frames(video, **sampling),
            frame=frame,
            box=_as_box(box),
            point=_as_point(point),
            mask=mask,
            on_frame=on_frame,
            on_event=on_event,
        )
        return self._finish(result)


def load(
    preset: str = "auto", device: str | None = None, dtype: str | None = None, **overrides: str
) -> Pipeline:
    """Load a preset by name; override any role with a hub id or local directory.

    Args:
        preset: ``auto``, ``default``, ``quality``, ``sa2va-1b``, ``sa2va-4b``, ``shapes``,
            ``tiny``.
        device: torch device or ``auto``.
        dtype: torch dtype name or None.
        **overrides: role=source, e.g. ``segmenter="/models/sam2"`` or
            ``detector="owlv2:google/owlv2-base-patch16-ensemble"``.

    Returns:
        A Pipeline whose backends load on first use.
    """
    chosen = get_preset(preset)
    if overrides:
        chosen = chosen.with_overrides(overrides)
    return Pipeline(chosen, device=device, dtype=dtype)
