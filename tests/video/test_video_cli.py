"""``pixelground track``: boxes/clicks on an mp4, outputs, the TEXT hook, Ctrl-C, bad input."""

from __future__ import annotations

import argparse
import json
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
import pytest

from pixelground.core.errors import InputError
from pixelground.core.result import Track, VideoResult
from pixelground.pipeline import Pipeline
from pixelground.serve.commands import video as video_commands
from pixelground.video.interactive import prompts_from_cli
from pixelground.video.outputs import read_davis_masks


def _run(argv: list[str]) -> int:
    """Parse and run like pixelground.serve.cli.main does (user errors propagate here)."""
    parser = argparse.ArgumentParser(prog="pixelground")
    video_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_track_mp4_writes_json_masks_and_overlay(
    swan_mp4: Path, tiny_video_checkpoint: Path, tmp_path: Path
):
    out = tmp_path / "result.json"
    code = _run(
        [
            "track", str(swan_mp4),
            "--box", "200,100,500,400@0",
            "--point", "600,300@3:2",
            "--neg-point", "250,120@5",
            "--checkpoint", str(tiny_video_checkpoint),
            "--stride", "2", "--max-frames", "8",
            "-o", str(out), "--masks", str(tmp_path / "masks"),
            "--overlay", str(tmp_path / "overlay.mp4"),
        ]
    )  # fmt: skip
    assert code == 0
    result = VideoResult.from_json(out)
    assert [t.id for t in result.tracks] == [1, 2]
    assert result.video.num_frames == 8 and result.video.frame_indices == list(range(0, 16, 2))
    assert (result.video.height, result.video.width) == (480, 854)
    assert result.track(1).attributes["prompt_frames"] == [0, 5]  # the click corrects track 1
    assert result.track(2).attributes["prompt_frames"] == [3]
    assert result.model["checkpoint"] == str(tiny_video_checkpoint)
    masks = read_davis_masks(tmp_path / "masks" / "blackswan")
    assert sorted(masks) == list(range(0, 16, 2))
    assert all(m.shape == (480, 854) and set(np.unique(m)) <= {0, 1, 2} for m in masks.values())
    with av.open(str(tmp_path / "overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8


def test_tiny_preset_builds_into_the_cache(
    swan_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("PIXELGROUND_CACHE", str(tmp_path / "cache"))
    code = _run(["track", str(swan_dir), "--box", "200,100,500,400@1", "--preset", "tiny",
                 "--max-frames", "3", "--direction", "forward"])  # fmt: skip
    assert code == 0
    from pixelground.backends.tiny import cache_root

    assert cache_root().is_relative_to(tmp_path / "cache")
    assert (cache_root() / "sam2_video" / "config.json").is_file()
    captured = capsys.readouterr()
    result = VideoResult.from_json(captured.out)
    assert result.video.num_frames == 3
    assert set(result.track(1).frames) <= {1, 2}  # forward only, from frame 1
    assert "not meaningful" in captured.err


def test_ctrl_c_writes_what_is_done(
    swan_dir: Path, tiny_video_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    @contextmanager
    def interrupting_bar(total: int, description: str):
        calls = []

        def advance(frame) -> None:
            calls.append(frame.index)
            if len(calls) == 4:
                raise KeyboardInterrupt

        yield advance

    monkeypatch.setattr(video_commands, "progress_bar", interrupting_bar)
    out = tmp_path / "partial.json"
    code = _run(["track", str(swan_dir), "--box", "200,100,500,400@0", "--max-frames", "10",
                 "--checkpoint", str(tiny_video_checkpoint), "-o", str(out),
                 "--overlay", str(tmp_path / "partial.mp4")])  # fmt: skip
    assert code == video_commands.EXIT_INTERRUPTED
    result = VideoResult.from_json(out)
    assert result.video.num_frames == 10
    assert set(result.track(1).frames) <= {0, 1, 2, 3}
    with av.open(str(tmp_path / "partial.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) <= 4


def test_text_tracking_calls_pipeline_segment_video(swan_dir: Path, tmp_path: Path, monkeypatch):
    calls = []

    def segment_video(pipeline, frames, text, on_frame=None, **options):
        calls.append((pipeline.preset.name, len(frames), text, options))
        info = frames.video_info()
        mask = np.zeros((info.height, info.width), dtype=bool)
        mask[:10, :10] = True
        track = Track(id=1, phrase=text)
        track.add(0, mask)
        return VideoResult(task="refer", video=info, text=text, tracks=[track])

    monkeypatch.setattr(Pipeline, "segment_video", segment_video)
    out = tmp_path / "r.json"
    code = _run(["track", str(swan_dir), "the black swan", "--preset", "tiny", "--max-frames",
                 "5", "-o", str(out)])  # fmt: skip
    assert code == 0
    options = {"key_frames": 5, "redetect_every": None, "threshold": 0.3, "memory_frames": None}
    assert calls == [("tiny", 5, "the black swan", options)]
    assert json.loads(out.read_text())["tracks"][0]["phrase"] == "the black swan"


def test_ctrl_c_during_text_tracking_writes_frames_done(
    swan_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from pixelground.backends.sam2_video import FrameTracks, TrackMask

    advanced = []

    @contextmanager
    def counting_bar(total: int, description: str):
        yield lambda frame: advanced.append(frame.index)

    def segment_video(pipeline, frames, text, on_frame=None, **options):
        info = frames.video_info()
        for index in (2, 3, 2, 3, 4):  # a re-detection pass revisits frames 2 and 3
            mask = np.zeros((info.height, info.width), dtype=bool)
            mask[index * 10 : index * 10 + 10, :10] = True
            on_frame(FrameTracks(index, index, {1: TrackMask(mask, 0.9)}))
        raise KeyboardInterrupt

    monkeypatch.setattr(Pipeline, "segment_video", segment_video)
    monkeypatch.setattr(video_commands, "progress_bar", counting_bar)
    out = tmp_path / "partial.json"
    code = _run(["track", str(swan_dir), "the  black swan", "--preset", "tiny", "--max-frames",
                 "8", "-o", str(out), "--masks", str(tmp_path / "masks")])  # fmt: skip
    assert code == video_commands.EXIT_INTERRUPTED
    assert advanced == [2, 3, 4]  # the progress bar counts each frame once
    result = VideoResult.from_json(out)
    assert result.video.num_frames == 8 and result.model["interrupted"] is True
    (track,) = result.tracks
    assert track.phrase == "the black swan" and sorted(track.frames) == [2, 3, 4]
    assert track.mask(4, result.video.height, result.video.width)[45, 5]
    written = read_davis_masks(tmp_path / "masks" / "blackswan")
    assert sorted(written) == [0, 1, 2, 3, 4]  # frames after the last one done are not written
    assert not written[1].any() and (written[4] == 1).sum() == 100


def test_bad_input_is_one_clear_error(swan_dir: Path, tmp_path: Path, tiny_video_checkpoint: Path):
    ckpt = ["--checkpoint", str(tiny_video_checkpoint)]
    with pytest.raises(InputError, match="not found"):
        _run(["track", str(tmp_path / "nope.mp4"), "--box", "1,1,5,5@0", *ckpt])
    with pytest.raises(InputError, match="VALUE@FRAME"):
        _run(["track", str(swan_dir), "--box", "1,1,5,5", *ckpt])
    with pytest.raises(InputError, match="outside"):
        _run(["track", str(swan_dir), "--box", "900,10,950,40@0", "--max-frames", "2", *ckpt])
    with pytest.raises(InputError, match="at least one"):
        _run(["track", str(swan_dir), *ckpt])
    with pytest.raises(InputError, match="not both"):
        _run(["track", str(swan_dir), "a swan", "--box", "1,1,5,5@0", *ckpt])


def test_cli_prompt_grouping():
    prompts = prompts_from_cli(
        boxes=["0,0,10,10@0", "5,5,20,20@2:1", "1,1,4,4@3"],
        points=["3,3@4", "7,7@1:9"],
        neg_points=["2,2@4"],
    )
    assert [(p.frame, p.track_id) for p in prompts] == [
        (0, 2), (2, 1), (3, 3), (4, 1), (1, 9), (4, 1),
    ]  # fmt: skip
    assert [p.prompt.points[0].positive for p in prompts[3:]] == [True, True, False]
