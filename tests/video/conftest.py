"""Fixtures for the video tests: the real blackswan clip (folder and an mp4 encoded from it)
and a tiny random-weight SAM2 video checkpoint saved with save_pretrained."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np
import pytest


def encode_video(
    frames: Sequence[np.ndarray],
    path: Path,
    fps: int = 24,
    rotation: float | None = None,
    faststart: bool = True,
) -> Path:
    """Encode RGB (H, W, 3) frames as H.264 mp4; ``rotation`` sets a display matrix (CCW)."""
    options = {"movflags": "faststart"} if faststart else {}
    container = av.open(str(path), "w", options=options)
    stream = container.add_stream("libx264", rate=fps)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": "18", "preset": "ultrafast"}
    if rotation is not None:
        stream.set_display_rotation(rotation)
    for pixels in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="session")
def encode() -> Callable[..., Path]:
    """The encode_video helper."""
    return encode_video


@pytest.fixture(scope="session")
def swan_dir(shared_data: Path) -> Path:
    """The real 50-frame DAVIS blackswan clip as a folder of 854x480 JPEGs."""
    return shared_data / "davis2016_blackswan" / "JPEGImages" / "480p" / "blackswan"


@pytest.fixture(scope="session")
def swan_pixels(swan_dir: Path) -> list[np.ndarray]:
    """The 50 swan frames decoded (RGB uint8 (480, 854, 3))."""
    from pixelground.core.media import load_image

    return [load_image(p).pixels for p in sorted(swan_dir.glob("*.jpg"))]


@pytest.fixture(scope="session")
def swan_mp4(tmp_path_factory: pytest.TempPathFactory, swan_pixels: list[np.ndarray]) -> Path:
    """An H.264 mp4 (24 fps, 50 frames) encoded from the swan frames."""
    return encode_video(swan_pixels, tmp_path_factory.mktemp("video") / "blackswan.mp4")


@pytest.fixture(scope="session")
def tiny_video_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Sam2VideoModel + Sam2VideoProcessor directory."""
    from pixelground.backends.tiny.video import build_tiny_sam2_video

    return build_tiny_sam2_video(tmp_path_factory.mktemp("tiny") / "sam2_video")


@pytest.fixture(scope="session")
def tracker(tiny_video_checkpoint: Path):
    """The tiny checkpoint loaded the way users load real ones."""
    from pixelground.backends.sam2_video import Sam2VideoTracker

    return Sam2VideoTracker(str(tiny_video_checkpoint), device="cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run faster on one thread than on two contended ones; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
