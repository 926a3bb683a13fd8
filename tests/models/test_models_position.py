"""``position_query``: each [SEG] asks for a direction, and the coarse prior favours the
places furthest that way."""

from __future__ import annotations

import torch

from pixelground.models.heads import POSITION_SCALE, position_match
from pixelground.models.objective import training_losses


def test_position_query_starts_as_without_it_and_learns_to_ask(seeded_model, tiny_batch):
    without = seeded_model().eval()
    asking = seeded_model(position_query=True).eval()
    with torch.no_grad():  # built last, zero at first: the same masks and priors
        before, after = training_losses(without, tiny_batch), training_losses(asking, tiny_batch)
    assert torch.allclose(before["mask_logits"], after["mask_logits"], atol=1e-6)
    asking.train()
    training_losses(asking, tiny_batch)["loss"].backward()
    assert float(asking.heads["query_direction"].weight.grad.abs().sum()) > 0


def test_position_match_points_the_way_the_query_asks(seeded_model):
    model = seeded_model(position_query=True).eval()
    queries = torch.randn(2, model.lm.config.hidden_size)
    with torch.no_grad():
        model.heads["query_direction"].bias.copy_(torch.tensor([-1.0, 0.0]))  # "the leftmost ..."
        left = position_match(model.heads, queries[:1], 4)
        model.heads["query_direction"].bias.copy_(torch.tensor([0.0, 1.0]))  # "the bottom ..."
        down = position_match(model.heads, queries[1:], 4)
    # place centres at -0.75, -0.25, 0.25, 0.75 of the half-side
    assert left.shape == (1, 4, 4)
    assert torch.allclose(left[0, 2], POSITION_SCALE * torch.tensor([0.75, 0.25, -0.25, -0.75]))
    assert torch.equal(left[0, 0], left[0, 3])  # x alone
    assert down[0].flatten().argmax().item() // 4 == 3  # the bottom row
    assert torch.equal(down[0, :, 0], down[0, :, 3])
