"""Video files decoded with PyAV (FFmpeg): mp4, webm, mov, mkv and whatever FFmpeg reads.

Frames are numbered in presentation order. Reading from the start decodes sequentially;
reading from frame i > 0 seeks to the key frame before i and decodes forward from there,
using a table of every frame's presentation timestamp built once by demuxing (reading packet
headers, no decoding). Rotation metadata (a display matrix, or the older ``rotate`` tag) is
applied to every frame. Decoding errors after some frames, or a stream that ends early, log a
warning and end the iteration with the frames that decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.errors import InputError, require
from pixelground.core.frames import FrameSource, Sampling, VideoMetadata

log = logging.getLogger(__name__)


def rotation_turns(rotation: float) -> int:
    """Quarter turns counter-clockwise (0-3) for a display rotation in degrees (CCW)."""
    return int(round(float(rotation) / 90.0)) % 4


def apply_rotation(pixels: np.ndarray, turns: int) -> np.ndarray:
    """Rotate (H, W, 3) pixels by ``turns`` quarter turns counter-clockwise."""
    return np.ascontiguousarray(np.rot90(pixels, k=turns)) if turns else pixels


class VideoFileFrames(FrameSource):
    """Sampled frames of a video file, decoded lazily with PyAV."""

    def __init__(self, path: str | Path, sampling: Sampling | None = None) -> None:
        super().__init__(sampling)
        self.path = Path(path)
        self._av = require("av", "video")
        self._pts: list[int] | None = None
        self._decoded_total: int | None = None  # source frames, once a decode reached the end
        self._exact_header = False
        self._warned = False
        self._metadata = self._read_metadata()

    # ----------------------------------------------------------------- opening
    def _open(self) -> tuple[Any, Any]:
        av = self._av
        if self.path.stat().st_size == 0:
            raise InputError(f"video file is empty (0 bytes): {self.path}")
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as error:
            raise InputError(
                f"{self.path} is not a video pixelground can read (not a video, or damaged "
                f"beyond repair): {error}"
            ) from error
        if not container.streams.video:
            container.close()
            raise InputError(f"{self.path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return container, stream

    def _read_metadata(self) -> VideoMetadata:
        container, stream = self._open()
        try:
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else None
            first = self._first_frame(container, stream)
            if first is None:
                raise InputError(f"{self.path} has no video frames that can be decoded")
            rotation = first.rotation or _tag_rotation(stream)
            self._exact_header = bool(stream.frames)
            self._turns = rotation_turns(rotation)
            width, height = first.width, first.height
            if self._turns % 2:
                width, height = height, width
            return VideoMetadata(
                path=str(self.path),
                width=width,
                height=height,
                fps=fps,
                num_frames=_header_count(container, stream, fps),
                rotation=self._turns * 90,
                codec=stream.codec_context.name,
            )
        finally:
            container.close()

    def _first_frame(self, container: Any, stream: Any) -> Any:
        try:
            for frame in container.decode(stream):
                return frame
        except self._av.FFmpegError as error:
            raise InputError(
                f"{self.path} has no frame that decodes (truncated or damaged): {error}"
            ) from error
        return None

    @property
    def metadata(self) -> VideoMetadata:
        return self._metadata

    # ----------------------------------------------------------------- counting
    def _timestamps(self) -> list[int] | None:
        """Sorted presentation timestamps of every frame, from packet headers (None if unusable)."""
        if self._pts is None:
            container, stream = self._open()
            stamps: list[int] = []
            try:
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    if packet.pts is None:
                        return None
                    stamps.append(int(packet.pts))
            except self._av.FFmpegError:
                pass  # truncated: keep the packets read so far
            finally:
                container.close()
            self._pts = sorted(stamps)
        return self._pts

    def _source_count(self) -> int:
        if self._decoded_total is not None:
            return self._decoded_total
        stamps = self._timestamps()
        if stamps is not None:
            return len(stamps)
        return sum(1 for _ in self._decode_from_start(iter(range(10**12))))

    # ----------------------------------------------------------------- decoding
    def _decode(self, wanted: Iterator[int]) -> Iterator[tuple[int, np.ndarray]]:
        first = next(wanted, None)
        if first is None:
            return
        stamps = self._timestamps() if first > 0 else None
        if stamps is None or first >= len(stamps):
            yield from self._decode_from_start(_chain(first, wanted))
        else:
            yield from self._decode_seeking(first, wanted, stamps)

    def _pixels(self, frame: Any) -> np.ndarray:
        return apply_rotation(frame.to_ndarray(format="rgb24"), self._turns)

    def _decode_from_start(self, wanted: Iterator[int]) -> Iterator[tuple[int, np.ndarray]]:
        target = next(wanted, None)
        if target is None:
            return
        container, stream = self._open()
        index = -1
        try:
            for frame in self._frames(container, stream, start_index=0):
                index += 1
                if index == target:
                    yield index, self._pixels(frame)
                    target = next(wanted, None)
                    if target is None:
                        return
            self._reached_end(index + 1)
        finally:
            container.close()

    def _decode_seeking(
        self, first: int, wanted: Iterator[int], stamps: list[int]
    ) -> Iterator[tuple[int, np.ndarray]]:
        position = {pts: i for i, pts in enumerate(stamps)}
        container, stream = self._open()
        target: int | None = first
        try:
            container.seek(stamps[first], stream=stream, backward=True, any_frame=False)
            for frame in self._frames(container, stream, start_index=first):
                index = position.get(frame.pts) if frame.pts is not None else None
                if index is None or index < target:
                    continue
                if index > target:  # the wanted frame never came out of the decoder
                    log.warning(
                        "%s: frame %d could not be decoded after seeking", self.path, target
                    )
                    return
                yield index, self._pixels(frame)
                target = next(wanted, None)
                if target is None:
                    return
            self._reached_end(target)
        finally:
            container.close()

    def _frames(self, container: Any, stream: Any, start_index: int) -> Iterator[Any]:
        """Decoded frames; a decoding error ends the stream with a warning (truncated file)."""
        try:
            yield from container.decode(stream)
        except self._av.FFmpegError as error:
            if not self._warned:
                log.warning(
                    "%s is truncated or damaged (%s); using the frames decoded before the error",
                    self.path,
                    error,
                )
                self._warned = True

    def _reached_end(self, decoded: int) -> None:
        """Record that the stream ended after ``decoded`` frames; warn if the header said more."""
        self._decoded_total = decoded
        self._count = None
        expected = self._metadata.num_frames
        if self._exact_header and expected and decoded < expected and not self._warned:
            log.warning(
                "%s ended after %d frames but its header says %d; the file may be truncated",
                self.path,
                decoded,
                expected,
            )
            self._warned = True


def _chain(first: int, rest: Iterator[int]) -> Iterator[int]:
    yield first
    yield from rest


def _tag_rotation(stream: Any) -> float:
    """The legacy ``rotate`` stream tag (degrees clockwise) as degrees counter-clockwise."""
    value = stream.metadata.get("rotate")
    try:
        return -float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def _header_count(container: Any, stream: Any, fps: float | None) -> int | None:
    """Frame count from the header, else estimated from the duration and rate."""
    if stream.frames:
        return int(stream.frames)
    if fps and stream.duration and stream.time_base:
        return max(1, round(float(stream.duration * Fraction(stream.time_base)) * fps))
    if fps and container.duration:
        return max(1, round(container.duration / 1_000_000 * fps))
    return None
