"""Video frames, streamed: a video file decoded with PyAV, a folder of images, or arrays.

``open_video`` opens any of them as a :class:`~pixelground.core.frames.FrameSource`
(sampling, lazy decoding and reverse iteration are described there). A truncated file yields
the frames that decode and logs a warning; a missing file, a file that is not a video, or a
video without frames raises InputError.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from pixelground.core.errors import InputError, require
from pixelground.core.frames import Frame, FrameSource, Sampling, VideoMetadata
from pixelground.core.media import IMAGE_SUFFIXES, load_image
from pixelground.video.decode import VideoFileFrames

__all__ = [
    "VIDEO_SUFFIXES",
    "ArrayFrames",
    "FolderFrames",
    "Frame",
    "FrameSource",
    "Sampling",
    "VideoMetadata",
    "open_video",
]

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg", ".gif")


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class FolderFrames(FrameSource):
    """A folder of images (jpg, png, ...), one frame per file in natural sort order.

    With ``on_error="skip"`` a frame that cannot be decoded (corrupt, truncated, another
    size) is replaced by the last good frame and its source index recorded in ``skipped``,
    so tracking goes on past it; with ``"raise"`` (default) it is an InputError naming it.
    """

    def __init__(
        self,
        folder: str | Path,
        sampling: Sampling | None = None,
        fps: float | None = None,
        on_error: str = "raise",
    ):
        super().__init__(sampling)
        if on_error not in ("raise", "skip"):
            raise InputError(f"on_error must be raise or skip, got {on_error!r}")
        self.on_error = on_error
        #: Source indices of frames that could not be decoded and were stood in for.
        self.skipped: dict[int, str] = {}
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"frame folder not found: {self.folder}")
        self.files = sorted(
            (
                p
                for p in self.folder.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            ),
            key=_natural_key,
        )
        if not self.files:
            raise InputError(
                f"{self.folder} has no image files ({', '.join(IMAGE_SUFFIXES)}); "
                "a video folder holds one image per frame"
            )
        first = load_image(self.files[0]).pixels
        self._metadata = VideoMetadata(
            path=str(self.folder),
            width=first.shape[1],
            height=first.shape[0],
            fps=fps,
            num_frames=len(self.files),
        )

    @property
    def metadata(self) -> VideoMetadata:
        return self._metadata

    def _source_count(self) -> int:
        return len(self.files)

    def _decode(self, wanted: Iterator[int]) -> Iterator[tuple[int, np.ndarray]]:
        last_good: np.ndarray | None = None
        for index in wanted:
            if index >= len(self.files):
                return
            try:
                pixels = self._frame(index)
            except InputError as error:
                if self.on_error == "raise":
                    raise InputError(f"frame {index}: {error}") from error
                self.skipped[index] = str(error)
                pixels = last_good if last_good is not None else self._stand_in(index)
            last_good = pixels
            yield index, pixels

    def _frame(self, index: int) -> np.ndarray:
        pixels = load_image(self.files[index]).pixels
        if pixels.shape[:2] != (self.height, self.width):
            raise InputError(
                f"{self.files[index].name} is {pixels.shape[1]}x{pixels.shape[0]} but the "
                f"first frame is {self.width}x{self.height}; all frames must be the same size"
            )
        return pixels

    def _stand_in(self, index: int) -> np.ndarray:
        """The nearest decodable frame before ``index`` (else after it), for a skipped one."""
        order = [*range(index - 1, -1, -1), *range(index + 1, len(self.files))]
        for other in order:
            try:
                return self._frame(other)
            except InputError:
                continue
        raise InputError(f"no frame of {self.folder} can be decoded")


class ArrayFrames(FrameSource):
    """Frames from an indexable sequence of RGB arrays (a list, or a lazy sequence)."""

    def __init__(
        self,
        arrays: Sequence[np.ndarray],
        sampling: Sampling | None = None,
        fps: float | None = None,
    ):
        super().__init__(sampling)
        if len(arrays) == 0:
            raise InputError("no frames given")
        self.arrays = arrays
        first = load_image(np.asarray(arrays[0])).pixels
        self._metadata = VideoMetadata(
            path=None, width=first.shape[1], height=first.shape[0], fps=fps, num_frames=len(arrays)
        )

    @property
    def metadata(self) -> VideoMetadata:
        return self._metadata

    def _source_count(self) -> int:
        return len(self.arrays)

    def _decode(self, wanted: Iterator[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in wanted:
            if index >= len(self.arrays):
                return
            pixels = load_image(np.asarray(self.arrays[index])).pixels
            if pixels.shape[:2] != (self.height, self.width):
                raise InputError(
                    f"frame {index} is {pixels.shape[:2]}, frame 0 is {(self.height, self.width)}"
                )
            yield index, pixels


def open_video(
    source: str | Path | Sequence[np.ndarray],
    stride: int = 1,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    frame_rate: float | None = None,
    on_error: str = "raise",
) -> FrameSource:
    """Open a video file, a folder of frames, or a sequence of arrays as a frame source.

    Args:
        source: path to a video file (mp4, webm, mov, ...) or a folder of images, or a
            sequence of RGB (H, W, 3) uint8 arrays.
        stride: keep every ``stride``-th frame.
        fps: resample to this rate instead of a stride.
        start: first second to keep.
        end: second to stop before.
        max_frames: keep at most this many frames.
        frame_rate: the frame rate of a folder or arrays (video files know theirs).
        on_error: a folder's undecodable frame: "raise" (InputError naming it) or "skip"
            (the last good frame stands in; see FolderFrames.skipped).

    Returns:
        A FrameSource; nothing is decoded beyond what metadata needs.

    Raises:
        InputError: missing path, empty folder, not a video, a video without frames, bad sampling.
    """
    sampling = Sampling(stride=stride, fps=fps, start=start, end=end, max_frames=max_frames)
    if not isinstance(source, str | Path):
        return ArrayFrames(source, sampling, fps=frame_rate)
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(f"video not found: {path}")
    if path.is_dir():
        return FolderFrames(path, sampling, fps=frame_rate, on_error=on_error)
    require("av", "video")
    return VideoFileFrames(path, sampling)
