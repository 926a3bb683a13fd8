"""Tracking objects through a video with SAM2's video model, in bounded memory.

``Sam2VideoTracker`` is the backend: transformers' Sam2VideoModel and Sam2VideoProcessor, loaded
once (hub id or local directory). ``Sam2VideoTracker.session(frames)`` opens a ``TrackingSession``
over a streamed FrameSource:

- ``add_prompt(frame, Prompt(...), track_id=None)`` adds an object from points (positive and
  negative), a box, or a mask on any frame, or refines an existing track there. The first
  frame a track is prompted on is its anchor; prompts on other frames are corrections, which
  SAM2 computes with the track's memory and keeps as extra conditioning frames.
- ``propagate("both")`` runs forward from the earliest prompted frame to the end, then
  backward from the latest first-prompt frame to frame 0, yielding ``FrameTracks`` per frame.
  A track's frames after its first prompt come from the forward pass, those before it from
  the backward pass (so a frame can be yielded twice, each time for different tracks).

Memory stays flat however long the video is. Frames are streamed to the model one at a time
(transformers' streaming mode: the inference session is created without the video); after
each frame the pixel tensor and the cached vision features are dropped, and of the
per-frame outputs the session keeps only what SAM2 reads again: every conditioning (prompted)
frame, the memory features of the last ``num_maskmem - 1`` frames, and the object pointers
of the last ``max_object_pointers_in_encoder - 1`` frames. Transformers' default session
keeps all of them (and every frame's pixels), so its memory grows with the video.

Track ids are ints the session assigns (1, 2, ...) or the caller chooses; they are kept apart
from the model's object ids and never change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from pixelground.backends.loading import load_pretrained, select_device, select_dtype
from pixelground.core.errors import InputError, require
from pixelground.core.frames import FrameSource
from pixelground.core.prompts import Box, Point, Prompt

log = logging.getLogger(__name__)

DIRECTIONS = ("forward", "backward", "both")
#: Output entries SAM2 never reads again once the frame is done.
_DROP_ALWAYS = ("high_res_masks",)
_POINTER_KEYS = ("object_pointer", "object_score_logits")


class TrackMask(NamedTuple):
    """One track on one frame; unpacks as ``mask, score``.

    Attributes:
        mask: bool (H, W) at the video's size; all False when the object is not visible.
        score: the model's probability that the object is present, in [0, 1].
    """

    mask: np.ndarray
    score: float


@dataclass
class FrameTracks:
    """Tracks computed on one frame: track id -> TrackMask."""

    index: int
    source_index: int
    tracks: dict[int, TrackMask]


@dataclass
class _TrackPrompt:
    box: Box | None = None
    points: tuple[Point, ...] = ()
    mask: np.ndarray | None = None

    def merged(self, prompt: Prompt) -> _TrackPrompt:
        """This frame's accumulated prompt after ``prompt``: masks and boxes replace, clicks add."""
        if prompt.mask is not None and (prompt.points or prompt.box is not None):
            raise InputError("SAM2 takes a mask prompt alone: drop the clicks or the box")
        if prompt.mask is not None:
            return _TrackPrompt(mask=np.asarray(prompt.mask, dtype=bool))
        if prompt.box is not None:
            return _TrackPrompt(box=prompt.box, points=tuple(prompt.points))
        return _TrackPrompt(box=self.box, points=self.points + tuple(prompt.points))


