"""Video commands: ``pixelground track``.

    pixelground track VIDEO --box X0,Y0,X1,Y1@FRAME [--point X,Y@FRAME] [--neg-point X,Y@FRAME]
    pixelground track VIDEO TEXT

VIDEO is a video file or a folder of frames. Boxes and clicks are pixels of the (rotated)
frame, ``@FRAME`` a sampled frame index, and an optional ``:ID`` suffix names the object
(``--point 120,80@30:2`` corrects object 2 on frame 30). Without ``:ID`` every box is a new
object and every click goes to the first object. The result is VideoResult JSON (to ``-o`` or
stdout), optionally DAVIS-layout PNG masks (``--masks DIR``) and an overlay video
(``--overlay OUT.mp4``). A progress bar shows frames/s; Ctrl-C stops and writes what is done.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from pixelground.backends.base import DETECTION_THRESHOLD
from pixelground.backends.sam2_video import Sam2VideoTracker
from pixelground.core.errors import InputError, PixelgroundError
from pixelground.core.result import Track, VideoResult
from pixelground.serve.commands.common import (
    add_model_option,
    load_pipeline,
    progress_bar,
    report_written,
    say,
)
from pixelground.serve.commands.video_tasks import check_video_outputs
from pixelground.video.frames import FrameSource, open_video
from pixelground.video.interactive import (
    InteractiveVideoSegmentation,
    merge_prompts,
    prompts_from_cli,
)
from pixelground.video.outputs import write_outputs

log = logging.getLogger("pixelground.cli")

EXIT_INTERRUPTED = 130


def _tracker(args: argparse.Namespace) -> Any:
    """The SAM2 video tracker: from --checkpoint, else the preset's video_segmenter."""
    if args.checkpoint:
        return Sam2VideoTracker(args.checkpoint, device=args.device, dtype=args.dtype)
    pipeline = load_pipeline(args)
    tracker = pipeline.video_segmenter
    if tracker is None:
        raise InputError(f"preset {pipeline.preset.name!r} has no video segmenter")
    return tracker


def _open_frames(args: argparse.Namespace) -> FrameSource:
    return open_video(
        args.video,
        stride=args.stride,
        fps=args.fps,
        start=args.start,
        end=args.end,
        max_frames=args.max_frames,
        frame_rate=args.frame_rate,
        on_error=args.on_error,
    )


class FramesSoFar:
    """Per-frame progress callback that keeps every frame's masks reported so far.

    Advances the progress bar once per distinct frame (re-detection passes revisit frames), and
    lets an interrupted ``track VIDEO TEXT`` write the tracks up to where it stopped.

    Args:
        advance: the progress bar's per-frame callback.
    """

    def __init__(self, advance: Callable[[Any], None]) -> None:
        self.advance = advance
        self.tracks: dict[int, Track] = {}
        self.seen: set[int] = set()

    def __call__(self, frame: Any) -> None:
        for track_id, (mask, score) in frame.tracks.items():
            self.tracks.setdefault(track_id, Track(id=track_id)).add(frame.index, mask, score)
        if frame.index not in self.seen:
            self.seen.add(frame.index)
            self.advance(frame)

    def result(self, frames: FrameSource, text: str) -> VideoResult:
        """The tracks so far as a VideoResult (task "segment", phrase = the text)."""
        tracks = [t for _, t in sorted(self.tracks.items()) if t.frames]
        for track in tracks:
            track.phrase, track.span = text, (0, len(text))
        return VideoResult(
            task="segment",
            video=frames.video_info(),
            text=text,
            tracks=tracks,
            model={"interrupted": True, "frames_done": len(self.seen)},
        )


#: Why tracking stopped early: Ctrl-C, or a user error mid-video (e.g. a corrupt frame).
Stop = KeyboardInterrupt | PixelgroundError | None


def _stopped(stop: KeyboardInterrupt | PixelgroundError) -> None:
    what = "interrupted" if isinstance(stop, KeyboardInterrupt) else "stopped by an error"
    say(f"{what}; writing the frames done so far")


def _referring(args: argparse.Namespace, frames: FrameSource) -> tuple[VideoResult, Stop]:
    """``track VIDEO TEXT`` (Pipeline.segment_video); returns the result and what stopped it
    early, if anything (then the result holds the masks of the frames done so far)."""
    pipeline = load_pipeline(args)
    with progress_bar(len(frames), "grounding and tracking") as advance:
        so_far = FramesSoFar(advance)
        try:
            result = pipeline.segment_video(
                frames,
                args.text,
                key_frames=args.key_frames,
                redetect_every=args.redetect_every,
                threshold=args.threshold,
                memory_frames=args.memory_frames,
                on_frame=so_far,
            )
        except (KeyboardInterrupt, PixelgroundError) as stop:
            _stopped(stop)
            partial = so_far.result(frames, " ".join(args.text.split()))
            partial.model["preset"] = pipeline.preset.name
            return partial, stop
    return result, None


