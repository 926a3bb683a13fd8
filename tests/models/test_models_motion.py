"""``motion_features`` and ``motion_loss_weight``: video frames' decoder embeddings carry how
the clip moves around them, and a head reads the target's velocity from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelground.backends.seg_token import SegTokenModelBackend
from pixelground.core.errors import InputError
from pixelground.models.config import SegModelConfig
from pixelground.models.heads import motion_match
from pixelground.models.losses import mask_velocities
from pixelground.models.objective import training_losses
from pixelground.models.parts import ClipKeys, neighbour_keys
from pixelground.video.frames import ArrayFrames


def _moving_square(count: int = 6, size: int = 40) -> list[np.ndarray]:
    """A white square moving right over grey, 5 pixels a frame."""
    frames = []
    for t in range(count):
        frame = np.full((size, size, 3), 90, dtype=np.uint8)
        frame[14:26, 4 + 5 * t : 16 + 5 * t] = 255
        frames.append(frame)
    return frames


def test_neighbour_keys_are_the_key_frames_around_each_frame_in_its_clip():
    key_times = torch.tensor([0.0, 0.4, 1.0, 0.5])
    key_clips = torch.tensor([0, 0, 0, 1])
    times = torch.tensor([0.0, 0.2, 0.4, 0.7, 1.0, 0.1, 0.5])
    clips = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    before, after = neighbour_keys(times, clips, key_times, key_clips)
    # the first key frame has none before it (itself), the last none after; a key frame's
    # neighbours are the key frames on either side; a clip with one key frame gets it twice
    assert before.tolist() == [0, 0, 0, 1, 1, 3, 3]
    assert after.tolist() == [1, 1, 2, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="no key frame"):
        neighbour_keys(torch.tensor([0.5]), torch.tensor([2]), key_times, key_clips)


def test_mask_velocities_follow_the_centroid_from_first_to_last_visible_frame():
    masks = torch.tensor(np.stack([f[..., 0] == 255 for f in _moving_square(4)]))
    empty = torch.zeros_like(masks[:1])
    masks = torch.cat([masks, empty, masks[:1], empty])  # object 1 moves; 2 is seen once
    owners = torch.tensor([1, 1, 1, 1, 2, 2, 3])
    times = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0, 0.0, 1.0, 0.5])
    velocity, found = mask_velocities(masks, owners, times)
    assert found.tolist() == [1]
    # 15 pixels right over the clip, in sides of a 40-pixel frame
    assert torch.allclose(velocity[0], torch.tensor([15 / 40, 0.0]), atol=1e-6)


def test_motion_model_starts_as_without_it_and_both_parts_learn(seeded_model, tiny_batch):
    plain = seeded_model().eval()
    moving = seeded_model(motion_features=True, motion_loss_weight=1.0)
    with torch.no_grad():  # built last, its last layer zero at first: the same masks
        before = (
            training_losses(plain, tiny_batch)["mask_logits"],
            training_losses(moving.eval(), tiny_batch)["mask_logits"],
        )
    assert torch.allclose(*before, atol=1e-6)
    moving.train()
    out = training_losses(moving, tiny_batch)
    assert float(out["motion_loss"].detach()) > 0  # the tiny data's video square moves right
    out["loss"].backward()
    assert float(moving.heads["motion_net"][2].weight.grad.abs().sum()) > 0
    assert float(moving.heads["velocity"].weight.grad.abs().sum()) > 0


def test_motion_loss_needs_motion_features(tiny_overrides):
    with pytest.raises(InputError, match="motion_loss_weight needs motion_features"):
        SegModelConfig.from_dict({**tiny_overrides, "motion_loss_weight": 1.0})


def test_a_frame_is_changed_by_how_its_clip_moves_around_it(seeded_model):
    model = seeded_model(motion_features=True).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.heads["motion_net"][2].weight, std=0.1)
        moving = _moving_square(3)
        still = moving[1]
        frames = [still, still, still, *moving, still]  # a still clip, a moving one, an image
        features = model.encode_image(model.preprocess(frames))
        clips = torch.tensor([0, 0, 0, 1, 1, 1, 2])
        times = torch.tensor([0.0, 0.5, 1.0, 0.0, 0.5, 1.0, -1.0])
        keys = ClipKeys(features.embed, times, clips)
        moved = model.with_motion(features, keys, times, clips).embed
    # the same picture in the middle of a still clip and of a moving one
    assert not torch.allclose(moved[1], moved[4], atol=1e-4)
    assert torch.allclose(moved[0], moved[1], atol=1e-5)  # a still clip: the same everywhere
    assert torch.equal(moved[6], features.embed[6])  # an image is left as it is


def test_saved_motion_model_streams_like_it_decodes_a_whole_clip(seeded_model, tmp_path, answers):
    model = seeded_model(motion_features=True, motion_loss_weight=0.5)
    with torch.no_grad():
        torch.nn.init.normal_(model.heads["motion_net"][2].weight, std=0.5)
    model.save_pretrained(tmp_path)
    backend = SegTokenModelBackend(tmp_path, device="cpu")
    assert backend.model.heads["velocity"] is not None
    frames, seg, text = _moving_square(7), backend.model.ids.seg, "the square that moves right"
    with answers(backend, [seg]):
        whole = np.stack(backend.segment_video_expression(frames, text))
    with answers(backend, [seg]):
        chunks = list(backend.stream_video_expression(ArrayFrames(frames), text, 3))
    np.testing.assert_array_equal(np.concatenate([m for _, m in chunks], axis=1), whole)
    with torch.no_grad():  # the masks read the motion: without it they change
        backend.model.heads["motion_net"][2].weight.zero_()
    with answers(backend, [seg]):
        still = np.stack(backend.segment_video_expression(frames, text))
    assert whole.shape == still.shape == (1, 7, 40, 40)
    assert not np.array_equal(whole, still)


def test_motion_query_starts_as_without_it_and_learns_to_ask(seeded_model, tiny_batch):
    options = {"motion_features": True, "motion_loss_weight": 1.0}
    without = seeded_model(**options).eval()
    asking = seeded_model(**options, motion_query=True)
    with torch.no_grad():  # built last, its gate zero at first: the same masks
        before = training_losses(without, tiny_batch), training_losses(asking.eval(), tiny_batch)
    assert torch.allclose(before[0]["mask_logits"], before[1]["mask_logits"], atol=1e-6)
    # the asked velocity has a loss of its own from the start
    assert float(before[1]["motion_loss"]) > float(before[0]["motion_loss"])
    asking.train()
    training_losses(asking, tiny_batch)["loss"].backward()
    assert float(asking.heads["query_velocity"].weight.grad.abs().sum()) > 0
    assert float(asking.heads["motion_gate"].weight.grad.abs().sum()) > 0


def test_motion_match_prefers_places_that_move_as_asked(seeded_model):
    options = {"motion_features": True, "motion_loss_weight": 1.0, "motion_query": True}
    model = seeded_model(**options).eval()
    d = model.config.decoder_dim
    with torch.no_grad():
        model.heads["velocity"].weight.zero_()
        model.heads["velocity"].bias.zero_()
        model.heads["velocity"].weight[0, 0] = 1.0  # a place's x velocity: channel 0
        model.heads["query_velocity"].weight.zero_()
        model.heads["query_velocity"].bias.copy_(torch.tensor([1.0, 0.0]))  # "moves right"
        model.heads["motion_gate"].bias.fill_(2.0)
        embed = torch.zeros(2, d, 4, 4)
        embed[:, 0, 1, 2] = 1.0  # moves right
        embed[:, 0, 3, 0] = -1.0  # moves left
        queries = torch.randn(2, model.lm.config.hidden_size)
        term = motion_match(model.heads, queries, embed, torch.tensor([0.5, -1.0]))
    assert term[0].flatten().argmax().item() == 1 * 4 + 2
    assert float(term[0, 1, 2]) == 0.0 and float(term[0, 3, 0]) == pytest.approx(-8.0)
    assert float(term[1].abs().max()) == 0.0  # an image gets no motion term


def test_motion_query_needs_the_motion_loss(tiny_overrides):
    with pytest.raises(InputError, match="motion_query needs"):
        SegModelConfig.from_dict({**tiny_overrides, "motion_features": True, "motion_query": True})
