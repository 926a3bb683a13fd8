"""Helpers the server tests share: the bundled example, a free port, a live server process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
from paths import REPO, SHARED_DATA

EXAMPLE = REPO / "examples" / "shapes.png"
EXPRESSION = "the small green triangle"
#: The shapes preset plus tiny random-weight SAM2 models for clicks and video boxes (shapes
#: has no prompted segmenter); referring segmentation still runs the shapes model alone.
SHAPES_WITH_CLICKS = {
    "segmenter": "sam2:tiny:sam2",
    "video_segmenter": "sam2-video:tiny:sam2_video",
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def upload(path: Path = EXAMPLE) -> dict:
    """A multipart ``files`` argument for httpx holding ``path``."""
    return {"file": (path.name, path.read_bytes(), "application/octet-stream")}


@contextlib.contextmanager
def serve_process(args: list[str], env: dict | None = None, wait: float = 90.0) -> Iterator[str]:
    """Run ``pixelground serve ARGS`` on a free loopback port; yield its base URL.

    The process is stopped (terminate, then kill) when the block ends, and its stderr is
    attached to the failure if it never becomes healthy within ``wait`` seconds.
    """
    port = free_port()
    command = [sys.executable, "-m", "pixelground.serve.cli", "serve", "--port", str(port), *args]
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in time")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stderr:
            process.stderr.close()


def write_clip(path: Path, frames: list, fps: int = 12) -> Path:
    """Encode RGB (H, W, 3) uint8 frames as an H.264 mp4 at ``path``."""
    import av

    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": "18", "preset": "ultrafast"}
    for pixels in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def swan_clip(path: Path, count: int = 6, size: tuple[int, int] = (160, 96)) -> Path:
    """The first ``count`` real DAVIS blackswan frames, resized to ``size``, as an mp4."""
    from PIL import Image

    folder = SHARED_DATA / "davis2016_blackswan" / "JPEGImages" / "480p" / "blackswan"
    frames = [
        np.asarray(Image.open(p).convert("RGB").resize(size))
        for p in sorted(folder.glob("*.jpg"))[:count]
    ]
    return write_clip(path, frames)
