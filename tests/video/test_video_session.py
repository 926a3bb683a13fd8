"""TrackingSession over a tiny random-weight Sam2VideoModel: prompts, propagation, ids, memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixelground.core.errors import InputError
from pixelground.core.masks import mask_iou
from pixelground.core.prompts import Box, Point, Prompt
from pixelground.video.frames import open_video

SWAN_SIZE = (480, 854)
SWAN_BOX = Box(200, 100, 500, 400)


def test_box_and_point_propagate_both_ways_in_bounded_memory(tracker, swan_dir: Path):
    frames = open_video(swan_dir)
    session = tracker.session(frames)
    first, mask0 = session.add_prompt(0, Prompt(box=SWAN_BOX))
    second, mask10 = session.add_prompt(10, Prompt(points=(Point(400, 250),)))
    assert (first, second) == (1, 2)
    mask, score = mask0  # a TrackMask unpacks as (mask, score)
    assert mask.shape == SWAN_SIZE and mask.dtype == bool and 0 <= score <= 1
    assert session.planned_frames("both") == 50 + 11

    seen: dict[int, list[int]] = {1: [], 2: []}
    bound = session.pointer_window
    for output in session.propagate("both"):
        assert output.source_index == output.index
        for track_id, found in output.tracks.items():
            seen[track_id].append(output.index)
            assert found.mask.shape == SWAN_SIZE and found.mask.dtype == bool
            assert 0.0 <= found.score <= 1.0
        stats = session.memory_stats()
        assert stats["pixel_frames"] == 0 and stats["feature_frames"] == 0
        for track_stats in stats["tracks"].values():
            assert track_stats["conditioning"] == 1
            assert track_stats["pointers"] <= bound
            assert track_stats["memory"] <= session.memory_window
    # every frame exactly once per object: object 2 before frame 10 comes from the backward pass
    assert sorted(seen[1]) == list(range(50)) and sorted(seen[2]) == list(range(50))
    assert seen[2][:40] == list(range(10, 50)) and seen[2][40:] == list(range(9, -1, -1))
    assert session.track_ids == [1, 2]
    assert bound == 15 and session.memory_window == 6  # SAM2: 7 memories, 16 object pointers


def test_pruning_does_not_change_results(tracker, swan_dir: Path):
    """Bounded session == transformers' default session that keeps every frame's state."""
    import torch

    frames = open_video(swan_dir, max_frames=20)
    session = tracker.session(frames)
    session.add_prompt(0, Prompt(box=SWAN_BOX))
    ours = {o.index: o.tracks[1].mask for o in session.propagate("forward")}

    model, processor = tracker.model, tracker.processor
    state = processor.init_video_session(inference_device="cpu", dtype=torch.float32)
    processor.add_inputs_to_inference_session(
        state,
        frame_idx=0,
        obj_ids=[1],
        input_boxes=[[[200, 100, 500, 400]]],
        original_size=SWAN_SIZE,
    )
    for frame in frames:
        pixels = processor(images=frame.pixels, return_tensors="pt")["pixel_values"][0]
        out = model(inference_session=state, frame=pixels, frame_idx=frame.index)
        theirs = processor.post_process_masks([out.pred_masks], original_sizes=[SWAN_SIZE])[0]
        assert np.array_equal(ours[frame.index], theirs[0, 0].numpy()), frame.index
    assert len(state.processed_frames) == 20  # the default keeps every frame's pixels


def test_mask_prompt_is_taken_as_the_mask(tracker, swan_dir: Path):
    session = tracker.session(open_video(swan_dir, max_frames=6))
    wanted = np.zeros(SWAN_SIZE, dtype=bool)
    wanted[120:360, 250:600] = True
    track_id, found = session.add_prompt(3, Prompt(mask=wanted), track_id=7)
    assert track_id == 7
    assert mask_iou(found.mask, wanted)[0, 0] > 0.9
    outputs = list(session.propagate("both"))
    assert sorted(o.index for o in outputs) == list(range(6))
    assert all(list(o.tracks) == [7] for o in outputs)
    on_prompt = next(o for o in outputs if o.index == 3)
    assert np.array_equal(on_prompt.tracks[7].mask, found.mask)


def test_correction_becomes_a_conditioning_frame(tracker, swan_dir: Path):
    session = tracker.session(open_video(swan_dir, max_frames=8))
    session.add_prompt(0, Prompt(box=SWAN_BOX))
    before = {o.index: o.tracks[1].mask for o in session.propagate()}
    _, corrected = session.add_prompt(5, Prompt(points=(Point(300, 200, positive=False),)), 1)
    assert session.prompt_frames(1) == [0, 5]
    assert session.memory_stats()["tracks"][1]["conditioning"] == 2
    after = {o.index: o.tracks[1].mask for o in session.propagate()}
    assert sorted(after) == list(range(8))
    assert np.array_equal(after[5], corrected.mask)  # the corrected frame is kept as prompted
    assert np.array_equal(after[0], before[0])  # the anchor frame is untouched


def test_objects_added_mid_video_keep_stable_ids(tracker, swan_dir: Path):
    session = tracker.session(open_video(swan_dir, max_frames=8))
    session.add_prompt(0, Prompt(box=SWAN_BOX), track_id=5)
    first_run = {o.index: dict(o.tracks) for o in session.propagate()}
    assert all(list(t) == [5] for t in first_run.values())
    new_id, _ = session.add_prompt(4, Prompt(points=(Point(100, 300),)))
    assert new_id == 6 and session.track_ids == [5, 6]
    per_track: dict[int, set[int]] = {5: set(), 6: set()}
    for output in session.propagate():
        for track_id in output.tracks:
            per_track[track_id].add(output.index)
    assert per_track == {5: set(range(8)), 6: set(range(8))}


def test_prompt_errors(tracker, swan_dir: Path):
    session = tracker.session(open_video(swan_dir, max_frames=4))
    with pytest.raises(InputError, match="no objects"):
        list(session.propagate())
    with pytest.raises(InputError, match="outside"):
        session.add_prompt(0, Prompt(points=(Point(900, 10),)))
    with pytest.raises(InputError, match="outside the video"):
        session.add_prompt(4, Prompt(box=SWAN_BOX))
    with pytest.raises(InputError, match="track ids"):
        session.add_prompt(0, Prompt(box=SWAN_BOX), track_id=0)
    mask = np.zeros(SWAN_SIZE, dtype=bool)
    mask[10:20, 10:20] = True
    with pytest.raises(InputError, match="mask prompt alone"):
        session.add_prompt(0, Prompt(mask=mask, points=(Point(15, 15),)))
    assert session.track_ids == []  # rejected prompts leave no half-made track behind
    with pytest.raises(InputError, match="no objects"):
        list(session.propagate())
    with pytest.raises(InputError, match="direction"):
        session.add_prompt(0, Prompt(box=SWAN_BOX))
        list(session.propagate("sideways"))
    with pytest.raises(InputError, match="memory_frames"):
        tracker.session(open_video(swan_dir), memory_frames=8)


def _reference_masks(tracker, frames, memory_frames: int) -> dict[int, np.ndarray]:
    """transformers' own session (keeps everything) with the model's bank set to the size."""
    import torch

    model, processor = tracker.model, tracker.processor
    state = processor.init_video_session(inference_device="cpu", dtype=torch.float32)
    processor.add_inputs_to_inference_session(
        state,
        frame_idx=0,
        obj_ids=[1],
        input_boxes=[[[200, 100, 500, 400]]],
        original_size=SWAN_SIZE,
    )
    full, model.num_maskmem = model.num_maskmem, memory_frames
    masks = {}
    try:
        for frame in frames:
            pixels = processor(images=frame.pixels, return_tensors="pt")["pixel_values"][0]
            with torch.inference_mode():
                out = model(inference_session=state, frame=pixels, frame_idx=frame.index)
            found = processor.post_process_masks([out.pred_masks], original_sizes=[SWAN_SIZE])[0]
            masks[frame.index] = found[0, 0].numpy()
    finally:
        model.num_maskmem = full
    return masks


def test_every_memory_frames_value_tracks_the_real_clip(tracker, swan_dir: Path):
    """Each accepted --memory-frames (1 .. num_maskmem) tracks the clip as SAM2 with that bank."""
    frames = open_video(swan_dir, max_frames=10)
    bank = tracker.model.config.num_maskmem
    for memory_frames in range(1, bank + 1):
        session = tracker.session(frames, memory_frames=memory_frames)
        session.add_prompt(0, Prompt(box=SWAN_BOX))
        ours = {o.index: o.tracks[1].mask for o in session.propagate("forward")}
        assert sorted(ours) == list(range(10)), memory_frames
        for track_stats in session.memory_stats()["tracks"].values():
            assert track_stats["memory"] <= memory_frames - 1
        theirs = _reference_masks(tracker, frames, memory_frames)
        for index, mask in ours.items():
            assert np.array_equal(mask, theirs[index]), (memory_frames, index)
    assert tracker.model.num_maskmem == bank  # the shared model is left as it was
