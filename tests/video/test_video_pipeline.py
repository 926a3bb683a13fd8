"""Video on the Pipeline: ``track`` on the tiny preset, ``segment_video`` on the shipped shapes
model, and the pipeline built over given backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from video_task_fakes import video_task_cache  # noqa: F401  (module fixture: tiny model cache)

import pixelground
from pixelground.backends.presets import Preset
from pixelground.core.errors import InputError
from pixelground.core.prompts import Box, Point, Prompt
from pixelground.core.result import VideoResult
from pixelground.pipeline import Pipeline
from pixelground.synth.scene import SceneConfig
from pixelground.synth.video import ClipConfig, render_clip, sample_clip
from pixelground.video.interactive import VideoPrompt

SWAN_BOX = (200, 100, 500, 400)


@pytest.fixture(scope="module")
def tiny() -> Pipeline:
    return pixelground.load("tiny", device="cpu")


def test_track_box_shorthand_is_one_video_prompt(tiny: Pipeline, swan_dir: Path):
    sampling = {"stride": 6, "max_frames": 4}
    short = tiny.track(swan_dir, box=SWAN_BOX, frame=1, **sampling)
    prompt = VideoPrompt(1, Prompt(box=Box(*SWAN_BOX)))
    listed = tiny.track(swan_dir, [prompt], **sampling)
    assert short.to_dict() == listed.to_dict()
    assert short.task == "track" and short.video.num_frames == 4
    assert short.model["preset"] == "tiny" and "not meaningful" in short.model["note"]
    (track,) = short.tracks
    assert track.id == 1 and track.attributes["prompt_frames"] == [1]
    assert set(track.frames) <= set(range(4))
    assert all(f.mask.shape == (480, 854) for f in track.frames.values())
    assert VideoResult.from_json(short.to_json()).to_dict() == short.to_dict()


def test_track_corrections_and_direction(tiny: Pipeline, swan_dir: Path):
    prompts = [
        VideoPrompt(2, Prompt(box=Box(*SWAN_BOX)), track_id=1),
        VideoPrompt(3, Prompt(points=(Point(350, 250),)), track_id=1),
    ]
    result = tiny.track(swan_dir, prompts, direction="forward", stride=6, max_frames=4)
    (track,) = result.tracks
    assert track.attributes["prompt_frames"] == [2, 3]
    assert set(track.frames) <= {2, 3}  # forward only, from frame 2


def test_track_needs_a_prompt_and_a_tracker(tiny: Pipeline, swan_dir: Path):
    with pytest.raises(InputError, match="no prompt"):
        tiny.track(swan_dir, max_frames=2)
    shapes = pixelground.load("shapes", device="cpu")
    with pytest.raises(InputError, match="has no video segmenter"):
        shapes.track(swan_dir, box=SWAN_BOX, max_frames=2)


def test_shapes_model_segments_a_generated_clip_end_to_end():
    config = ClipConfig(num_frames=4, min_objects=2, max_objects=2, scene=SceneConfig(size=128))
    clip = sample_clip(np.random.default_rng(3), config)
    frames, _ = render_clip(clip)
    target = clip.objects[0].shape
    expression = f"the {target.colour} {target.kind}"
    pipe = pixelground.load("shapes", device="cpu")
    result = pipe.segment_video(list(frames), expression)
    assert result.model["strategy"] == "end-to-end" and result.model["preset"] == "shapes"
    assert "note" not in result.model  # a trained model: meaningful output
    assert result.video.num_frames == 4 and (result.video.height, result.video.width) == (128, 128)
    for track in result.tracks:
        assert set(track.frames) <= set(range(4))
        assert all(f.mask.shape == (128, 128) for f in track.frames.values())
    with pytest.raises(InputError, match="has no video segmenter"):
        pipe.segment_video(list(frames), expression, strategy="detector")


def test_pipeline_over_given_backends():
    sentinel = object()
    pipe = Pipeline(Preset("mine", "given backends"), backends={"captioner": sentinel})
    assert pipe.backend("captioner") is sentinel and pipe.captioner is sentinel
    assert pipe.has("captioner") and not pipe.has("detector")
    assert pipe.backend("detector") is None
    with pytest.raises(InputError, match="unknown roles"):
        Pipeline(Preset("mine", ""), backends={"painter": sentinel})
    with pytest.raises(InputError, match="strategy"):
        pipe.caption_video([np.zeros((8, 8, 3), np.uint8)], strategy="magic")
