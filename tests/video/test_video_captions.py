"""Video grounded captions: frame captions merged, phrases grounded and tracked; tiny end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from video_task_fakes import (
    FakeCaptioner,
    FakePipeline,
    FakeSa2VAModel,
    FakeVLM,
    FillSegmenter,
    ListParser,
    Scene,
    SceneDetector,
    SceneTracker,
    moving_box,
    video_task_cache,  # noqa: F401  (module fixture: tiny model cache)
)

from pixelground.backends.sa2va import Sa2VABackend
from pixelground.core.errors import InputError
from pixelground.core.result import VideoResult
from pixelground.video.captions import (
    MERGE_PROMPT,
    VIDEO_PROMPT,
    VideoGroundedCaptioning,
    consensus_caption,
)
from pixelground.video.sa2va_video import VIDEO_GCG_PROMPT


def _scene() -> Scene:
    return Scene(
        12,
        {
            "swan": moving_box(range(12), 2, 5),
            "duck1": moving_box(range(12), 30, 30, size=8, dx=0),
            "duck2": moving_box(range(5, 12), 45, 30, size=8, dx=0),
        },
    )


def test_consensus_keeps_the_caption_the_others_agree_with():
    captions = ["a swan on a lake", "", "a black swan swims on a lake", "a dog"]
    assert consensus_caption(captions) == "a black swan swims on a lake"
    assert consensus_caption(["", "  "]) == ""
    assert consensus_caption(["one caption"]) == "one caption"


def test_frame_captions_are_merged_and_kept_as_events():
    scene = _scene()
    captioner = FakeCaptioner({0: "a swan on a lake", 6: "a swan swims on a lake", 11: "water"})
    task = VideoGroundedCaptioning(captioner=captioner, sample_frames=3)
    result = task(scene.frames(), grounded=False)
    assert result.task == "caption" and result.text == "a swan swims on a lake"
    assert [(e.start_frame, e.end_frame, e.text) for e in result.events] == [
        (0, 0, "a swan on a lake"),
        (6, 6, "a swan swims on a lake"),
        (11, 11, "water"),
    ]
    assert result.tracks == [] and "vlm" not in result.model
    assert result.model["captioner"] == {"class": "FakeCaptioner"}


def test_vlm_merge_gets_the_frame_captions_in_order():
    scene = _scene()
    captioner = FakeCaptioner({0: "a swan", 11: "a swan and two ducks"})
    vlm = FakeVLM(["A swan swims towards two ducks."])
    task = VideoGroundedCaptioning(captioner=captioner, vlm=vlm, sample_frames=2, merge="vlm")
    result = task(scene.frames(), grounded=False)
    assert result.text == "A swan swims towards two ducks."
    ((board, question),) = vlm.calls
    assert question == MERGE_PROMPT.format(count=2, captions="1. a swan\n2. a swan and two ducks")
    assert board.ndim == 3 and board.shape[2] == 3


def test_without_a_captioner_the_vlm_sees_the_sampled_frames_tiled():
    scene = _scene()
    vlm = FakeVLM(["A swan swims."])
    result = VideoGroundedCaptioning(vlm=vlm, sample_frames=4)(scene.frames(), grounded=False)
    assert result.text == "A swan swims." and result.events == []
    ((board, question),) = vlm.calls
    assert question == VIDEO_PROMPT.format(count=4)
    # 2 x 2 tiles of 384-pixel-high frames with an 8-pixel gap
    assert board.shape[0] == 2 * 384 + 8 and board.shape[1] == 2 * 512 + 8
    with pytest.raises(InputError, match="captioner or a VLM"):
        VideoGroundedCaptioning(sample_frames=2)(scene.frames(), grounded=False)


def test_grounded_phrases_are_tracked_with_spans_into_the_caption():
    scene = _scene()
    detector = SceneDetector(
        scene,
        {"a swan": ["swan"], "two ducks": ["duck1", "duck2"]},
        scores={("swan", 6): 0.9},
    )
    tracker = SceneTracker(scene)
    task = VideoGroundedCaptioning(
        tracker=tracker, detector=detector, segmenter=FillSegmenter(), sample_frames=3
    )
    result = task(scene.frames(), caption="<p>a swan</p> swims past <p>two ducks</p>")
    assert result.text == "a swan swims past two ducks"
    assert [(t.id, t.phrase, t.span) for t in result.tracks] == [
        (1, "a swan", (0, 6)),
        (2, "two ducks", (18, 27)),
        (3, "two ducks", (18, 27)),
    ]
    for track in result.tracks:
        assert result.text[track.span[0] : track.span[1]] == track.phrase
    swan, duck1, duck2 = result.tracks
    assert swan.attributes["start_frame"] == 6 and swan.score == 0.9
    # the second duck is only visible from frame 5: both ducks start on frame 6, not 0
    assert duck1.attributes["start_frame"] == duck2.attributes["start_frame"] == 6
    assert sorted(duck2.frames) == list(range(5, 12))
    assert len(tracker.sessions) == 1  # every phrase tracked in one session
    assert sorted({frame for frame, _ in detector.calls}) == [0, 6, 11]
    assert VideoResult.from_json(result.to_json()).to_dict() == result.to_dict()


def test_caption_phrases_come_from_the_parser():
    scene = _scene()
    captioner = FakeCaptioner(dict.fromkeys(range(12), "a swan near the ducks"))
    task = VideoGroundedCaptioning(
        tracker=SceneTracker(scene),
        captioner=captioner,
        detector=SceneDetector(scene, {"a swan": ["swan"]}),
        segmenter=FillSegmenter(),
        parser=ListParser(["a swan", "the ducks"]),
        sample_frames=2,
    )
    result = task(scene.frames())
    assert result.text == "a swan near the ducks"
    assert [(t.phrase, t.span) for t in result.tracks] == [("a swan", (0, 6))]  # ducks: no box


def test_sa2va_writes_and_grounds_the_video_caption():
    scene = _scene()
    answer = "<p>A swan</p> [SEG] swims past <p>a duck</p> [SEG].<|im_end|>"
    model = FakeSa2VAModel(scene, "swan", answer=answer, extra=["duck1"])
    backend = Sa2VABackend.from_model(model, tokenizer="TOKENIZER")
    task = VideoGroundedCaptioning(tracker=SceneTracker(scene), grounding_model=backend)
    result = task(scene.frames())
    (call,) = model.calls
    assert call["text"] == "<image>" + VIDEO_GCG_PROMPT and call["frames"] == [0, 4, 7, 11]
    assert result.text == "A swan swims past a duck."
    assert [(t.id, t.phrase, t.span) for t in result.tracks] == [
        (1, "A swan", (0, 6)),
        (2, "a duck", (18, 24)),
    ]
    assert result.tracks[0].attributes["prompt_frames"] == [0, 4, 7, 11]
    assert "[SEG]" in result.model["raw"]


def test_caption_video_loads_only_what_it_needs():
    scene = _scene()
    pipeline = FakePipeline(
        captioner=FakeCaptioner({0: "a swan"}),
        vlm=FakeVLM(["unused"]),
        video_segmenter=SceneTracker(scene),
        detector=SceneDetector(scene, {"a swan": ["swan"]}),
        segmenter=FillSegmenter(),
        parser=ListParser(["a swan"]),
    )
    plain = pipeline.caption_video(scene.frames(), grounded=False, sample_frames=2)
    assert plain.text == "a swan" and plain.tracks == []
    assert pipeline.asked == ["captioner"]
    grounded = pipeline.caption_video(scene.frames(), sample_frames=2)
    assert [t.phrase for t in grounded.tracks] == ["a swan"]
    assert "vlm" not in pipeline.asked and grounded.model["note"].startswith("random-weight")


# --------------------------------------------------------------------- tiny end to end
@pytest.mark.slow
def test_tiny_grounded_video_caption_on_an_mp4(swan_mp4: Path):
    import pixelground

    pipeline = pixelground.load("tiny", device="cpu")
    caption = "<p>a black swan</p> swims on <p>the pond</p>"
    result = pipeline.caption_video(
        swan_mp4, caption=caption, sample_frames=2, threshold=0.0, stride=6, max_frames=8
    )
    assert result.text == "a black swan swims on the pond"
    assert result.video.num_frames == 8 and (result.video.height, result.video.width) == (480, 854)
    assert result.video.fps == pytest.approx(4.0)  # 24 fps, every 6th frame
    assert result.tracks, "threshold 0 keeps the tiny detector's boxes"
    for track in result.tracks:
        assert track.phrase in ("a black swan", "the pond")
        assert result.text[track.span[0] : track.span[1]] == track.phrase
        assert set(track.frames) <= set(range(8))
        assert all(f.mask.shape == (480, 854) for f in track.frames.values())
    assert len({t.id for t in result.tracks}) == len(result.tracks)
    assert VideoResult.from_json(result.to_json()).to_dict() == result.to_dict()
    assert np.isfinite([t.score for t in result.tracks]).all()
