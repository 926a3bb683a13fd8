"""Writing a VideoResult: JSON, DAVIS-layout PNG masks, and an overlay video.

- JSON: ``VideoResult.to_json`` (schema v1; per-frame COCO RLE, absent frames omitted).
- DAVIS layout: ``DIR/<video_name>/<frame>.png``, one palette ("P" mode) PNG per frame whose
  pixel values are track ids (0 = background), the layout the DAVIS evaluation code and
  ``pixelground score vos`` read. Files are named by source frame index, zero-padded to five
  digits, like DAVIS's own ``00000.png``.
- Overlay: an H.264 (yuv420p) video of the frames with each track tinted in its stable colour
  (``pixelground.viz.track_color``), written with PyAV one frame at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from pixelground.core.errors import InputError, require
from pixelground.core.files import atomic_path, save_atomic, write_text_atomic
from pixelground.core.frames import FrameSource
from pixelground.core.result import VideoResult
from pixelground.viz import render_video_frame
from pixelground.viz.colors import davis_palette

log = logging.getLogger(__name__)

#: DAVIS masks are 8-bit palette images, so track ids must fit in 1..255.
MAX_DAVIS_ID = 255
DEFAULT_FPS = 24.0


def label_map(result: VideoResult, frame_index: int) -> np.ndarray:
    """(H, W) uint8 map of track ids on a frame; 0 where no track is.

    Where tracks overlap, the one with the higher score on this frame wins (ties: higher id).
    """
    v = result.video
    out = np.zeros((v.height, v.width), dtype=np.uint8)
    present = [
        (t.frames[frame_index].score, t.id, t) for t in result.tracks if frame_index in t.frames
    ]
    for _, track_id, track in sorted(present, key=lambda item: (item[0], item[1])):
        out[track.frames[frame_index].mask] = track_id
    return out


def _frame_name(result: VideoResult, frame_index: int) -> str:
    indices = result.video.frame_indices
    source = indices[frame_index] if indices and frame_index < len(indices) else frame_index
    return f"{source:05d}.png"


def default_video_name(result: VideoResult) -> str:
    """The video's file stem or folder name ("video" when it has no path)."""
    path = result.video.path
    return Path(path).stem if path else "video"


def write_davis_masks(
    result: VideoResult,
    directory: str | Path,
    video_name: str | None = None,
    stop: int | None = None,
) -> Path:
    """Write one palette PNG per frame (pixel value = track id) in DAVIS layout.

    Args:
        result: the tracked video; track ids must be in 1..255.
        directory: the results root; masks go to ``directory/video_name/``.
        video_name: sub-folder name; defaults to the video's file stem or folder name.
        stop: write frames before this index only (an interrupted run's frames done).

    Returns:
        The folder the PNGs were written to.
    """
    bad = [t.id for t in result.tracks if not 1 <= t.id <= MAX_DAVIS_ID]
    if bad:
        raise InputError(f"DAVIS masks hold track ids 1..{MAX_DAVIS_ID}; these do not fit: {bad}")
    folder = Path(directory) / (video_name or default_video_name(result))
    folder.mkdir(parents=True, exist_ok=True)
    palette = davis_palette()
    count = result.video.num_frames if stop is None else min(stop, result.video.num_frames)
    for frame_index in range(count):
        image = Image.fromarray(label_map(result, frame_index))
        image.putpalette(palette)  # an "L" image with a palette becomes "P", values unchanged
        save_atomic(folder / _frame_name(result, frame_index), image.save)
    return folder


def read_davis_masks(folder: str | Path) -> dict[int, np.ndarray]:
    """Read DAVIS-layout PNGs back: frame number (from the file name) -> (H, W) uint8 ids."""
    folder = Path(folder)
    files = sorted(folder.glob("*.png"))
    if not files:
        raise InputError(f"no PNG masks in {folder}")
    out = {}
    for path in files:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise InputError(f"{path} is a {image.mode} image; DAVIS masks are palette PNGs")
            out[int(path.stem)] = np.array(image, dtype=np.uint8)
    return out


def _even(pixels: np.ndarray) -> np.ndarray:
    """Pad (H, W, 3) to even height and width by repeating the last row/column (yuv420p)."""
    pad_h, pad_w = pixels.shape[0] % 2, pixels.shape[1] % 2
    if pad_h or pad_w:
        pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return pixels


def overlay_frames(
    result: VideoResult, frames: FrameSource, stop: int | None = None, alpha: float = 0.5
) -> Iterator[np.ndarray]:
    """Frames with the result's tracks drawn on them (RGB uint8 (H, W, 3)), streamed."""
    for frame in frames.frames(0, stop):
        yield render_video_frame(frame.pixels, result, frame.index, alpha=alpha)


def write_overlay_video(
    result: VideoResult,
    frames: FrameSource,
    path: str | Path,
    stop: int | None = None,
    alpha: float = 0.5,
    fps: float | None = None,
) -> Path:
    """Encode the frames with tracks drawn on them as H.264 (yuv420p) with PyAV.

    Args:
        result: the tracked video.
        frames: the same (sampled) frames the result was computed on.
        path: output file (.mp4, .mov or .mkv).
        stop: write frames before this index only (e.g. after an interrupted run).
        alpha: mask tint opacity.
        fps: frame rate of the output; defaults to the result's sampled rate, else 24.

    Returns:
        ``path``.
    """
    av = require("av", "video")
    if (frames.height, frames.width) != (result.video.height, result.video.width):
        raise InputError(
            f"the frames are {frames.width}x{frames.height} but the result is "
            f"{result.video.width}x{result.video.height}; pass the frames it was computed on"
        )
    path = Path(path)
    rate = Fraction(fps or result.video.fps or DEFAULT_FPS).limit_denominator(1001)
    with atomic_path(path) as temp:  # a torn video never takes the name
        container = av.open(str(temp), mode="w")
        try:
            stream = container.add_stream("libx264", rate=rate)
            stream.width = frames.width + frames.width % 2
            stream.height = frames.height + frames.height % 2
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "20", "preset": "veryfast"}
            for pixels in overlay_frames(result, frames, stop, alpha):
                video_frame = av.VideoFrame.from_ndarray(_even(pixels), format="rgb24")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()
    return path


def write_outputs(
    result: VideoResult,
    frames: FrameSource | None = None,
    json_path: str | Path | None = None,
    masks_dir: str | Path | None = None,
    overlay_path: str | Path | None = None,
    stop: int | None = None,
) -> list[Path]:
    """Write whichever of JSON, DAVIS masks and overlay video are asked for.

    ``stop`` (an interrupted run) limits masks and overlay to the frames before it.

    Returns:
        The written paths (the masks' video folder for ``masks_dir``).
    """
    written = []
    if json_path is not None:
        write_text_atomic(json_path, result.to_json() + "\n")
        written.append(Path(json_path))
    if masks_dir is not None:
        written.append(write_davis_masks(result, masks_dir, stop=stop))
    if overlay_path is not None:
        if frames is None:
            raise InputError("an overlay video needs the frames the result was computed on")
        written.append(write_overlay_video(result, frames, overlay_path, stop=stop))
    return written
