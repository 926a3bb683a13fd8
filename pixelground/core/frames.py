"""The frame source contract: sampled video frames streamed one at a time.

A frame source yields ``Frame(index, source_index, pixels)`` one at a time: ``index`` counts
the sampled frames from 0, ``source_index`` is the frame's position in the file or folder, and
``pixels`` is RGB uint8 (H, W, 3) with the file's rotation metadata applied (so H and W are the
displayed size). Frames are decoded lazily and never all held in memory; iterating backwards
decodes short forward chunks and yields each chunk reversed.

Sampling (``Sampling``): keep every ``stride``-th frame, or resample to a target ``fps``;
restrict to ``[start, end)`` seconds; stop after ``max_frames``. Sampled frame k is source
frame ``first + k * stride`` (or ``first + round(k * source_fps / fps)``), so any sampled frame
can be found without decoding the ones before it.

Concrete sources: folders and arrays in :mod:`pixelground.video.frames`, video files in
:mod:`pixelground.video.decode`; ``open_video`` (in frames) picks one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from pixelground.core.errors import InputError
from pixelground.core.result import VideoInfo

#: Reverse iteration decodes chunks of at most this many bytes of RGB frames.
REVERSE_CHUNK_BYTES = 256 * 2**20


class Frame(NamedTuple):
    """One sampled frame; unpacks as ``index, source_index, pixels``.

    Attributes:
        index: position among the sampled frames (0, 1, 2, ...).
        source_index: position in the source video or folder.
        pixels: RGB uint8 (H, W, 3), rotation applied.
    """

    index: int
    source_index: int
    pixels: np.ndarray


@dataclass(frozen=True)
class Sampling:
    """Which source frames to keep.

    Attributes:
        stride: keep every ``stride``-th frame (1 keeps all).
        fps: resample to this frame rate instead (needs the source frame rate); rates at or
            above the source's keep every frame.
        start: first second to keep (inclusive).
        end: second to stop at (exclusive).
        max_frames: keep at most this many frames.
    """

    stride: int = 1
    fps: float | None = None
    start: float | None = None
    end: float | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if int(self.stride) != self.stride or self.stride < 1:
            raise InputError(f"stride must be a whole number >= 1, got {self.stride}")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"fps must be a positive number, got {self.fps}")
        if self.fps is not None and self.stride != 1:
            raise InputError("give either a stride or a target fps, not both")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"max_frames must be >= 1, got {self.max_frames}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be a time in seconds >= 0, got {value}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise InputError(f"end ({self.end}s) must be after start ({self.start}s)")

    def needs_rate(self) -> bool:
        """Whether the source frame rate is needed (fps resampling or a time range)."""
        return self.fps is not None or self.start is not None or self.end is not None

    def step(self, source_fps: float | None) -> float:
        """Source frames per sampled frame (>= 1)."""
        if self.fps is None:
            return float(self.stride)
        return max(1.0, float(source_fps) / self.fps)

    def first(self, source_fps: float | None) -> int:
        """Index of the first source frame kept."""
        return 0 if self.start is None else math.ceil(self.start * source_fps - 1e-9)

    def stop(self, source_fps: float | None) -> int | None:
        """Source index where sampling stops (exclusive), or None for the end of the source."""
        return None if self.end is None else math.ceil(self.end * source_fps - 1e-9)

    def source_index(self, k: int, source_fps: float | None) -> int:
        """Source index of sampled frame ``k``."""
        return self.first(source_fps) + int(math.floor(k * self.step(source_fps) + 0.5))

    def count(self, num_source: int, source_fps: float | None) -> int:
        """Number of sampled frames from a source of ``num_source`` frames."""
        stop = (
            num_source if self.stop(source_fps) is None else min(num_source, self.stop(source_fps))
        )
        first, step = self.first(source_fps), self.step(source_fps)
        if stop <= first:
            return 0
        k = math.ceil((stop - first) / step) + 1
        while k > 0 and self.source_index(k - 1, source_fps) >= stop:
            k -= 1
        return k if self.max_frames is None else min(k, self.max_frames)


@dataclass(frozen=True)
class VideoMetadata:
    """What a source says about itself, read without decoding the whole video.

    Attributes:
        path: file or folder path (None for in-memory frames).
        width, height: displayed frame size in pixels (after rotation).
        fps: source frame rate, None when unknown (folders without a given rate).
        num_frames: source frame count, estimated from the header for video files.
        rotation: degrees counter-clockwise applied to decoded frames (0, 90, 180, 270).
        codec: codec name for video files.
    """

    path: str | None
    width: int
    height: int
    fps: float | None
    num_frames: int | None
    rotation: int = 0
    codec: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds, when frame count and rate are known."""
        if self.fps and self.num_frames is not None:
            return self.num_frames / self.fps
        return None


