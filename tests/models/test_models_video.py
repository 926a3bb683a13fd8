"""Referring video segmentation with the [SEG]-token model: every frame decoded as it streams."""

from __future__ import annotations

import numpy as np
import pytest

from pixelground.backends.seg_token import SegTokenModelBackend
from pixelground.video.frames import ArrayFrames
from pixelground.video.referring import ReferringVideoSegmentation


@pytest.fixture(scope="module")
def backend(tiny_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("seg_video_ckpt")
    tiny_model.save_pretrained(directory)
    return SegTokenModelBackend(directory, device="cpu")


def _clip(count: int = 11) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (36, 44, 3), dtype=np.uint8) for _ in range(count)]


def test_streamed_masks_match_whole_clip_decoding(backend, answers):
    frames = _clip()
    seg = backend.model.ids.seg
    with answers(backend, [seg, seg]):
        whole = backend.segment_video_expression(frames, "the red square")
    with answers(backend, [seg, seg]):
        chunks = list(backend.stream_video_expression(ArrayFrames(frames), "the red square", 4))
    assert [indices for indices, _ in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    streamed = np.concatenate([masks for _, masks in chunks], axis=1)
    assert streamed.shape == (2, 11, 36, 44)
    np.testing.assert_array_equal(streamed, np.stack(whole))


def test_referring_video_needs_no_tracker_with_the_model(backend, answers):
    frames = _clip()
    seg = backend.model.ids.seg
    task = ReferringVideoSegmentation(tracker=None, grounding_model=backend, preset="shapes")
    seen = []
    with answers(backend, [seg]):
        expected = backend.segment_video_expression(frames, "the red square")[0]
    with answers(backend, [seg]):
        result = task(ArrayFrames(frames), "the red square", on_frame=seen.append)
    assert [f.index for f in seen] == list(range(11))
    assert result.model["strategy"] == "end-to-end"
    assert result.model["key_frames"] == backend.video_key_frames(11)
    visible = [k for k in range(11) if expected[k].any()]
    assert 0 < len(visible)  # the random tiny model marks some pixels (frames with none: absent)
    (track,) = result.tracks
    assert track.id == 1 and track.phrase == "the red square"
    assert sorted(track.frames) == visible
    for k in visible:
        np.testing.assert_array_equal(track.mask(k, 36, 44), expected[k])
    assert track.attributes["start_frame"] == visible[0]


def test_no_target_answer_gives_no_tracks(backend, answers):
    task = ReferringVideoSegmentation(tracker=None, grounding_model=backend)
    words = backend.model.tokenizer.convert_tokens_to_ids(["no"])
    with answers(backend, words):
        result = task(ArrayFrames(_clip(5)), "the purple star")
    assert result.tracks == []
