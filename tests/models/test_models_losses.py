"""Pure loss helpers: the places a mask covers."""

from __future__ import annotations

import torch

from pixelground.models.losses import covered_places


def test_covered_places_are_the_places_half_inside_or_the_most_covered_one():
    masks = torch.zeros(3, 8, 8)
    masks[0, :4, :4] = 1  # the top-left place of a 2 x 2 grid, whole
    masks[1, 3:5, 3:5] = 1  # a quarter of each of the four places: the most covered, all
    masks[2, 0, 0] = 1  # one pixel: its place only
    places = covered_places(masks, 2)
    assert places[0].tolist() == [[True, False], [False, False]]
    assert places[1].all()
    assert places[2].tolist() == [[True, False], [False, False]]
    assert not covered_places(torch.zeros(1, 8, 8), 2).any()