class Sam2VideoTracker:
    """SAM2's video model + processor on a device; opens tracking sessions over frame sources.

    Args:
        checkpoint: hub id (e.g. ``facebook/sam2.1-hiera-tiny``) or a local directory holding
            a Sam2VideoModel and its Sam2VideoProcessor.
        device: None/"auto" picks cuda, then mps, then cpu.
        dtype: None/"auto" picks float16 on GPUs and float32 on cpu.

    Attributes:
        model: the transformers Sam2VideoModel (eval mode).
        processor: its Sam2VideoProcessor.
        device: torch device string.
        dtype: torch dtype of weights and session state.
        info: {"class", "checkpoint", "device"}.

    Raises:
        CheckpointMissingError: the checkpoint is not local, not cached and the hub is offline.
    """

    def __init__(
        self,
        checkpoint: str = "facebook/sam2.1-hiera-tiny",
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        transformers = require("transformers", "models")
        self.device = select_device(device)
        self.dtype = select_dtype(self.device, dtype)
        model = load_pretrained(transformers.Sam2VideoModel, checkpoint)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.processor = load_pretrained(transformers.Sam2VideoProcessor, checkpoint)
        self.info = {
            "class": "Sam2VideoTracker",
            "checkpoint": str(checkpoint),
            "device": self.device,
        }

    def session(self, frames: FrameSource, memory_frames: int | None = None) -> TrackingSession:
        """A new tracking session over ``frames`` (see TrackingSession)."""
        return TrackingSession(self, frames, memory_frames=memory_frames)


class TrackingSession:
    """Prompt objects on any frame and track them through a streamed video.

    Args:
        tracker: the loaded model and processor.
        frames: the video, streamed.
        memory_frames: frames in the memory bank (SAM2's ``num_maskmem``, 7); fewer saves
            memory at some cost in quality, more than the model's is not possible.
    """

    def __init__(
        self, tracker: Sam2VideoTracker, frames: FrameSource, memory_frames: int | None = None
    ) -> None:
        self.tracker = tracker
        self.frames = frames
        self.height, self.width = frames.height, frames.width
        config = tracker.model.config
        memory_frames = config.num_maskmem if memory_frames is None else int(memory_frames)
        if not 1 <= memory_frames <= config.num_maskmem:
            raise InputError(
                f"memory_frames must be in [1, {config.num_maskmem}], got {memory_frames}"
            )
        #: The model's memory bank size in this session (its ``num_maskmem`` while it steps).
        self.memory_frames = memory_frames
        #: Non-conditioning frames whose memory features are kept, and whose pointers are kept.
        self.memory_window = memory_frames - 1
        self.pointer_window = max(self.memory_window, config.max_object_pointers_in_encoder - 1)
        self._state = tracker.processor.init_video_session(
            inference_device=tracker.device,
            dtype=tracker.dtype,
            max_vision_features_cache_size=1,
        )
        self._state.video_height, self._state.video_width = self.height, self.width
        self._object_ids: dict[int, int] = {}  # track id -> model object id
        self._anchors: dict[int, int] = {}  # track id -> frame of its first prompt
        self._prompts: dict[tuple[int, int], _TrackPrompt] = {}

    # ----------------------------------------------------------------- tracks and prompts
    @property
    def track_ids(self) -> list[int]:
        """Track ids in the order they were created."""
        return list(self._object_ids)

    def prompt_frames(self, track_id: int) -> list[int]:
        """Sorted frames where ``track_id`` has prompts."""
        return sorted(f for (t, f) in self._prompts if t == track_id)

    def add_prompt(
        self, frame: int, prompt: Prompt, track_id: int | None = None
    ) -> tuple[int, TrackMask]:
        """Add an object, or refine an existing one, with clicks, a box or a mask on ``frame``.

        On the track's anchor frame (its first prompt) the prompt defines the object from
        scratch; on any other frame it corrects the track there using its memory, and the
        result becomes a conditioning frame for the next ``propagate``. Clicks on a frame add
        to earlier clicks there; a box or a mask replaces what was there.

        Args:
            frame: sampled frame index.
            prompt: points (x, y pixels; positive or negative), a box (xyxy pixels) and/or a
                (H, W) mask, at the video's size.
            track_id: an existing track to refine, a new id (int >= 1) to create, or None to
                create a track with the next free id.

        Returns:
            The track id and its mask on ``frame``.
        """
        if not 0 <= frame < len(self.frames):
            raise InputError(f"frame {frame} is outside the video's {len(self.frames)} frames")
        prompt.validate(self.height, self.width)
        # Everything that can fail on user input happens before the model's state changes.
        track_id = self._check_track_id(track_id)
        key = (track_id, frame)
        merged = self._prompts.get(key, _TrackPrompt()).merged(prompt)
        pixels = self.frames.read(frame)
        self._object_ids.setdefault(track_id, len(self._object_ids) + 1)
        anchor = self._anchors.setdefault(track_id, frame)
        self._send_prompt(track_id, frame, merged)
        self._prompts[key] = merged
        output = self._run_prompt_frame(track_id, frame, frame != anchor, pixels)
        return track_id, output.tracks[track_id]

    def _check_track_id(self, track_id: int | None) -> int:
        """The given id (existing or new, a whole number >= 1), or the next free one."""
        if track_id is None:
            return max(self._object_ids, default=0) + 1
        if int(track_id) != track_id or track_id < 1:
            raise InputError(f"track ids are whole numbers >= 1, got {track_id}")
        return int(track_id)

    def _send_prompt(self, track_id: int, frame: int, prompt: _TrackPrompt) -> None:
        obj_id = self._object_ids[track_id]
        processor = self.tracker.processor
        if prompt.mask is not None:
            processor.add_inputs_to_inference_session(
                self._state, frame_idx=frame, obj_ids=[obj_id], input_masks=prompt.mask
            )
            return
        kwargs: dict[str, Any] = {}
        if prompt.points:
            kwargs["input_points"] = [[[[p.x, p.y] for p in prompt.points]]]
            kwargs["input_labels"] = [[[1 if p.positive else 0 for p in prompt.points]]]
        if prompt.box is not None:
            b = prompt.box.clipped(self.height, self.width)
            kwargs["input_boxes"] = [[[b.x0, b.y0, b.x1, b.y1]]]
        processor.add_inputs_to_inference_session(
            self._state,
            frame_idx=frame,
            obj_ids=[obj_id],
            original_size=(self.height, self.width),
            **kwargs,
        )

    def _run_prompt_frame(
        self, track_id: int, frame: int, refine: bool, pixels: np.ndarray
    ) -> FrameTracks:
        obj_idx = self._state.obj_id_to_idx(self._object_ids[track_id])
        outputs = self._state.output_dict_per_obj[obj_idx]
        self._clear_tracking_state()
        if refine:
            # SAM2 treats clicks on an already tracked frame as a refinement conditioned on
            # memory; drop this frame's own earlier output so it is not its own memory.
            outputs["cond_frame_outputs"].pop(frame, None)
            self._state.frames_tracked_per_obj[obj_idx][frame] = {"reverse": False}
        result = self._step(frame, False, pixels)
        if refine:
            stored = outputs["non_cond_frame_outputs"].pop(frame)
            outputs["cond_frame_outputs"][frame] = stored
        for entry in outputs["cond_frame_outputs"].values():
            for key in _DROP_ALWAYS:
                entry.pop(key, None)
        self._clear_tracking_state()
        return result

    # ----------------------------------------------------------------- propagation
    def _first_frames(self) -> dict[int, int]:
        return {t: min(self.prompt_frames(t)) for t in self._object_ids}

    def _last_frames(self) -> dict[int, int]:
        return {t: max(self.prompt_frames(t)) for t in self._object_ids}

    def _passes(self, direction: str) -> list[tuple[bool, int, int, dict[int, tuple[int, int]]]]:
        """(reverse, first frame, last frame, track -> yielded frame range) for each pass."""
        if direction not in DIRECTIONS:
            raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        if not self._object_ids:
            raise InputError("no objects to track: add a point, box or mask prompt first")
        n = len(self.frames)
        firsts, lasts = self._first_frames(), self._last_frames()
        passes = []
        if direction in ("forward", "both"):
            ranges = {t: (f, n - 1) for t, f in firsts.items()}
            passes.append((False, min(firsts.values()), n - 1, ranges))
        if direction == "both" and max(firsts.values()) > 0:
            ranges = {t: (0, f - 1) for t, f in firsts.items()}
            passes.append((True, max(firsts.values()), 0, ranges))
        if direction == "backward":
            ranges = {t: (0, f) for t, f in lasts.items()}
            passes.append((True, max(lasts.values()), 0, ranges))
        return passes

    def planned_frames(self, direction: str = "both") -> int:
        """How many frames ``propagate(direction)`` will run the model on (for progress bars)."""
        return sum(abs(last - first) + 1 for _, first, last, _ in self._passes(direction))

    def propagate(self, direction: str = "both") -> Iterator[FrameTracks]:
        """Track every object through the video.

        Args:
            direction: "forward" (from each track's first prompt to the end), "backward"
                (from each track's last prompt to frame 0) or "both".

        Yields:
            FrameTracks for each frame processed, holding the tracks whose result on that frame
            comes from this pass; every frame gets every track exactly once over the run.
        """
        for reverse, first, last, ranges in self._passes(direction):
            self._clear_tracking_state()
            if reverse:
                stream = self.frames.frames(last, first + 1, reverse=True)
            else:
                stream = self.frames.frames(first, last + 1)
            for frame in stream:
                result = self._step(frame.index, reverse, frame.pixels)
                result.source_index = frame.source_index
                kept = {
                    t: m
                    for t, m in result.tracks.items()
                    if ranges[t][0] <= frame.index <= ranges[t][1]
                }
                self._prune(frame.index)
                if kept:
                    yield FrameTracks(frame.index, frame.source_index, kept)
        self._clear_tracking_state()

    # ----------------------------------------------------------------- one model step
    def _step(self, index: int, reverse: bool, pixels: np.ndarray) -> FrameTracks:
        """Run the model on frame ``index`` (RGB (H, W, 3) ``pixels``) for every track."""
        torch = require("torch", "models")
        inputs = self.tracker.processor(images=pixels, return_tensors="pt")
        frame_tensor = inputs["pixel_values"][0].to(self.tracker.device, self.tracker.dtype)
        model = self.tracker.model
        # SAM2 reads memory features from the last num_maskmem - 1 frames; a smaller bank is
        # the same model with a smaller num_maskmem (pruned frames then keep pointers only).
        full_bank, model.num_maskmem = model.num_maskmem, self.memory_frames
        try:
            with torch.inference_mode():
                out = model(
                    inference_session=self._state,
                    frame_idx=index,
                    frame=frame_tensor,
                    reverse=reverse,
                )
        finally:
            model.num_maskmem = full_bank
            self._drop_frame(index)
        masks = self.tracker.processor.post_process_masks(
            [out.pred_masks.float().cpu()],
            original_sizes=[[self.height, self.width]],
            binarize=True,
        )[0]
        scores = torch.sigmoid(out.object_score_logits.float().reshape(-1)).cpu().numpy()
        by_object = {obj_id: i for i, obj_id in enumerate(out.object_ids)}
        tracks = {
            t: TrackMask(masks[by_object[o], 0].numpy().astype(bool), float(scores[by_object[o]]))
            for t, o in self._object_ids.items()
            if o in by_object
        }
        return FrameTracks(index, self.frames.source_index(index), tracks)

    # ----------------------------------------------------------------- bounded memory
    def _drop_frame(self, index: int) -> None:
        """Forget a frame's pixels and vision features once the model has used them."""
        if self._state.processed_frames is not None:
            self._state.processed_frames.pop(index, None)
        self._state.cache.clear_all()

    def _prune(self, index: int) -> None:
        """Keep only the per-frame outputs SAM2 reads again after frame ``index``."""
        for obj_idx, outputs in self._state.output_dict_per_obj.items():
            non_cond = outputs["non_cond_frame_outputs"]
            for frame in list(non_cond):
                distance = abs(index - frame)
                entry = non_cond[frame]
                if distance >= self.pointer_window:
                    del non_cond[frame]
                elif distance >= self.memory_window:
                    for key in [k for k in entry if k not in _POINTER_KEYS]:
                        del entry[key]
                else:
                    entry.pop("pred_masks", None)
                    for key in _DROP_ALWAYS:
                        entry.pop(key, None)
            tracked = self._state.frames_tracked_per_obj[obj_idx]
            for frame in [f for f in tracked if abs(index - f) >= self.pointer_window]:
                del tracked[frame]

    def _clear_tracking_state(self) -> None:
        """Forget non-conditioning outputs (they belong to one propagation pass)."""
        for obj_idx, outputs in self._state.output_dict_per_obj.items():
            outputs["non_cond_frame_outputs"].clear()
            self._state.frames_tracked_per_obj[obj_idx].clear()
        if self._state.processed_frames is not None:
            self._state.processed_frames.clear()
        self._state.cache.clear_all()

    def memory_stats(self) -> dict[str, Any]:
        """What the session holds now: frames of pixels and features, per-track outputs.

        Returns:
            {"pixel_frames": int, "feature_frames": int, "tracks": {track id:
            {"conditioning": int, "memory": int, "pointers": int}}} where "memory" counts
            non-conditioning frames with memory features and "pointers" all non-conditioning
            frames kept (pointer-only included).
        """
        state = self._state
        tracks = {}
        for track_id, obj_id in self._object_ids.items():
            outputs = state.output_dict_per_obj[state.obj_id_to_idx(obj_id)]
            non_cond = outputs["non_cond_frame_outputs"]
            tracks[track_id] = {
                "conditioning": len(outputs["cond_frame_outputs"]),
                "memory": sum("maskmem_features" in e for e in non_cond.values()),
                "pointers": len(non_cond),
            }
        return {
            "pixel_frames": len(state.processed_frames or {}),
            "feature_frames": len(state.cache._vision_features),
            "tracks": tracks,
        }
