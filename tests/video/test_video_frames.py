"""Frame sources: folders and video files, sampling, random access, rotation, bad files."""

from __future__ import annotations

import logging
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelground.core.errors import InputError
from pixelground.video.frames import Sampling, open_video

SWAN_SIZE = (480, 854)


def _close(a: np.ndarray, b: np.ndarray, tolerance: float = 6.0) -> bool:
    """Mean absolute difference below ``tolerance`` grey levels (lossy H.264 vs JPEG)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) < tolerance


def test_folder_streams_every_frame_in_order(swan_dir: Path, swan_pixels: list[np.ndarray]):
    video = open_video(swan_dir)
    assert (video.height, video.width) == SWAN_SIZE
    assert video.metadata.num_frames == 50 and video.fps is None
    assert len(video) == 50
    frames = list(video)
    assert [f.index for f in frames] == list(range(50))
    assert [f.source_index for f in frames] == list(range(50))
    assert all(f.pixels.dtype == np.uint8 and f.pixels.shape == (*SWAN_SIZE, 3) for f in frames)
    assert np.array_equal(frames[17].pixels, swan_pixels[17])
    index, source_index, pixels = frames[3]  # frames unpack as (index, source index, pixels)
    assert (index, source_index) == (3, 3) and pixels is frames[3].pixels


def test_folder_sorts_numbers_naturally(tmp_path: Path):
    for number in (10, 2, 1):
        Image.new("RGB", (8, 6), (number, 0, 0)).save(tmp_path / f"frame{number}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    reds = [int(f.pixels[0, 0, 0]) for f in open_video(tmp_path)]
    assert reds == [1, 2, 10]


def test_mp4_metadata_without_decoding_everything(swan_mp4: Path):
    video = open_video(swan_mp4)
    meta = video.metadata
    assert (meta.width, meta.height, meta.fps, meta.num_frames) == (854, 480, 24.0, 50)
    assert meta.codec == "h264" and meta.rotation == 0
    assert video.estimated_len == 50
    assert meta.duration == pytest.approx(50 / 24)


def test_mp4_frames_match_the_source_jpegs(swan_mp4: Path, swan_pixels: list[np.ndarray]):
    frames = list(open_video(swan_mp4))
    assert len(frames) == 50
    assert all(_close(f.pixels, swan_pixels[f.index]) for f in frames[::7])


@pytest.mark.parametrize("kind", ["folder", "mp4"])
def test_stride_and_max_frames(kind: str, swan_dir: Path, swan_mp4: Path):
    source = swan_dir if kind == "folder" else swan_mp4
    video = open_video(source, stride=3)
    assert len(video) == 17
    assert [f.source_index for f in video] == list(range(0, 50, 3))
    limited = open_video(source, stride=3, max_frames=5)
    assert len(limited) == 5
    assert [f.source_index for f in limited] == [0, 3, 6, 9, 12]


def test_target_fps_and_time_range(swan_mp4: Path):
    eight = open_video(swan_mp4, fps=8)  # 24 fps source: every third frame
    assert eight.fps == pytest.approx(8.0)
    assert [f.source_index for f in eight][:4] == [0, 3, 6, 9] and len(eight) == 17
    ten = open_video(swan_mp4, fps=10)  # 2.4 source frames per sampled frame
    indices = [f.source_index for f in ten]
    assert indices[:6] == [0, 2, 5, 7, 10, 12]
    assert len(ten) == len(indices) == 21
    ranged = open_video(swan_mp4, start=0.5, end=1.0)  # frames 12..23 at 24 fps
    assert [f.source_index for f in ranged] == list(range(12, 24))
    assert ranged.video_info().frame_indices == list(range(12, 24))


def test_random_access_and_reverse_match_sequential(swan_mp4: Path):
    video = open_video(swan_mp4, stride=2)
    sequential = [f.pixels for f in video]
    for index in (0, 7, 24):
        assert np.array_equal(video.read(index), sequential[index])
    backwards = list(video.frames(3, 20, reverse=True))
    assert [f.index for f in backwards] == list(range(19, 2, -1))
    assert all(np.array_equal(f.pixels, sequential[f.index]) for f in backwards)
    with pytest.raises(InputError, match="outside"):
        video.read(25)


@pytest.mark.parametrize("source", ["folder", "mp4"])
def test_frames_are_streamed_not_held(source: str, swan_dir: Path, swan_mp4: Path):
    video = open_video(swan_dir if source == "folder" else swan_mp4)
    frame_bytes = SWAN_SIZE[0] * SWAN_SIZE[1] * 3
    tracemalloc.start()
    try:
        count = sum(1 for _ in video)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50
    assert peak < 8 * frame_bytes  # far below 50 frames' worth


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_applied(rotation: int, tmp_path: Path, encode):
    pixels = np.zeros((32, 64, 3), dtype=np.uint8)
    pixels[:8, :16] = 255  # white block in the top-left corner of the stored frame
    path = encode([pixels] * 3, tmp_path / "rotated.mp4", rotation=rotation)
    video = open_video(path)
    turns = (rotation // 90) % 4
    expected = np.rot90(pixels, k=turns)  # display matrix angles are counter-clockwise
    assert video.metadata.rotation == turns * 90
    assert (video.height, video.width) == expected.shape[:2]
    frame = next(iter(video)).pixels
    assert frame.shape == expected.shape
    assert _close(frame, expected, tolerance=10.0)


def test_truncated_mp4_yields_the_frames_it_has(tmp_path: Path, swan_mp4: Path, caplog):
    data = swan_mp4.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    video = open_video(truncated)
    with caplog.at_level(logging.WARNING, logger="pixelground.video"):
        frames = list(video)
    assert 0 < len(frames) < 50
    assert [f.index for f in frames] == list(range(len(frames)))
    assert any("truncated" in r.getMessage() for r in caplog.records)
    assert len(video) == len(frames)


def test_bad_videos_raise_input_error(tmp_path: Path, swan_mp4: Path):
    with pytest.raises(InputError, match="not found"):
        open_video(tmp_path / "missing.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_video(empty)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video at all\n" * 20)
    with pytest.raises(InputError, match="not a video"):
        open_video(text)
    headless = tmp_path / "headless.mp4"  # moov-at-end mp4 cut before its index: no frames
    headless.write_bytes(swan_mp4.read_bytes()[:2000])
    with pytest.raises(InputError):
        open_video(headless)
    folder = tmp_path / "no_frames"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here")
    with pytest.raises(InputError, match="no image files"):
        open_video(folder)


def test_bad_sampling_raises_input_error(swan_dir: Path):
    with pytest.raises(InputError, match="stride"):
        Sampling(stride=0)
    with pytest.raises(InputError, match="not both"):
        Sampling(stride=2, fps=10)
    with pytest.raises(InputError, match="after start"):
        Sampling(start=2.0, end=1.0)
    with pytest.raises(InputError, match="frame rate"):
        len(open_video(swan_dir, fps=5))
    assert len(open_video(swan_dir, fps=8, frame_rate=24)) == 17
