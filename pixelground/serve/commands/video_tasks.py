"""Video versions of ``caption`` and ``describe``: the image commands hand videos over here.

    pixelground caption  VIDEO [--grounded] [--frames N] [--merge consensus|vlm]
    pixelground describe VIDEO --box X0,Y0,X1,Y1@FRAME | --point X,Y@FRAME [--stream]

VIDEO is a video file (its suffix is one of VIDEO_SUFFIXES), or a folder of frames with
``--video``: these commands take images too, so a folder is a batch of images unless
``--video`` says it is a video (``track`` takes videos only: a folder is always a video).
``caption --grounded`` tracks the caption's phrases; ``describe --stream`` describes the region
clip by clip (``--clip-frames`` frames each), each caption conditioned on the previous one,
and prints each clip's caption on stderr as it is written; without ``--stream`` the whole
video is one clip. Output: VideoResult JSON (``-o`` or stdout), optionally DAVIS-layout PNG
masks (``--masks DIR``) and an overlay video (``--overlay OUT.mp4``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pixelground.backends.base import DETECTION_THRESHOLD
from pixelground.core.errors import InputError
from pixelground.core.files import check_output, check_output_dir
from pixelground.core.prompts import Box, Point
from pixelground.core.result import CaptionEvent, VideoResult
from pixelground.serve.commands.common import load_pipeline, progress_bar, report_written, say
from pixelground.video.frames import VIDEO_SUFFIXES, FrameSource, open_video
from pixelground.video.interactive import parse_at
from pixelground.video.outputs import write_outputs

Handler = Callable[[argparse.Namespace], int]
_VIDEO_OPTIONS = "_video_options"


def is_video(args: argparse.Namespace) -> bool:
    """Whether IMAGE names a video: a video file by suffix, or a folder given with --video."""
    path = Path(args.image)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    return bool(getattr(args, "video", False)) and path.is_dir()


def dispatch(video_handler: Handler, image_handler: Handler) -> Handler:
    """A handler that runs ``video_handler`` for videos and ``image_handler`` otherwise.

    Video-only options given with images are an InputError.
    """

    def handle(args: argparse.Namespace) -> int:
        if is_video(args):
            return video_handler(args)
        used = [name for name in getattr(args, _VIDEO_OPTIONS, ()) if getattr(args, name)]
        if used:
            flags = ", ".join("--" + name.replace("_", "-") for name in used)
            raise InputError(
                f"{flags} apply to videos; {args.image} is not a video file "
                f"({', '.join(VIDEO_SUFFIXES)}) nor a folder given with --video"
            )
        return image_handler(args)

    return handle


def _add_video_input(parser: argparse.ArgumentParser, extra: tuple[str, ...]) -> Any:
    group = parser.add_argument_group(
        "video input (IMAGE is a video file, or a folder of frames with --video)"
    )
    group.add_argument("--video", action="store_true", help="IMAGE is a folder of video frames")
    group.add_argument("--stride", type=int, help="keep every N-th frame")
    group.add_argument("--fps", type=float, help="resample to this frame rate")
    group.add_argument("--start", type=float, help="first second to use")
    group.add_argument("--end", type=float, help="second to stop before")
    group.add_argument("--max-frames", type=int, help="use at most N frames")
    group.add_argument("--frame-rate", type=float, help="frame rate of a folder of frames")
    group.add_argument("--masks", help="write DAVIS-layout PNG masks under this folder")
    names = ("video", "stride", "fps", "start", "end", "max_frames", "frame_rate", "masks")
    parser.set_defaults(**{_VIDEO_OPTIONS: names + extra})
    return group


def add_caption_options(parser: argparse.ArgumentParser) -> None:
    """Video options of ``caption`` (the overlay, -o and --grounded are the image command's)."""
    group = _add_video_input(parser, ("frames", "merge", "threshold"))
    group.add_argument("--frames", type=int, help="frames sampled across the video (default 4)")
    group.add_argument(
        "--merge", choices=("consensus", "vlm"), help="how frame captions become one"
    )
    group.add_argument(
        "--threshold", type=float, help=f"minimum detection score (default {DETECTION_THRESHOLD})"
    )


def add_describe_options(parser: argparse.ArgumentParser) -> None:
    """Video options of ``describe``: --box/--point take ``@FRAME`` for videos."""
    group = _add_video_input(parser, ("stream", "clip_frames", "views"))
    group.add_argument(
        "--stream", action="store_true", help="describe clip by clip, each after the last"
    )
    group.add_argument("--clip-frames", type=int, help="frames per clip with --stream (default 8)")
    group.add_argument("--views", type=int, help="frames per clip shown to the model (default 3)")


def _open(args: argparse.Namespace) -> FrameSource:
    return open_video(
        args.image,
        stride=args.stride or 1,
        fps=args.fps,
        start=args.start,
        end=args.end,
        max_frames=args.max_frames,
        frame_rate=args.frame_rate,
    )


def check_video_outputs(args: argparse.Namespace) -> None:
    """-o, --masks and --overlay can be written (folders created) before any work starts."""
    check_output(args.output, "-o")
    check_output_dir(args.masks, "--masks")
    check_output(args.overlay, "--overlay")


def _write(args: argparse.Namespace, result: VideoResult, frames: FrameSource) -> int:
    if args.output is None:
        sys.stdout.write(result.to_json(indent=None) + "\n")
    written = write_outputs(
        result, frames, json_path=args.output, masks_dir=args.masks, overlay_path=args.overlay
    )
    report_written(written)
    return 0


def caption(args: argparse.Namespace) -> int:
    """``caption VIDEO [--grounded]``."""
    check_video_outputs(args)
    frames = _open(args)
    pipeline = load_pipeline(args)
    bar = progress_bar(len(frames), "tracking phrases") if args.grounded else nullcontext()
    with bar as advance:
        result = pipeline.caption_video(
            frames,
            grounded=args.grounded,
            sample_frames=args.frames or 4,
            merge=args.merge or "consensus",
            detailed=args.detailed,
            threshold=DETECTION_THRESHOLD if args.threshold is None else args.threshold,
            on_frame=advance,
        )
    return _write(args, result, frames)


def _region(args: argparse.Namespace) -> tuple[Box | None, Point | None, int]:
    """The --box or --point of ``describe VIDEO``, and its frame (0 without ``@FRAME``)."""
    if args.mask:
        raise InputError(
            "for a video give --box X0,Y0,X1,Y1@FRAME or --point X,Y@FRAME, not --mask"
        )
    given = [v for v in (args.box, args.point) if v]
    if len(given) != 1:
        raise InputError("describe VIDEO needs one --box X0,Y0,X1,Y1@FRAME or --point X,Y@FRAME")
    text = given[0]
    value, frame, track_id = parse_at(text) if "@" in text else (text, 0, None)
    if track_id is not None:
        raise InputError(f"describe follows one region: drop the :ID from {text!r}")
    if args.box:
        return Box.parse(value), None, frame
    return None, Point.parse(value), frame


def describe(args: argparse.Namespace) -> int:
    """``describe VIDEO --box X0,Y0,X1,Y1@FRAME [--stream]``."""
    box, point, frame = _region(args)
    check_video_outputs(args)
    frames = _open(args)
    if frame >= len(frames):
        raise InputError(f"frame {frame} is outside the video's {len(frames)} frames")
    if box is not None:
        box.validate(frames.height, frames.width)
        clipped = box.clipped(frames.height, frames.width)
        if clipped != box:
            say(f"the box reaches outside the {frames.width}x{frames.height} video; clipped")
        box = clipped
    if point is not None:
        point.validate(frames.height, frames.width)
    pipeline = load_pipeline(args)

    def show(event: CaptionEvent) -> None:
        say(f"frames {event.start_frame}-{event.end_frame}: {event.text}")

    with progress_bar(len(frames), "tracking the region") as advance:
        result = pipeline.describe_video(
            frames,
            frame=frame,
            box=box,
            point=point,
            clip_frames=(args.clip_frames or 8) if args.stream else None,
            views=args.views or 3,
            on_frame=advance,
            on_event=show if args.stream else None,
        )
    return _write(args, result, frames)
