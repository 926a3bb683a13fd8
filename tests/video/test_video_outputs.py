"""Writing VideoResults: DAVIS-layout PNGs, overlay video, JSON."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from pixelground.core.errors import InputError
from pixelground.core.result import Track, VideoInfo, VideoResult
from pixelground.video.frames import open_video
from pixelground.video.outputs import (
    label_map,
    read_davis_masks,
    write_davis_masks,
    write_outputs,
    write_overlay_video,
)
from pixelground.viz import track_color
from pixelground.viz.colors import davis_palette


def _result(height: int = 30, width: int = 40, frames: int = 4, path: str = "clips/walk.mp4"):
    """Two tracks: track 3 on every frame, track 9 on frames 1-2 overlapping it."""
    top, left = height // 2, width // 2
    one = Track(id=3)
    two = Track(id=9)
    for f in range(frames):
        mask = np.zeros((height, width), dtype=bool)
        mask[top + f : top + 10 + f, left : left + 12] = True
        one.add(f, mask, score=0.6)
        if f in (1, 2):
            other = np.zeros((height, width), dtype=bool)
            other[top + 4 : top + 12, left + 6 : left + 18] = True
            two.add(f, other, score=0.9 if f == 1 else 0.3)
    info = VideoInfo(
        width=width,
        height=height,
        num_frames=frames,
        fps=12.0,
        path=path,
        frame_indices=[10 + 2 * f for f in range(frames)],
    )
    return VideoResult(task="track", video=info, tracks=[one, two])


def test_label_map_puts_the_higher_score_on_top():
    result = _result()
    assert label_map(result, 1)[21, 28] == 9  # overlap, track 9 scores 0.9 > 0.6
    assert label_map(result, 2)[21, 28] == 3  # overlap, track 9 scores 0.3 < 0.6
    assert label_map(result, 0).max() == 3
    assert set(np.unique(label_map(result, 1))) == {0, 3, 9}


def test_davis_pngs_read_back_equal(tmp_path: Path):
    result = _result()
    folder = write_davis_masks(result, tmp_path)
    assert folder == tmp_path / "walk"
    names = sorted(p.name for p in folder.glob("*.png"))
    assert names == ["00010.png", "00012.png", "00014.png", "00016.png"]  # source frame numbers
    with Image.open(folder / "00012.png") as image:
        assert image.mode == "P"
        assert image.getpalette()[: 3 * 10] == davis_palette()[: 3 * 10]
    back = read_davis_masks(folder)
    assert sorted(back) == [10, 12, 14, 16]
    for k, source in enumerate(sorted(back)):
        assert np.array_equal(back[source], label_map(result, k))
    for track in result.tracks:
        for k, frame in track.frames.items():
            assert np.array_equal(
                back[10 + 2 * k] == track.id, frame.mask & (label_map(result, k) == track.id)
            )


def test_davis_ids_must_fit_a_byte(tmp_path: Path):
    result = _result()
    result.tracks[1].id = 300
    with pytest.raises(InputError, match="1..255"):
        write_davis_masks(result, tmp_path)


def test_overlay_video_decodes_to_every_frame(tmp_path: Path):
    height, width = 121, 161  # odd: padded to even for yuv420p
    pixels = [np.full((height, width, 3), 90 + 10 * f, dtype=np.uint8) for f in range(4)]
    result = _result(height, width)
    path = write_overlay_video(result, open_video(pixels, frame_rate=12), tmp_path / "o.mp4")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (162, 122)
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.pix_fmt == "yuv420p"
    assert len(decoded) == 4
    inside = decoded[0][64, 84].astype(int)  # inside track 3 only, away from its contour
    outside = decoded[0][110, 10].astype(int)
    assert np.abs(outside - 90).max() <= 4  # untouched background
    tint = np.array(track_color(3))
    assert np.abs(inside - (0.5 * 90 + 0.5 * tint)).max() <= 12  # blended with track 3's colour


def test_overlay_stops_early_and_checks_sizes(tmp_path: Path):
    pixels = [np.zeros((30, 40, 3), dtype=np.uint8)] * 4
    result = _result()
    path = write_overlay_video(result, open_video(pixels), tmp_path / "o.mp4", stop=2)
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 2
    with pytest.raises(InputError, match="frames it was computed on"):
        write_overlay_video(result, open_video([np.zeros((8, 8, 3), np.uint8)]), tmp_path / "x.mp4")


def test_json_round_trip(tmp_path: Path):
    result = _result()
    written = write_outputs(result, json_path=tmp_path / "out" / "r.json")
    back = VideoResult.from_json(written[0])
    assert back.to_dict() == result.to_dict()
    assert sorted(back.track(9).frames) == [1, 2]  # absent frames omitted
    for track in result.tracks:
        for k in track.frames:
            assert np.array_equal(back.track(track.id).frames[k].mask, track.frames[k].mask)
    with pytest.raises(InputError, match="needs the frames"):
        write_outputs(result, overlay_path=tmp_path / "o.mp4")
