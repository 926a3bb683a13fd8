"""SAM2's memory for video [SEG] tracks (``video_memory``): training recurrence, streaming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixelground.backends.seg_token import SegTokenModelBackend
from pixelground.core.errors import InputError
from pixelground.models.memory import FrameMemory, MemoryBank
from pixelground.video.frames import ArrayFrames


@pytest.fixture
def memory_model(tiny_data, tiny_overrides):
    """The tiny model with a 2-frame memory (whose zero-initialised embeddings are drawn, so
    that they matter in the checks)."""
    from pixelground.models.config import SegModelConfig
    from pixelground.models.data import read_finetune_jsonl
    from pixelground.models.seg_model import SegTokenModel
    from pixelground.models.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(read_finetune_jsonl(tiny_data).texts())
    torch.manual_seed(0)
    model = SegTokenModel(
        SegModelConfig.from_dict({**tiny_overrides, "video_memory": 2}), tokenizer
    )
    with torch.no_grad():
        model.frame_memory.no_memory.normal_()
        model.frame_memory.frames_back.normal_()
    return model.eval()


def test_bank_keeps_the_last_frames_and_selects_tracks():
    bank = MemoryBank(2)
    for value in range(3):
        bank.push(torch.full((3, 64, 2, 2), float(value)), torch.zeros(3, 64, 2, 2))
    assert len(bank) == 2 and [float(f[0, 0, 0, 0]) for f in bank.features] == [1.0, 2.0]
    picked = bank.select(torch.tensor([2]))
    assert picked.features[0].shape == (1, 64, 2, 2) and len(picked) == 2


def test_conditioning_reads_the_memory_track_by_track():
    torch.manual_seed(0)
    memory = FrameMemory(dim=16, grid=4, frames=2, layers=1)
    embed, position = torch.randn(3, 16, 4, 4), torch.randn(1, 16, 4, 4)
    bank = memory.empty_bank()
    first = memory.condition(embed, position, bank)
    torch.testing.assert_close(first, embed + memory.no_memory.view(1, -1, 1, 1))
    features, positions = memory.encode(embed, torch.randn(3, 16, 16))
    assert features.shape == positions.shape == (3, 64, 4, 4)
    bank.push(features, positions)
    together = memory.condition(embed, position, bank)
    alone = memory.condition(embed[1:2], position, bank.select(torch.tensor([1])))
    torch.testing.assert_close(together[1:2], alone)
    other = MemoryBank(2, [features.flip(0)], [positions])
    assert not torch.allclose(memory.condition(embed, position, other), together)


def test_training_decodes_video_frames_in_order_through_the_memory(memory_model, tiny_batch):
    model = memory_model
    with torch.no_grad():
        out = model(**tiny_batch)
        assert math.isfinite(out["loss"].item()) and out["mask_logits"].shape[0] == 11
        # the video [SEG] is the last; its 2 frames are the batch's last two
        hidden = model.lm(
            inputs_embeds=model.embed_inputs(
                tiny_batch["input_ids"],
                model.encode_image(tiny_batch["pixel_values"]).select(tiny_batch["frame_image"]),
                tiny_batch["frame_times"],
                tiny_batch["region_masks"],
                tiny_batch["frame_sample"],
            ),
            attention_mask=tiny_batch["attention_mask"],
            output_hidden_states=True,
        ).hidden_states[-1]
        where = (tiny_batch["input_ids"] == model.ids.seg).nonzero()
        state = model.seg_queries(hidden, where[-1:])
        features = model.encode_image(tiny_batch["pixel_values"]).select(tiny_batch["frame_image"])
        times = tiny_batch["frame_times"]
        features.lm_states = model.frame_lm_states(
            features, times, hidden, tiny_batch["input_ids"], tiny_batch["frame_sample"]
        )
        frames = (tiny_batch["frame_sample"] == where[-1, 0]).nonzero()[:, 0]
        bank = model.frame_memory.empty_bank()
        expected = [
            model.decode_track_step(state, features.select(f[None]), times[f[None]], bank)[0]
            for f in frames
        ]
    torch.testing.assert_close(out["mask_logits"][-2:], torch.cat(expected))
    # without the memory the second frame decodes differently; images are not affected
    with torch.no_grad():
        plain, _ = model.decode_masks(state, features.select(frames[1:]), times[frames[1:]])
        first_image, _ = model.decode_masks(
            model.seg_queries(hidden, where[:1]), features.select(torch.tensor([0])), None
        )
    assert not torch.allclose(plain, expected[1])
    torch.testing.assert_close(out["mask_logits"][:1], first_image)


def test_memory_parts_learn(memory_model, tiny_batch):
    model = memory_model
    model.train()
    model.zero_grad()
    model(**tiny_batch)["loss"].backward()
    for name in ("attention", "encoder"):
        grads = [p.grad for p in getattr(model.frame_memory, name).parameters()]
        assert any(g is not None and float(g.abs().sum()) > 0 for g in grads), name
    model.zero_grad()


def _clip(count: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 255, (36, 44, 3), dtype=np.uint8) for _ in range(count)]


def test_decoding_in_chunks_carries_the_memory(memory_model):
    from pixelground.models.generation import decode_video_frames, video_memory, video_times

    model, frames = memory_model, _clip()
    states = torch.randn(2, model.lm.config.hidden_size)
    times = video_times(len(frames), model.device, model.dtype)
    whole = decode_video_frames(model, states, frames, times, video_memory(model))
    bank = video_memory(model)
    parts = [
        decode_video_frames(model, states, frames[s : s + 3], times[s : s + 3], bank)
        for s in range(0, len(frames), 3)
    ]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    assert whole.shape == (2, 7, 36, 44) and len(bank) == 2
    # the last frame's mask depends on the frames before it
    earlier = [frames[5], frames[4], frames[3], frames[2], frames[1], frames[0], frames[6]]
    other = decode_video_frames(model, states, earlier, times, video_memory(model))
    assert not np.array_equal(other[:, -1], whole[:, -1])


def test_saved_memory_model_streams_like_it_decodes_a_whole_clip(memory_model, tmp_path, answers):
    memory_model.save_pretrained(tmp_path)
    backend = SegTokenModelBackend(tmp_path, device="cpu")
    assert backend.model.frame_memory is not None
    frames, seg = _clip(), backend.model.ids.seg
    with answers(backend, [seg]):
        whole = backend.segment_video_expression(frames, "the red square")
    with answers(backend, [seg]):
        chunks = list(backend.stream_video_expression(ArrayFrames(frames), "the red square", 3))
    assert [indices for indices, _ in chunks] == [[0, 1, 2], [3, 4, 5], [6]]
    np.testing.assert_array_equal(np.concatenate([m for _, m in chunks], axis=1), np.stack(whole))


def test_video_memory_must_not_be_negative(tiny_overrides):
    from pixelground.models.config import SegModelConfig

    with pytest.raises(InputError, match="video_memory"):
        SegModelConfig.from_dict({**tiny_overrides, "video_memory": -1})


def test_tracks_of_different_lengths_each_follow_their_own_frames(memory_model, tiny_batch):
    model = memory_model
    with torch.no_grad():
        features = model.encode_image(tiny_batch["pixel_values"][:3])
        times = torch.tensor([0.0, 0.5, 1.0])
        states = torch.randn(2, model.lm.config.hidden_size)
        # track 0 on frames 2, 0, 1 (given out of order), track 1 on frames 1, 2
        state_index = torch.tensor([0, 1, 0, 0, 1])
        frame_index = torch.tensor([2, 1, 0, 1, 2])
        logits, _ = model._decode_tracks(states, state_index, frame_index, features, times)
        for track, frames in ((0, [0, 1, 2]), (1, [1, 2])):
            bank = model.frame_memory.empty_bank()
            for frame in frames:
                expected, _ = model.decode_track_step(
                    states[track : track + 1],
                    features.select(torch.tensor([frame])),
                    times[frame : frame + 1],
                    bank,
                )
                pair = int(((state_index == track) & (frame_index == frame)).nonzero()[0, 0])
                torch.testing.assert_close(logits[pair : pair + 1], expected)