def _track_prompts(args: argparse.Namespace, frames: FrameSource) -> tuple[VideoResult, Stop]:
    """Box/click tracking; returns the result and what stopped it early, if anything."""
    prompts = _checked_prompts(args, frames)
    tracker = _tracker(args)
    session = tracker.session(frames, memory_frames=args.memory_frames)
    flow = InteractiveVideoSegmentation(session)
    for track_id, frame, prompt in merge_prompts(prompts):
        flow.prompt(frame, prompt, track_id)
    try:
        with progress_bar(session.planned_frames(args.direction), "tracking") as advance:
            flow.run(args.direction, on_frame=advance)
    except (KeyboardInterrupt, PixelgroundError) as stop:
        _stopped(stop)
        flow.result.model.update(interrupted=True)
        return flow.result, stop
    return flow.result, None


def _done_until(result: VideoResult) -> int:
    """One past the last frame with any mask (how far an interrupted overlay goes)."""
    last = max((max(t.frames) for t in result.tracks if t.frames), default=-1)
    return last + 1


def _checked_prompts(args: argparse.Namespace, frames: FrameSource) -> list:
    """--box/--point prompts checked against the video (frame range, size) before loading."""
    prompts = prompts_from_cli(args.box, args.point, args.neg_point)
    for item in prompts:
        if item.frame >= len(frames):
            raise InputError(
                f"frame {item.frame} is outside the video's {len(frames)} frames "
                f"(0..{len(frames) - 1})"
            )
        item.prompt.validate(frames.height, frames.width)
        box = item.prompt.box
        if box is not None and box.clipped(frames.height, frames.width) != box:
            say(
                f"the box on frame {item.frame} reaches outside the {frames.width}x"
                f"{frames.height} video; the part inside is used"
            )
    return prompts


def _track(args: argparse.Namespace) -> int:
    check_video_outputs(args)
    frames = _open_frames(args)
    if args.text and (args.box or args.point or args.neg_point):
        raise InputError("give TEXT or --box/--point prompts, not both")
    if args.text:
        result, stop = _referring(args, frames)
    else:
        result, stop = _track_prompts(args, frames)
    _drop_skipped(result, frames)
    if args.output is None:
        sys.stdout.write(result.to_json(indent=None) + "\n")
    written = write_outputs(
        result,
        frames,
        json_path=args.output,
        masks_dir=args.masks,
        overlay_path=args.overlay,
        stop=None if stop is None else _done_until(result),
    )
    report_written(written)
    if isinstance(stop, PixelgroundError):
        raise stop
    return EXIT_INTERRUPTED if stop is not None else 0


def _drop_skipped(result: VideoResult, frames: FrameSource) -> None:
    """Frames --on-error skip stood in for get no masks, and are named on stderr."""
    skipped = getattr(frames, "skipped", None)
    if not skipped:
        return
    sampled = [k for k in range(len(frames)) if frames.source_index(k) in skipped]
    for track in result.tracks:
        for k in sampled:
            track.frames.pop(k, None)
    for k in sampled:
        say(f"skipped frame {k}: {skipped[frames.source_index(k)]}")
    result.model["skipped_frames"] = sampled


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``track`` to the CLI."""
    p = subparsers.add_parser(
        "track",
        help="track objects through a video from boxes/clicks on any frames (or from TEXT)",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "video", help="video file (mp4, webm, mov, ...) or folder of frames (always a video here)"
    )
    p.add_argument("text", nargs="?", help="referring expression (tracks what it names)")
    p.add_argument("--box", action="append", default=[], metavar="X0,Y0,X1,Y1@FRAME[:ID]")
    p.add_argument("--point", action="append", default=[], metavar="X,Y@FRAME[:ID]")
    p.add_argument("--neg-point", action="append", default=[], metavar="X,Y@FRAME[:ID]")
    p.add_argument("--checkpoint", help="SAM2 video checkpoint: hub id or local directory")
    p.add_argument("--preset", default="auto", help="model preset when no --checkpoint (tiny, ...)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default=None, help="float32, float16 or bfloat16")
    add_model_option(p)
    p.add_argument("-o", "--output", help="write VideoResult JSON here (default: stdout)")
    p.add_argument("--masks", help="write DAVIS-layout PNG masks under this folder")
    p.add_argument("--overlay", help="write an overlay video (H.264) here, e.g. out.mp4")
    p.add_argument("--stride", type=_positive_int, default=1, help="keep every N-th frame")
    p.add_argument("--fps", type=float, help="resample to this frame rate")
    p.add_argument("--start", type=float, help="first second to use")
    p.add_argument("--end", type=float, help="second to stop before")
    p.add_argument("--max-frames", type=_positive_int, help="use at most N frames")
    p.add_argument("--frame-rate", type=float, help="frame rate of a folder of frames")
    p.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="a frame that cannot be decoded: stop there, keeping the frames done (raise), or "
        "track past it (skip; the frame gets no masks)",
    )
    p.add_argument("--direction", choices=("both", "forward", "backward"), default="both")
    p.add_argument(
        "--memory-frames", type=_positive_int, default=None, help="memory bank size (SAM2: 7)"
    )
    p.add_argument(
        "--key-frames", type=_positive_int, default=5, help="TEXT: frames to ground it on"
    )
    p.add_argument(
        "--redetect-every", type=_positive_int, help="TEXT: look for new objects every N frames"
    )
    p.add_argument(
        "--threshold", type=float, default=DETECTION_THRESHOLD, help="TEXT: minimum detection score"
    )
    p.set_defaults(handler=_track)