class FrameSource(ABC):
    """Sampled frames of a video, streamed. Subclasses supply source-level decoding."""

    def __init__(self, sampling: Sampling | None = None) -> None:
        self.sampling = sampling or Sampling()
        self._count: int | None = None

    # ----------------------------------------------------------------- subclass hooks
    @property
    @abstractmethod
    def metadata(self) -> VideoMetadata:
        """Source metadata (size after rotation, rate, estimated count)."""

    @abstractmethod
    def _source_count(self) -> int:
        """Exact number of source frames (may scan the container, never decodes pixels)."""

    @abstractmethod
    def _decode(self, wanted: Iterator[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (source_index, pixels) for the ascending source indices ``wanted``.

        Stops early, without error, when the source ends before ``wanted`` does.
        """

    def _check_rate(self) -> None:
        if self.sampling.needs_rate() and not self.metadata.fps:
            raise InputError(
                f"{self.metadata.path or 'these frames'} has no known frame rate, so fps, "
                "start and end cannot be used; give the folder's frame rate or use stride"
            )

    # ----------------------------------------------------------------- public API
    @property
    def width(self) -> int:
        return self.metadata.width

    @property
    def height(self) -> int:
        return self.metadata.height

    @property
    def fps(self) -> float | None:
        """Frame rate of the sampled frames (None when the source rate is unknown)."""
        rate = self.metadata.fps
        return None if not rate else rate / self.sampling.step(rate)

    def source_index(self, index: int) -> int:
        """Source index of sampled frame ``index``."""
        return self.sampling.source_index(index, self.metadata.fps)

    def __len__(self) -> int:
        """Exact number of sampled frames (video files: one demux pass, no decoding)."""
        if self._count is None:
            self._check_rate()
            self._count = self.sampling.count(self._source_count(), self.metadata.fps)
        return self._count

    @property
    def estimated_len(self) -> int | None:
        """Number of sampled frames from header metadata, without scanning."""
        if self._count is not None:
            return self._count
        total = self.metadata.num_frames
        return None if total is None else self.sampling.count(total, self.metadata.fps)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(
        self, start: int = 0, stop: int | None = None, reverse: bool = False
    ) -> Iterator[Frame]:
        """Sampled frames ``start <= index < stop``, in order or reversed.

        Args:
            start: first sampled index.
            stop: sampled index to stop before; None for the end of the video.
            reverse: yield from ``stop - 1`` down to ``start`` (decoded in forward chunks).

        Yields:
            Frame objects, one at a time.
        """
        self._check_rate()
        if reverse:
            return self._reverse(start, len(self) if stop is None else min(stop, len(self)))
        return self._forward(start, stop)

    def read(self, index: int) -> np.ndarray:
        """Pixels of sampled frame ``index`` (RGB uint8 (H, W, 3))."""
        if index < 0 or index >= len(self):
            raise InputError(f"frame {index} is outside the video's {len(self)} frames")
        for frame in self._forward(index, index + 1):
            return frame.pixels
        raise InputError(f"frame {index} of {self.metadata.path} could not be decoded")

    def video_info(self) -> VideoInfo:
        """VideoInfo (size, sampled frame count, sampled rate, source indices) for results."""
        count = len(self)
        return VideoInfo(
            width=self.width,
            height=self.height,
            num_frames=count,
            fps=self.fps,
            path=self.metadata.path,
            frame_indices=[self.source_index(k) for k in range(count)],
        )

    # ----------------------------------------------------------------- internals
    def _limit(self, stop: int | None) -> int | None:
        limits = [v for v in (stop, self.sampling.max_frames, self._count) if v is not None]
        return min(limits) if limits else None

    def _wanted(self, start: int, stop: int | None) -> Iterator[int]:
        source_stop = self.sampling.stop(self.metadata.fps)
        k = start
        while stop is None or k < stop:
            index = self.source_index(k)
            if source_stop is not None and index >= source_stop:
                return
            yield index
            k += 1

    def _forward(self, start: int, stop: int | None) -> Iterator[Frame]:
        stop = self._limit(stop)
        if stop is not None and start >= stop:
            return
        wanted = self._wanted(start, stop)
        k = start
        for source_index, pixels in self._decode(wanted):
            yield Frame(k, source_index, pixels)
            k += 1

    def _reverse(self, start: int, stop: int) -> Iterator[Frame]:
        frame_bytes = max(1, self.width * self.height * 3)
        chunk = max(1, min(64, REVERSE_CHUNK_BYTES // frame_bytes))
        end = stop
        while end > start:
            begin = max(start, end - chunk)
            frames = list(self._forward(begin, end))
            yield from reversed(frames)
            end = begin
