"""A corrupt frame in the middle of a video: the frames done are kept, the frame is named,
and ``--on-error skip`` tracks past it (the skipped frame gets no masks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pixelground.core.result import VideoResult
from pixelground.serve.cli import main


@pytest.fixture
def broken_clip(swan_dir: Path, tmp_path: Path) -> Path:
    """Six real swan frames; the fifth (index 4) truncated to 3,000 bytes."""
    folder = tmp_path / "clip"
    folder.mkdir()
    for source in sorted(swan_dir.glob("*.jpg"))[:6]:
        shutil.copy(source, folder / source.name)
    broken = folder / "00004.jpg"
    broken.write_bytes(broken.read_bytes()[:3000])
    return folder


def _track(clip: Path, checkpoint: Path, out: Path, *extra: str) -> int:
    return main(["track", str(clip), "--box", "200,100,500,400@0", "--direction", "forward",
                 "--checkpoint", str(checkpoint), "-o", str(out / "r.json"),
                 "--masks", str(out / "masks"), *extra])  # fmt: skip


def test_corrupt_frame_keeps_the_frames_done(broken_clip, tiny_video_checkpoint, tmp_path, capsys):
    assert _track(broken_clip, tiny_video_checkpoint, tmp_path) == 2
    err = capsys.readouterr().err
    assert "pixelground: error: frame 4: " in err and "00004.jpg" in err
    result = VideoResult.from_json(tmp_path / "r.json")
    assert result.model["interrupted"] is True
    assert set(result.track(1).frames) <= {0, 1, 2, 3}
    written = sorted(p.name for p in (tmp_path / "masks" / "clip").glob("*.png"))
    assert written == [f"{i:05d}.png" for i in range(4)]


def test_on_error_skip_tracks_past_the_corrupt_frame(
    broken_clip, tiny_video_checkpoint, tmp_path, capsys
):
    assert _track(broken_clip, tiny_video_checkpoint, tmp_path, "--on-error", "skip") == 0
    assert "skipped frame 4: " in capsys.readouterr().err
    result = VideoResult.from_json(tmp_path / "r.json")
    assert result.model["skipped_frames"] == [4]
    assert 4 not in result.track(1).frames and 5 in result.track(1).frames
    assert len(list((tmp_path / "masks" / "clip").glob("*.png"))) == 6
