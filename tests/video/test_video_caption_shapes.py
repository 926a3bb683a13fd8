"""``caption VIDEO --grounded`` with the shipped ``shapes`` preset grounds the caption's shapes.

The preset has no detector or video tracker: its own model writes the grounded caption of the
middle frame and segments each phrase through the clip. Checked on a synthesised clip against
its ground-truth masks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelground.core.masks import decode_rle
from pixelground.serve.cli import main

pytestmark = pytest.mark.slow


def test_grounded_video_caption_with_shapes(tmp_path: Path, capsys):
    assert main(["synth", str(tmp_path / "bench"), "--task", "video", "--n", "1",
                 "--split", "test", "--frames", "6"]) == 0  # fmt: skip
    clip = tmp_path / "bench" / "video" / "test" / "JPEGImages" / "00000"
    out = tmp_path / "caption.json"
    argv = ["caption", str(clip), "--video", "--grounded", "--preset", "shapes", "-o", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    result = json.loads(out.read_text())
    assert result["task"] == "caption" and result["tracks"]
    truth = np.array(Image.open(clip.parent.parent / "Annotations" / "00000" / "00000.png"))
    objects = [truth == value for value in np.unique(truth) if value]
    best = []
    for track in result["tracks"]:
        start, end = track["span"]
        assert result["text"][start:end] == track["phrase"]
        first = next((f for f in track["frames"] if f["frame"] == 0), None)
        if first is None:
            continue
        mask = decode_rle(first["mask"])
        best.append(max((m & mask).sum() / max((m | mask).sum(), 1) for m in objects))
    assert best and max(best) > 0.5, best  # at least one phrase lands on its shape
