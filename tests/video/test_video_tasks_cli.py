"""``track VIDEO TEXT``, ``caption VIDEO --grounded``, ``describe VIDEO --box ...@F --stream``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from video_task_fakes import video_task_cache  # noqa: F401  (module fixture: tiny model cache)

from pixelground.core.result import VideoResult
from pixelground.serve import cli
from pixelground.serve.commands import video_tasks
from pixelground.video.frames import open_video
from pixelground.video.outputs import read_davis_masks

SAMPLING = ["--stride", "6", "--max-frames", "8"]
SOURCE_FRAMES = [0, 6, 12, 18, 24, 30, 36, 42]


@pytest.fixture
def main(monkeypatch):
    """pixelground's main() with the image and video commands registered."""
    modules = tuple(cli.COMMAND_MODULES)
    if "pixelground.serve.commands.video" not in modules:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*modules, "pixelground.serve.commands.video"))
    return cli.main


def _result(path: Path, task: str) -> VideoResult:
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["task"] == task
    assert data["model"]["preset"] == "tiny"
    result = VideoResult.from_dict(data)
    assert result.to_dict() == data
    assert (result.video.height, result.video.width) == (480, 854)
    assert result.video.frame_indices == SOURCE_FRAMES
    return result


@pytest.mark.slow
def test_track_text_on_an_mp4(main, swan_mp4: Path, tmp_path: Path):
    out, masks, overlay = tmp_path / "t.json", tmp_path / "masks", tmp_path / "t.mp4"
    argv = ["track", str(swan_mp4), "the black swan", "--preset", "tiny", "--device", "cpu"]
    argv += [*SAMPLING, "--key-frames", "2", "--threshold", "0", "-o", str(out)]
    assert main([*argv, "--masks", str(masks), "--overlay", str(overlay)]) == 0
    result = _result(out, "segment")
    assert len(result.tracks) == 1 and result.tracks[0].phrase == "the black swan"
    assert result.model["key_frames"] == [0, 7]
    labels = read_davis_masks(masks / "blackswan")
    assert sorted(labels) == SOURCE_FRAMES
    assert all(m.shape == (480, 854) and set(m.ravel()) <= {0, 1} for m in labels.values())
    assert len(open_video(overlay)) == 8


@pytest.mark.slow
def test_caption_grounded_on_an_mp4(main, swan_mp4: Path, tmp_path: Path):
    out = tmp_path / "c.json"
    argv = ["caption", str(swan_mp4), "--grounded", "--preset", "tiny", "--device", "cpu"]
    assert main([*argv, *SAMPLING, "--frames", "2", "-o", str(out)]) == 0
    result = _result(out, "caption")
    assert result.model["sample_frames"] == 2
    for track in result.tracks:
        assert result.text[track.span[0] : track.span[1]] == track.phrase
    assert all(e.start_frame == e.end_frame and e.start_frame in (0, 7) for e in result.events)


@pytest.mark.slow
def test_describe_stream_on_an_mp4(main, swan_mp4: Path, tmp_path: Path, capsys):
    out = tmp_path / "d.json"
    argv = ["describe", str(swan_mp4), "--box", "200,100,500,400@2", "--stream"]
    argv += ["--clip-frames", "4", "--views", "2", "--preset", "tiny", "--device", "cpu"]
    assert main([*argv, *SAMPLING, "-o", str(out)]) == 0
    result = _result(out, "describe")
    assert [t.id for t in result.tracks] == [1]
    assert result.tracks[0].attributes["prompt"]["frame"] == 2
    assert result.events[0].start_frame == 0 and result.events[-1].end_frame == 7
    err = capsys.readouterr().err
    assert f"frames 0-{result.events[0].end_frame}: " in err  # streamed as written


def test_video_input_is_told_apart_from_images(tmp_path: Path):
    def args(image, video=False):
        return argparse.Namespace(image=str(image), video=video)

    assert video_tasks.is_video(args("clip.MP4")) and video_tasks.is_video(args("a/b.webm"))
    assert not video_tasks.is_video(args("photo.jpg"))
    assert not video_tasks.is_video(args(tmp_path))  # a folder is images...
    assert video_tasks.is_video(args(tmp_path, video=True))  # ...unless --video says frames


@pytest.mark.parametrize(
    "argv, message",
    [
        (["describe", "{mp4}", "--mask", "m.png"], "not --mask"),
        (["describe", "{mp4}", "--box", "1,2,30,40@1:2"], "drop the :ID"),
        (["describe", "{mp4}", "--box", "1,2,30,40@9", "--max-frames", "4"], "outside"),
        (["describe", "{mp4}"], "needs one --box"),
        (["describe", "{image}", "--box", "1,2,30,40", "--stream"], "--stream apply to videos"),
        (["caption", "{image}", "--frames", "3"], "--frames apply to videos"),
        (["caption", "{missing}", "--grounded"], "not found"),
    ],
)
def test_user_errors_come_before_any_model_loads(
    main, argv, message, swan_mp4: Path, swan_image_path: Path, tmp_path: Path, capsys, monkeypatch
):
    from pixelground.serve.commands import common

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(common, "load", no_models)
    paths = {"mp4": swan_mp4, "image": swan_image_path, "missing": tmp_path / "gone.mp4"}
    assert main([part.format(**paths) for part in argv]) == 2
    assert message in capsys.readouterr().err
