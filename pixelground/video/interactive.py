"""Interactive video segmentation: prompts on a frame, propagate, correct other frames, repeat.

    flow = InteractiveVideoSegmentation(tracker.session(open_video("clip.mp4")))
    flow.prompt(0, Prompt(box=Box(10, 20, 200, 220)))          # object 1 on frame 0
    result = flow.run()                                        # track it through the video
    flow.prompt(40, Prompt(points=(Point(90, 80, positive=False),)), track_id=1)  # fix frame 40
    result = flow.run()                                        # re-propagate with the correction

``run`` returns a VideoResult (task "track"): one Track per object with its per-frame masks
(COCO RLE, frames where the object is absent omitted) and presence scores. While a run is in
progress, ``flow.result`` holds the frames finished so far, so an interrupted run can still be
saved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pixelground.backends.sam2_video import FrameTracks, TrackingSession, TrackMask
from pixelground.core.errors import InputError
from pixelground.core.prompts import Box, Point, Prompt
from pixelground.core.result import Track, VideoResult

TASK = "track"


@dataclass(frozen=True)
class VideoPrompt:
    """A prompt on one frame of a video, for one track (None: a new track)."""

    frame: int
    prompt: Prompt
    track_id: int | None = None


class InteractiveVideoSegmentation:
    """Prompts and corrections on any frames of a video, propagated into a VideoResult.

    Args:
        session: a TrackingSession over the video (``Sam2VideoTracker.session(frames)``).
    """

    def __init__(self, session: TrackingSession) -> None:
        self.session = session
        self.result = self._empty_result()

    def _empty_result(self) -> VideoResult:
        return VideoResult(
            task=TASK,
            video=self.session.frames.video_info(),
            model=dict(self.session.tracker.info),
        )

    def prompt(
        self, frame: int, prompt: Prompt, track_id: int | None = None
    ) -> tuple[int, TrackMask]:
        """Add an object or correct one on ``frame``; returns the track id and its mask there."""
        return self.session.add_prompt(frame, prompt, track_id)

    def run(
        self, direction: str = "both", on_frame: Callable[[FrameTracks], None] | None = None
    ) -> VideoResult:
        """Propagate every track through the video and collect the masks.

        Args:
            direction: "both" (default), "forward" or "backward"; see TrackingSession.propagate.
            on_frame: called after each processed frame (e.g. to advance a progress bar).

        Returns:
            The VideoResult, also kept in ``self.result``.
        """
        self.result = self._empty_result()
        tracks = {t: Track(id=t) for t in self.session.track_ids}
        for track_id, track in tracks.items():
            track.attributes["prompt_frames"] = self.session.prompt_frames(track_id)
        self.result.tracks = list(tracks.values())
        totals = {t: [0.0, 0] for t in tracks}  # sum and count of scores where present
        for frame_tracks in self.session.propagate(direction):
            for track_id, found in frame_tracks.tracks.items():
                tracks[track_id].add(frame_tracks.index, found.mask, found.score)
                if found.mask.any():
                    total = totals[track_id]
                    total[0] += found.score
                    total[1] += 1
                    tracks[track_id].score = total[0] / total[1]
            if on_frame is not None:
                on_frame(frame_tracks)
        for track_id, (_, count) in totals.items():
            if not count:
                tracks[track_id].score = 0.0
        return self.result


def segment_video_interactive(
    session: TrackingSession,
    prompts: Sequence[VideoPrompt],
    direction: str = "both",
    on_frame: Callable[[FrameTracks], None] | None = None,
) -> VideoResult:
    """Apply every prompt (per track: earliest frame first), then propagate once.

    Prompts for the same track and frame are merged (one box, all clicks, or one mask). A
    track's earliest prompted frame defines it; prompts on its later frames are corrections.

    Args:
        session: a fresh TrackingSession over the video.
        prompts: the prompts; ``track_id`` None gives each such prompt a new track.
        direction: propagation direction ("both", "forward", "backward").
        on_frame: progress callback, called after each processed frame.

    Returns:
        The VideoResult.
    """
    if not prompts:
        raise InputError("no prompt given: pass a box, a point or a mask on some frame")
    flow = InteractiveVideoSegmentation(session)
    for track_id, frame, prompt in merge_prompts(prompts):
        flow.prompt(frame, prompt, track_id)
    return flow.run(direction, on_frame)


def merge_prompts(prompts: Sequence[VideoPrompt]) -> list[tuple[int | None, int, Prompt]]:
    """Group prompts by (track, frame), merged, ordered by track then frame.

    Prompts without a track id each stay on their own (each makes a new track).
    """
    groups: dict[tuple[int, int], list[Prompt]] = {}
    loose: list[tuple[int | None, int, Prompt]] = []
    for item in prompts:
        if item.track_id is None:
            loose.append((None, item.frame, item.prompt))
        else:
            groups.setdefault((item.track_id, item.frame), []).append(item.prompt)
    merged = [(t, f, _merge(parts, t, f)) for (t, f), parts in sorted(groups.items())]
    return merged + loose


def _merge(parts: list[Prompt], track_id: int, frame: int) -> Prompt:
    masks = [p.mask for p in parts if p.mask is not None]
    boxes = [p.box for p in parts if p.box is not None]
    points = tuple(point for p in parts for point in p.points)
    if masks and (boxes or points or len(masks) > 1):
        raise InputError(
            f"track {track_id} on frame {frame}: a mask prompt cannot be combined with other "
            "prompts on the same frame"
        )
    if len(boxes) > 1:
        raise InputError(f"track {track_id} on frame {frame}: give at most one box per frame")
    return Prompt(points=points, box=boxes[0] if boxes else None, mask=masks[0] if masks else None)


def parse_at(text: str) -> tuple[str, int, int | None]:
    """Split ``"VALUE@FRAME"`` or ``"VALUE@FRAME:ID"`` into (VALUE, FRAME, ID or None)."""
    value, sep, where = text.rpartition("@")
    if not sep or not value:
        raise InputError(f"cannot read {text!r}: expected VALUE@FRAME, e.g. 10,20,200,220@0")
    frame_text, _, id_text = where.partition(":")
    try:
        frame = int(frame_text)
        track_id = int(id_text) if id_text else None
    except ValueError:
        raise InputError(f"cannot read {text!r}: FRAME and ID must be whole numbers") from None
    if frame < 0 or (track_id is not None and track_id < 1):
        raise InputError(f"cannot read {text!r}: FRAME must be >= 0 and ID >= 1")
    return value, frame, track_id


def prompts_from_cli(
    boxes: Sequence[str] = (), points: Sequence[str] = (), neg_points: Sequence[str] = ()
) -> list[VideoPrompt]:
    """VideoPrompts from ``--box X0,Y0,X1,Y1@F[:ID]`` and ``--point/--neg-point X,Y@F[:ID]``.

    Without ``:ID``, every box is a new object (ids 1, 2, ... in order, skipping ids given
    explicitly) and every click belongs to the first object (the lowest id).
    """
    parsed_boxes = [parse_at(text) for text in boxes]
    parsed_points = [(*parse_at(t), True) for t in points] + [
        (*parse_at(t), False) for t in neg_points
    ]
    taken = {i for _, _, i in parsed_boxes if i is not None}
    taken |= {i for _, _, i, _ in parsed_points if i is not None}
    out: list[VideoPrompt] = []
    next_id = 1
    for value, frame, track_id in parsed_boxes:
        if track_id is None:
            while next_id in taken:
                next_id += 1
            track_id = next_id
            taken.add(track_id)
        out.append(VideoPrompt(frame, Prompt(box=Box.parse(value)), track_id))
    default_id = min(taken) if taken else 1
    for value, frame, track_id, positive in parsed_points:
        point = Point.parse(value, positive=positive)
        out.append(VideoPrompt(frame, Prompt(points=(point,)), track_id or default_id))
    if not out:
        raise InputError("give at least one --box or --point (VALUE@FRAME)")
    return out
