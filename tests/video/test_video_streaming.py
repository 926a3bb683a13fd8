"""Streaming region captions: clips, conditioning on the previous caption, events; tiny run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from video_task_fakes import (
    FakeCaptioner,
    FakePipeline,
    FakeVLM,
    Scene,
    SceneTracker,
    moving_box,
    video_task_cache,  # noqa: F401  (module fixture: tiny model cache)
)

from pixelground.core.errors import InputError
from pixelground.core.prompts import Box, Point
from pixelground.core.result import VideoResult
from pixelground.video.streaming import (
    FIRST_PROMPT,
    NEXT_PROMPT,
    StreamingRegionCaptioning,
    clip_ranges,
    spread,
)

SWAN_BOX = Box(2, 5, 12, 15)  # the swan's box on frame 0


def _scene(visible=range(12)) -> Scene:
    return Scene(12, {"swan": moving_box(visible, 2, 5), "duck": moving_box(range(12), 40, 30)})


def test_clips_and_views():
    assert clip_ranges(10, 4) == [(0, 3), (4, 7), (8, 9)]
    assert clip_ranges(10, None) == [(0, 9)]
    assert clip_ranges(0, 4) == []
    with pytest.raises(InputError):
        clip_ranges(10, 0)
    assert spread([4, 5, 6, 7], 3) == [4, 6, 7]
    assert spread([4, 5], 3) == [4, 5]


def test_each_clip_caption_is_conditioned_on_the_previous_one():
    scene = _scene()
    vlm = FakeVLM(["A swan glides left.", "The swan turns around.", "The swan dives."])
    task = StreamingRegionCaptioning(SceneTracker(scene), vlm=vlm, clip_frames=4, views=3)
    seen = []
    result = task(scene.frames(), frame=0, box=SWAN_BOX, on_event=seen.append)

    questions = [q for _, q in vlm.calls]
    assert questions[0] == FIRST_PROMPT.format(count=3)
    assert questions[1] == NEXT_PROMPT.format(count=3, previous="A swan glides left.")
    assert questions[2] == NEXT_PROMPT.format(count=3, previous="The swan turns around.")
    assert [(e.start_frame, e.end_frame, e.text, e.track_id) for e in result.events] == [
        (0, 3, "A swan glides left.", 1),
        (4, 7, "The swan turns around.", 1),
        (8, 11, "The swan dives.", 1),
    ]
    assert seen == result.events
    assert result.text == "A swan glides left. The swan turns around. The swan dives."
    assert result.task == "describe" and [t.id for t in result.tracks] == [1]
    assert sorted(result.tracks[0].frames) == list(range(12))  # the swan, not the duck
    assert result.tracks[0].attributes["prompt"] == {"frame": 0, "box": [2.0, 5.0, 12.0, 15.0]}
    # the model sees three crops of the object side by side, outside its mask greyed
    board = vlm.calls[0][0]
    assert board.shape[1] > 2 * board.shape[0]
    assert VideoResult.from_json(result.to_json()).to_dict() == result.to_dict()


def test_clips_without_the_object_are_skipped_and_the_story_continues():
    scene = _scene(visible=[*range(0, 4), *range(8, 12)])
    vlm = FakeVLM(["A swan swims.", "The swan is back."])
    task = StreamingRegionCaptioning(SceneTracker(scene), vlm=vlm, clip_frames=4)
    result = task(scene.frames(), frame=1, point=Point(8, 10))
    assert [(e.start_frame, e.end_frame) for e in result.events] == [(0, 3), (8, 11)]
    assert vlm.calls[1][1] == NEXT_PROMPT.format(count=3, previous="A swan swims.")


def test_the_same_caption_again_extends_the_event():
    scene = _scene()
    vlm = FakeVLM(["A swan swims.", "A swan swims.", "The swan flies off."])
    result = StreamingRegionCaptioning(SceneTracker(scene), vlm=vlm, clip_frames=4)(
        scene.frames(), box=SWAN_BOX
    )
    assert [(e.start_frame, e.end_frame, e.text) for e in result.events] == [
        (0, 7, "A swan swims."),
        (8, 11, "The swan flies off."),
    ]


def test_without_a_vlm_the_captioner_describes_the_middle_view():
    scene = _scene()
    captioner = FakeCaptioner(region_text="a swan")
    task = StreamingRegionCaptioning(SceneTracker(scene), captioner=captioner, clip_frames=6)
    result = task(scene.frames(), box=SWAN_BOX)
    # views of clip 0-5 are frames 0, 2 (2.5 rounds to even) and 5: the middle is frame 2
    assert [frame for frame, _ in captioner.regions] == [2, 8]
    assert captioner.regions[0][1] == tuple(result.tracks[0].frames[2].box)
    assert [e.text for e in result.events] == ["a swan on frame 2", "a swan on frame 8"]


def test_region_prompt_errors():
    scene = _scene()
    task = StreamingRegionCaptioning(SceneTracker(scene), vlm=FakeVLM(["x"]))
    with pytest.raises(InputError, match="exactly one"):
        task(scene.frames())
    with pytest.raises(InputError, match="exactly one"):
        task(scene.frames(), box=SWAN_BOX, point=Point(1, 1))
    with pytest.raises(InputError, match="outside"):
        task(scene.frames(), box=Box(100, 100, 120, 120))
    with pytest.raises(InputError, match="VLM or a captioner"):
        StreamingRegionCaptioning(SceneTracker(scene))


def test_describe_video_prefers_the_vlm_and_one_clip_without_streaming():
    scene = _scene()
    mask = np.zeros((48, 64), dtype=bool)
    mask[5:15, 2:12] = True
    vlm = FakeVLM(["A swan swims right."])
    pipeline = FakePipeline(video_segmenter=SceneTracker(scene), vlm=vlm, captioner=FakeCaptioner())
    result = pipeline.describe_video(scene.frames(), mask=mask, clip_frames=None, views=4)
    assert [(e.start_frame, e.end_frame) for e in result.events] == [(0, 11)]
    assert "captioner" not in pipeline.asked and result.model["views"] == 4
    assert result.model["vlm"] == {"class": "FakeVLM"} and result.model["clip_frames"] is None


@pytest.mark.slow
def test_tiny_streaming_captions_on_the_real_clip(swan_dir: Path):
    import pixelground

    pipeline = pixelground.load("tiny", device="cpu")
    events = []
    result = pipeline.describe_video(
        swan_dir,
        frame=3,
        box=Box(200, 100, 500, 400),
        clip_frames=4,
        views=2,
        on_event=events.append,
        stride=6,
        max_frames=8,
    )
    assert result.video.num_frames == 8 and (result.video.height, result.video.width) == (480, 854)
    (track,) = result.tracks
    assert track.id == 1 and set(track.frames) <= set(range(8))
    assert all(f.mask.shape == (480, 854) for f in track.frames.values())
    assert result.events and events[-1] is result.events[-1]
    ends = [(e.start_frame, e.end_frame) for e in result.events]
    assert ends[0][0] == 0 and ends[-1][1] == 7 and all(e.track_id == 1 for e in result.events)
    assert all(b[0] == a[1] + 1 for a, b in zip(ends, ends[1:], strict=False))
    assert VideoResult.from_json(result.to_json()).to_dict() == result.to_dict()
