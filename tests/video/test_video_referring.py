"""Referring video segmentation: key frames, re-detection, Sa2VA's video path; tiny end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from video_task_fakes import (
    HEIGHT,
    WIDTH,
    FakePipeline,
    FakeSa2VAModel,
    FillSegmenter,
    Scene,
    SceneDetector,
    SceneTracker,
    moving_box,
    video_task_cache,  # noqa: F401  (module fixture: tiny model cache)
)

from pixelground.backends.base import Detection
from pixelground.backends.sa2va import Sa2VABackend
from pixelground.core.errors import InputError
from pixelground.core.result import VideoResult
from pixelground.video.keyframes import Candidate, box_mask, key_frame_indices, unmatched
from pixelground.video.referring import ReferringVideoSegmentation
from pixelground.video.sa2va_video import mask_stack

SWAN_SIZE = (480, 854)


def _task(scene: Scene, names: dict[str, list[str]], **options):
    detector = SceneDetector(scene, names, scores=options.pop("scores", None))
    tracker = SceneTracker(scene)
    task = ReferringVideoSegmentation(tracker, detector, FillSegmenter(), **options)
    return task, detector, tracker


def test_key_frames_spread_over_the_video():
    assert key_frame_indices(12, 4) == [0, 4, 7, 11]
    assert key_frame_indices(3, 5) == [0, 1, 2]
    assert key_frame_indices(9, 1) == [4]
    with pytest.raises(InputError):
        key_frame_indices(10, 0)


def test_tracks_start_on_the_key_frame_with_the_best_score():
    scene = Scene(12, {"swan": moving_box(range(12), 5, 10)})
    task, detector, tracker = _task(
        scene, {"the swan": ["swan"]}, key_frames=4, scores={("swan", 7): 0.9}
    )
    result = task(scene.frames(), "the swan")

    assert [frame for frame, _ in detector.calls] == [0, 4, 7, 11]
    assert len(result.tracks) == 1
    track = result.tracks[0]
    assert track.id == 1 and track.score == 0.9
    assert track.attributes["start_frame"] == 7 and track.attributes["prompt_frames"] == [7]
    assert track.attributes["origin"] == "key frame"
    assert track.phrase == "the swan" and track.span == (0, 8)
    assert sorted(track.frames) == list(range(12))
    # the tracker was prompted with the segmenter's mask of the best box on frame 7
    (_, frame, prompt) = tracker.sessions[0].prompts[0]
    assert frame == 7 and np.array_equal(prompt.mask, scene.mask("swan", 7))
    assert result.task == "segment" and result.text == "the swan"
    assert result.model["key_frames"] == [0, 4, 7, 11] and result.model["strategy"] == "detector"


def test_object_appearing_later_gets_a_new_track_and_nothing_is_duplicated():
    scene = Scene(12, {"a": moving_box(range(12), 2, 5), "b": moving_box(range(6, 12), 30, 25)})
    task, detector, tracker = _task(
        scene, {"all swans": ["a", "b"]}, key_frames=1, redetect_every=3
    )
    result = task(scene.frames(), "all swans")

    assert [t.id for t in result.tracks] == [1, 2]
    first, later = result.tracks
    assert first.attributes["start_frame"] == 5 and sorted(first.frames) == list(range(12))
    assert later.attributes["start_frame"] == 6 and later.attributes["origin"] == "re-detection"
    assert sorted(later.frames) == list(range(6, 12))
    # a is detected on 5, 0, 3, 6, 9 and b on 6, 9: only b on 6 starts a track
    assert [frame for frame, _ in detector.calls] == [5, 0, 3, 6, 9]
    assert len(tracker.sessions) == 2
    assert VideoResult.from_json(result.to_json()).to_dict() == result.to_dict()


def test_plural_expression_takes_instances_found_on_other_key_frames():
    scene = Scene(12, {"a": moving_box(range(12), 2, 5), "b": moving_box(range(8, 12), 30, 25)})
    scores = {("a", 6): 0.9, ("a", 0): 0.3, ("a", 11): 0.3, ("b", 11): 0.4}
    task, detector, _ = _task(scene, {"two swans": ["a", "b"]}, key_frames=3, scores=scores)
    result = task(scene.frames(), "two swans")
    # frame 6 scores 0.9 (a), frame 11 0.7 (a + b), frame 0 0.3: tracks start on 6, then b on 11
    assert [t.attributes["start_frame"] for t in result.tracks] == [6, 11]
    assert [t.attributes["origin"] for t in result.tracks] == ["key frame", "key frame"]
    assert sorted(result.tracks[1].frames) == [8, 9, 10, 11]
    assert [frame for frame, _ in detector.calls] == [0, 6, 11]


def test_multi_target_key_frame_is_the_one_showing_more_instances():
    scene = Scene(12, {"a": moving_box(range(12), 2, 5), "b": moving_box(range(6, 12), 30, 25)})
    task, _, tracker = _task(scene, {"two swans": ["a", "b"]}, key_frames=2)
    result = task(scene.frames(), "two swans")
    assert [t.attributes["start_frame"] for t in result.tracks] == [11, 11]
    assert len(tracker.sessions) == 1


def test_singular_expression_keeps_one_track_even_with_redetection():
    scene = Scene(10, {"a": moving_box(range(10), 2, 5), "b": moving_box(range(5, 10), 30, 25)})
    task, detector, _ = _task(scene, {"the swan": ["a", "b"]}, key_frames=2, redetect_every=2)
    result = task(scene.frames(), "the swan")
    assert len(result.tracks) == 1
    assert [frame for frame, _ in detector.calls] == [0, 9]  # one target found: no re-detection


def test_redetection_finds_a_target_no_key_frame_shows():
    scene = Scene(12, {"a": moving_box(range(4, 7), 2, 5)})
    task, detector, _ = _task(scene, {"the swan": ["a"]}, key_frames=2, redetect_every=5)
    result = task(scene.frames(), "the swan")
    assert [frame for frame, _ in detector.calls] == [0, 11, 5]
    (track,) = result.tracks
    assert track.attributes["start_frame"] == 5 and track.attributes["origin"] == "re-detection"
    assert sorted(track.frames) == [4, 5, 6]


def test_no_target_gives_an_empty_result():
    scene = Scene(6, {"a": moving_box(range(6), 2, 5)})
    task, _, tracker = _task(scene, {"the swan": ["a"]}, threshold=0.8)
    result = task(scene.frames(), "the swan")
    assert result.tracks == [] and not tracker.sessions
    assert result.video.num_frames == 6
    assert VideoResult.from_json(result.to_json()).tracks == []


def test_unmatched_drops_detections_of_tracked_objects():
    def candidate(box, score):
        detection = Detection(box, score, 0)
        return Candidate(0, detection, box_mask(box, HEIGHT, WIDTH))

    track = box_mask((0, 0, 20, 20), HEIGHT, WIDTH)
    same = candidate((2, 2, 22, 22), 0.9)  # IoU 0.68 with the track
    new = candidate((40, 10, 60, 30), 0.8)
    new_again = candidate((41, 10, 61, 30), 0.5)  # a second box on the new object
    kept = unmatched([new_again, same, new], [track], match_iou=0.3)
    assert kept == [new]
    assert unmatched([same], [track], match_iou=0.9) == [same]


def test_bad_settings_are_input_errors():
    scene = Scene(4, {"a": moving_box(range(4), 2, 5)})
    tracker = SceneTracker(scene)
    with pytest.raises(InputError, match="detector"):
        ReferringVideoSegmentation(tracker)
    with pytest.raises(InputError, match="redetect_every"):
        ReferringVideoSegmentation(tracker, SceneDetector(scene, {}), redetect_every=0)
    task = ReferringVideoSegmentation(tracker, SceneDetector(scene, {}))
    with pytest.raises(InputError, match="empty"):
        task(scene.frames(), "  ")


# --------------------------------------------------------------------- Sa2VA end to end
def test_sa2va_sees_the_key_frames_and_its_masks_prompt_the_tracker():
    scene = Scene(12, {"swan": moving_box(range(4, 12), 5, 10)})
    model = FakeSa2VAModel(scene, "swan")
    backend = Sa2VABackend.from_model(model, tokenizer="TOKENIZER")
    tracker = SceneTracker(scene)
    task = ReferringVideoSegmentation(tracker, grounding_model=backend, key_frames=3)
    result = task(scene.frames(), "the swan")

    (call,) = model.calls
    assert call["frames"] == [0, 6, 11]  # sampled across the video, not the first five
    assert call["text"] == "<image>Please segment the swan." and call["tokenizer"] == "TOKENIZER"
    (track,) = result.tracks
    # the mask on key frame 0 is empty (the swan is not there yet): prompts on 6 and 11 only
    assert track.attributes["prompt_frames"] == [6, 11]
    assert track.attributes["origin"] == "sa2va" and track.score == 1.0
    assert sorted(track.frames) == list(range(4, 12))
    assert result.model["strategy"] == "end-to-end"


def test_sa2va_mask_stacks_are_normalised():
    small = np.zeros((3, 24, 32), dtype=np.float32)
    small[:, :12, :16] = 0.9
    stack = mask_stack(small, 3, HEIGHT, WIDTH)
    assert stack.shape == (3, HEIGHT, WIDTH) and stack.dtype == bool
    assert stack[:, :24, :32].all() and not stack[:, 24:, :].any()
    single = mask_stack(np.ones((HEIGHT, WIDTH), dtype=bool), 2, HEIGHT, WIDTH)
    assert single.shape == (2, HEIGHT, WIDTH) and single.all()
    assert not mask_stack(None, 2, HEIGHT, WIDTH).any()
    short = mask_stack(np.ones((1, HEIGHT, WIDTH)), 3, HEIGHT, WIDTH)
    assert short[0].all() and not short[1:].any()


def test_segment_video_picks_the_strategy_from_the_pipeline():
    scene = Scene(8, {"swan": moving_box(range(8), 5, 10)})
    sa2va = Sa2VABackend.from_model(FakeSa2VAModel(scene, "swan"), tokenizer=None)
    pipeline = FakePipeline(
        video_segmenter=SceneTracker(scene),
        grounding_model=sa2va,
        detector=SceneDetector(scene, {"the swan": ["swan"]}),
        segmenter=FillSegmenter(),
    )
    auto = pipeline.segment_video(scene.frames(), "the swan", key_frames=2)
    assert auto.model["strategy"] == "end-to-end" and "detector" not in pipeline.asked
    assert auto.model["note"].startswith("random-weight") and auto.model["preset"] == "fake"
    forced = pipeline.segment_video(scene.frames(), "the swan", strategy="detector", stride=2)
    assert forced.model["strategy"] == "detector" and forced.video.num_frames == 4
    assert forced.video.frame_indices == [0, 2, 4, 6]
    with pytest.raises(InputError, match="strategy"):
        pipeline.segment_video(scene.frames(), "the swan", strategy="magic")


# --------------------------------------------------------------------- tiny end to end
@pytest.fixture(scope="module")
def tiny_run(swan_dir: Path):
    """The tiny preset on 8 real frames (every 6th of blackswan), computed once."""
    import pixelground
    from pixelground.video.frames import open_video

    pipeline = pixelground.load("tiny", device="cpu")
    frames = open_video(swan_dir, stride=6, max_frames=8)
    seen = []
    result = pipeline.segment_video(
        frames, "the black swan", key_frames=2, threshold=0.0, on_frame=seen.append
    )
    return result, frames, seen


@pytest.mark.slow
def test_tiny_referring_on_the_real_clip(tiny_run):
    result, _, seen = tiny_run
    assert result.video.num_frames == 8 and (result.video.height, result.video.width) == SWAN_SIZE
    assert result.video.frame_indices == [0, 6, 12, 18, 24, 30, 36, 42]
    assert len(result.tracks) == 1  # singular expression: one object
    track = result.tracks[0]
    assert track.attributes["start_frame"] in (0, 7)
    assert set(track.frames) <= set(range(8)) and track.frames
    for entry in track.frames.values():
        mask = entry.mask
        assert mask.shape == SWAN_SIZE and mask.dtype == bool and mask.any()
    # every frame was propagated once per track, both ways from the start frame
    assert sorted(output.index for output in seen) == list(range(8))
    assert result.model["video_segmenter"]["class"] == "Sam2VideoTracker"
    assert "not meaningful" in result.model["note"]
    data = result.to_dict()
    assert [f["frame"] for f in data["tracks"][0]["frames"]] == sorted(track.frames)
    assert VideoResult.from_json(result.to_json()).to_dict() == data


@pytest.mark.slow
def test_tiny_referring_outputs_read_back(tiny_run, tmp_path: Path, shared_data: Path):
    from pixelground.video.frames import open_video
    from pixelground.video.outputs import (
        label_map,
        read_davis_masks,
        write_davis_masks,
        write_overlay_video,
    )

    result, frames, _ = tiny_run
    folder = write_davis_masks(result, tmp_path / "pred")
    assert folder.name == "blackswan"
    labels = read_davis_masks(folder)
    assert sorted(labels) == result.video.frame_indices
    for k, source in enumerate(result.video.frame_indices):
        assert labels[source].shape == SWAN_SIZE
        assert np.array_equal(labels[source], label_map(result, k))

    overlay = write_overlay_video(result, frames, tmp_path / "overlay.mp4")
    decoded = open_video(overlay)
    assert len(decoded) == 8 and (decoded.height, decoded.width) == SWAN_SIZE

    vos = pytest.importorskip("pixelground.eval.metrics.vos")
    truth = tmp_path / "gt" / "blackswan"
    truth.mkdir(parents=True)
    annotations = shared_data / "davis2016_blackswan" / "Annotations" / "480p" / "blackswan"
    for source in result.video.frame_indices:
        shutil.copy(annotations / f"{source:05d}.png", truth / f"{source:05d}.png")
    scores = vos.evaluate_vos(tmp_path / "gt", tmp_path / "pred", "semi")
    entry = scores["per_object"]["blackswan_1"]
    expected = []
    for k, source in enumerate(result.video.frame_indices[1:-1], start=1):
        gt = np.asarray(Image.open(truth / f"{source:05d}.png")) > 0
        pred = label_map(result, k) == 1
        union = (gt | pred).sum()
        expected.append((gt & pred).sum() / union if union else 1.0)
    assert np.allclose(entry["J_per_frame"], expected)


def test_an_opened_video_takes_no_more_sampling():
    from pixelground.video.frames import open_video
    from pixelground.video.keyframes import as_frames

    frames = open_video(Scene(4).frames())
    assert as_frames(frames) is frames and as_frames(frames, stride=1) is frames
    with pytest.raises(InputError, match="max_frames"):
        as_frames(frames, max_frames=3)
    assert len(as_frames(Scene(6).frames(), stride=2)) == 3
