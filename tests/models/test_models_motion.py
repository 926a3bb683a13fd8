"""``motion_features``: video frames' decoder embeddings carry how they differ from the clip."""

from __future__ import annotations

import numpy as np
import torch

from pixelground.models.backend import SegTokenModelBackend
from pixelground.models.config import SegModelConfig
from pixelground.models.data import read_finetune_jsonl
from pixelground.models.seg_model import SegTokenModel
from pixelground.models.tokenizer import build_word_tokenizer
from pixelground.video.frames import ArrayFrames


def _model(tiny_data, tiny_overrides, **options) -> SegTokenModel:
    torch.manual_seed(0)
    tokenizer = build_word_tokenizer(read_finetune_jsonl(tiny_data).texts())
    return SegTokenModel(SegModelConfig.from_dict({**tiny_overrides, **options}), tokenizer)


def _moving_square(count: int = 6, size: int = 40) -> list[np.ndarray]:
    """A white square moving right over grey, one frame per step."""
    frames = []
    for t in range(count):
        frame = np.full((size, size, 3), 90, dtype=np.uint8)
        frame[14:26, 4 + 5 * t : 16 + 5 * t] = 255
        frames.append(frame)
    return frames


def test_motion_features_start_as_without_them_and_learn_from_video_lines(
    tiny_data, tiny_batch, tiny_overrides
):
    plain = _model(tiny_data, tiny_overrides).eval()
    moving = _model(tiny_data, tiny_overrides, motion_features=True).eval()
    with torch.no_grad():  # built last and zero at first: the same model
        before = plain(**tiny_batch)["mask_logits"], moving(**tiny_batch)["mask_logits"]
    assert torch.allclose(*before, atol=1e-6)
    moving.train()
    moving(**tiny_batch)["loss"].backward()
    assert float(moving.motion_conv.weight.grad.abs().sum()) > 0


def test_only_frames_that_differ_from_their_clip_change(tiny_data, tiny_overrides):
    model = _model(tiny_data, tiny_overrides, motion_features=True).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.motion_conv.weight, std=0.1)
        still = _moving_square()[0]
        frames = [still, still, *_moving_square()[:3], still]
        features = model.encode_image(model.preprocess(frames))
        clips = torch.tensor([0, 0, 1, 1, 1, 2])  # a still clip, a moving clip, an image
        times = torch.tensor([0.0, 1.0, 0.0, 0.5, 1.0, -1.0])
        reference = model.clip_reference(features.embed, clips)
        assert torch.allclose(reference[2], features.embed[2:5].mean(0), atol=1e-5)
        moved = model.with_motion(features, reference, times).embed
    change = (moved - features.embed).abs().flatten(1).amax(1)
    assert float(change[:2].max()) < 1e-5  # a clip that does not move
    assert bool((change[2:5] > 1e-3).all())  # each frame of the moving clip
    assert float(change[5]) == 0.0  # an image is left as it is


def test_saved_motion_model_streams_like_it_decodes_a_whole_clip(
    tiny_data, tiny_overrides, tmp_path, answers
):
    model = _model(tiny_data, tiny_overrides, motion_features=True)
    with torch.no_grad():
        torch.nn.init.normal_(model.motion_conv.weight, std=0.5)
    model.save_pretrained(tmp_path)
    backend = SegTokenModelBackend(tmp_path, device="cpu")
    frames, seg, text = _moving_square(7), backend.model.ids.seg, "the square that moves right"
    with answers(backend, [seg]):
        whole = np.stack(backend.segment_video_expression(frames, text))
    with answers(backend, [seg]):
        chunks = list(backend.stream_video_expression(ArrayFrames(frames), text, 3))
    np.testing.assert_array_equal(np.concatenate([m for _, m in chunks], axis=1), whole)
    with torch.no_grad():  # the masks read the motion: without it they change
        backend.model.motion_conv.weight.zero_()
    with answers(backend, [seg]):
        still = np.stack(backend.segment_video_expression(frames, text))
    assert whole.shape == still.shape == (1, 7, 40, 40)
    assert not np.array_equal(whole, still)
