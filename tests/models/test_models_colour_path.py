"""``colour_path``: in training the tower sees scrambled colours, and colour reaches the
features only through a per-place path from the image's own pixels."""

from __future__ import annotations

import pytest
import torch

from pixelground.core.errors import InputError
from pixelground.models.config import SegModelConfig
from pixelground.models.parts import VisionFeatures, scramble_colours, tower_grids

MEAN = torch.tensor([0.5, 0.5, 0.5])
STD = torch.tensor([0.5, 0.5, 0.5])


def _frames(count: int) -> torch.Tensor:
    """(count, 3, 8, 8) normalised frames of mid-range colours (no clipping when moved)."""
    generator = torch.Generator().manual_seed(1)
    raw = 0.35 + 0.3 * torch.rand(count, 3, 8, 8, generator=generator)
    return (raw - MEAN[:, None, None]) / STD[:, None, None]


def _tower_inputs(model) -> list[torch.Tensor]:
    """The pixels the model's vision tower is called with, call by call."""
    seen: list[torch.Tensor] = []

    def record(_module, _args, kwargs):
        seen.append(kwargs["pixel_values"])

    model.vision.register_forward_pre_hook(record, with_kwargs=True)
    return seen


def test_scramble_keeps_distances_and_shares_one_transform_per_group():
    torch.manual_seed(0)
    frames = _frames(3)
    frames[1] = frames[0]  # frames 0 and 1: one clip, the same picture
    moved = scramble_colours(frames, MEAN, STD, torch.tensor([7, 7, 2]))
    assert moved.shape == frames.shape
    assert torch.allclose(moved[0], moved[1])
    assert not torch.allclose(moved[0], frames[0], atol=1e-2)
    raw, raw_moved = frames * 0.5, moved * 0.5  # the [0, 1] scale
    for index in (0, 2):  # distances between any two pixels' colours are kept
        colours, moved_colours = raw[index].flatten(1).T, raw_moved[index].flatten(1).T
        before = (colours[:, None] - colours[None]).norm(dim=-1)
        after = (moved_colours[:, None] - moved_colours[None]).norm(dim=-1)
        assert torch.allclose(before, after, atol=1e-5)
    alone = scramble_colours(frames, MEAN, STD, torch.tensor([0, 1, 2]))
    assert not torch.allclose(alone[0], alone[1], atol=1e-2)  # two groups, two transforms


def test_the_tower_sees_scrambled_colours_in_training_and_the_colour_path_the_image(
    seeded_model, tiny_batch
):
    model = seeded_model(colour_path=True)
    pixels = tiny_batch["pixel_values"][:2]
    seen = _tower_inputs(model)
    model.eval()
    with torch.no_grad():
        first, second = model.encode_image(pixels), model.encode_image(pixels)
    assert torch.equal(seen[0], pixels) and torch.equal(first.embed, second.embed)
    model.train()
    with torch.no_grad():
        trained = model.encode_image(pixels)
    assert not torch.allclose(seen[-1], pixels, atol=1e-2)
    # the colour path reads the image as given: it alone moves the features with its colours
    recoloured = pixels.flip(1)  # RGB -> BGR
    with torch.no_grad():
        tower_only = model.neck(
            tower_grids(model.vision(pixel_values=seen[-1], output_hidden_states=True)),
            model.mask_decoder.conv_s0,
            model.mask_decoder.conv_s1,
        )
        added = model.colour_path(pixels, tower_only)
        other = model.colour_path(recoloured, tower_only)
    assert torch.allclose(added.embed, trained.embed, atol=1e-5)
    assert not torch.allclose(added.embed, other.embed, atol=1e-4)


def test_a_clips_frames_share_one_scramble_in_a_batch(seeded_model, tiny_batch):
    model = seeded_model(colour_path=True).train()
    seen = _tower_inputs(model)
    picture = tiny_batch["pixel_values"][:1]
    pixels = torch.cat([picture, picture, picture])
    with torch.no_grad():  # frames 0 and 2 are one row's (a clip's), frame 1 another row's
        model._batch_features(pixels, torch.tensor([0, 1, 2]), torch.tensor([4, 5, 4]))
    assert torch.allclose(seen[0][0], seen[0][2])
    assert not torch.allclose(seen[0][0], seen[0][1], atol=1e-2)


def test_the_colour_path_trains_with_the_model_and_is_off_by_default(seeded_model, tiny_batch):
    assert seeded_model().colour_path is None
    model = seeded_model(colour_path=True).train()
    model(**tiny_batch)["loss"].backward()
    path = model.colour_path
    for part in (path.per_pixel[0], path.to_embed, path.to_lm):
        assert float(part.weight.grad.abs().sum()) > 0


def test_the_colour_path_keeps_a_small_shapes_colour_apart_from_its_surroundings(
    seeded_model, tiny_batch
):
    """Two images whose pixels average to the same colour at every place of both grids (a
    red-and-cyan checkerboard, plain grey) get different colour features: the path averages
    features of pixels, not pixels."""
    model = seeded_model(colour_path=True).eval()
    side = tiny_batch["pixel_values"].shape[-1]
    checker = (torch.arange(side)[:, None] // 2 + torch.arange(side)[None] // 2) % 2
    red_cyan = torch.stack([checker, 1 - checker, 1 - checker]).float() * 2 - 1
    grey = torch.zeros_like(red_cyan)
    with torch.no_grad():
        features = model.encode_image(grey[None])
        embed, lm_source = torch.zeros_like(features.embed), torch.zeros_like(features.lm_source)
        zero = VisionFeatures(embed, features.high_res, lm_source)
        mixed, plain = model.colour_path(red_cyan[None], zero), model.colour_path(grey[None], zero)
    assert not torch.allclose(mixed.embed, plain.embed, atol=1e-4)
    assert not torch.allclose(mixed.lm_source, plain.lm_source, atol=1e-4)


@pytest.mark.parametrize("gain", [1.0, 0.3])
def test_the_colour_paths_share_of_each_place_starts_at_its_gain(seeded_model, tiny_batch, gain):
    """Normalised per place, the colour starts at RMS ``colour_gain``: 1 is as loud as a
    unit-scale feature (the unnormalised projections started near RMS 0.2)."""
    model = seeded_model(colour_path=True, colour_gain=gain).eval()
    pixels = tiny_batch["pixel_values"][:1]
    with torch.no_grad():
        features = model.encode_image(pixels)
        zero = VisionFeatures(
            torch.zeros_like(features.embed),
            features.high_res,
            torch.zeros_like(features.lm_source),
        )
        added = model.colour_path(pixels, zero)
    for grid in (added.embed, added.lm_source):
        per_place = grid.pow(2).mean(1).sqrt()  # (1, h, w)
        assert torch.allclose(per_place, torch.full_like(per_place, gain), atol=0.05 * gain)


@pytest.mark.parametrize("gain", [0.0, -1.0, float("nan")])
def test_a_colour_gain_that_is_not_positive_is_refused(gain):
    with pytest.raises(InputError, match="colour_gain"):
        SegModelConfig(colour_path=True, colour_gain=gain)
