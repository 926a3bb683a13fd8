"""core.guided_filter: edge-following smoothing of a map with a colour image as guide."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from pixelground.core.errors import InputError
from pixelground.core.guided_filter import guided_filter


def _two_colours(edge: int = 12) -> np.ndarray:
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :edge] = (220, 40, 40)
    image[:, edge:] = (40, 90, 225)
    return image


def test_a_soft_border_moves_to_the_colour_edge():
    """A mask 2 pixels past the edge between two colours, with a 4-pixel soft border (as an
    upsampled low-resolution mask has), ends at the edge once filtered with a wide window."""
    image = _two_colours(edge=12)
    columns = np.arange(32, dtype=np.float64)
    values = np.tile(np.clip((14 - columns) / 4 + 0.5, 0, 1), (32, 1))
    assert ((values > 0.5).sum(1) == 14).all()
    refined = guided_filter(image, values, radius=8, eps=1e-3) > 0.5
    assert refined[:, :12].all() and not refined[:, 12:].any()
    narrow = guided_filter(image, values, radius=2, eps=1e-3) > 0.5
    assert (narrow.sum(1) == 14).all()  # with a narrow window the border stays where it was


def test_on_a_flat_guide_it_is_a_double_box_filter():
    image = np.full((20, 24, 3), 0.4)
    values = np.random.default_rng(0).random((20, 24))
    twice = uniform_filter(uniform_filter(values, size=5, mode="reflect"), size=5, mode="reflect")
    assert np.allclose(guided_filter(image, values, radius=2, eps=1e-3), twice)


def test_bad_arguments_are_refused():
    image = _two_colours()
    with pytest.raises(InputError, match="must be"):
        guided_filter(image[..., 0], np.zeros((32, 32)), 2, 1e-3)
    with pytest.raises(InputError, match="must be"):
        guided_filter(image, np.zeros((16, 32)), 2, 1e-3)
    with pytest.raises(InputError, match="radius must be >= 1"):
        guided_filter(image, np.zeros((32, 32)), 0, 1e-3)
    with pytest.raises(InputError, match="eps > 0"):
        guided_filter(image, np.zeros((32, 32)), 2, 0.0)
