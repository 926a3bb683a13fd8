"""What the split writers share: generation options, the progress callback and the writer of
one split directory's files (JSONL lines, JSON, images, palette PNGs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

GENERATOR = "pixelground.synth"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class SynthOptions:
    """Generation parameters besides task, split, count and seed.

    Attributes:
        size: image side in pixels.
        num_frames: frames per video clip.
        expressions_per_image: referring expressions per image (fewer if the scene allows
            fewer).
        regions_per_image: region captions per image.
        expressions_per_video: expressions per clip.
        compress_level: PNG zlib level (0-9); output is identical for a given level.
        image_format: "png" (lossless, default) or "jpg" (quality 95; the extension the
            official MeViS / GranD-f layouts use) for images and video frames. Annotation PNGs
            are always PNG.
    """

    size: int = 256
    num_frames: int = 8
    expressions_per_image: int = 4
    regions_per_image: int = 2
    expressions_per_video: int = 3
    compress_level: int = 1
    image_format: str = "png"


class SplitWriter:
    """Open JSONL files of one split directory, written line by line in sample order."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: dict[str, Any] = {}
        self.written: set[str] = set()

    def line(self, name: str, record: dict[str, Any]) -> None:
        if name not in self.files:
            self.files[name] = (self.directory / name).open("w", encoding="utf-8")
            self.written.add(name)
        self.files[name].write(json.dumps(record, separators=(",", ":")) + "\n")

    def json(self, name: str, data: Any) -> None:
        (self.directory / name).write_text(json.dumps(data, separators=(",", ":")) + "\n")
        self.written.add(name)

    def image(self, stem: str, pixels: np.ndarray, options: SynthOptions) -> str:
        """Write (H, W, 3) uint8 pixels to ``stem`` + extension; returns the relative path."""
        relative = f"{stem}.{options.image_format}"
        path = self.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if options.image_format == "jpg":
            Image.fromarray(pixels).save(path, format="JPEG", quality=95, subsampling=0)
        else:
            Image.fromarray(pixels).save(path, format="PNG", compress_level=options.compress_level)
        return relative

    def palette_png(self, relative: str, ids: np.ndarray, palette: list[int], level: int) -> None:
        """Write an (H, W) uint8 id map as a palette PNG."""
        path = self.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(ids, mode="P")
        image.putpalette(palette)
        image.save(path, format="PNG", compress_level=level)

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
