"""Hue views of an image: the image and copies of it with the hue turned round the colour wheel.

What an expression that names no colour refers to ("the large star", "all squares") does not
change when every colour does. A model that learnt kind partly from colour (it never saw a red
star, so red was evidence against "star") reads such a shape better on the average of views
in which it takes other colours. ``SegModelConfig.hue_views`` answers colour-free expressions
this way (target_decision.py).
"""

from __future__ import annotations

import numpy as np

from pixelground.core.errors import InputError
from pixelground.models.data import names_colour, rotate_hue
from pixelground.models.ordinals import pluralize


def view_angles(count: int) -> list[float]:
    """``count`` hue rotations in radians, evenly spaced from 0 (the image itself)."""
    if count < 1:
        raise InputError(f"the number of hue views must be >= 1, got {count}")
    return [2 * np.pi * i / count for i in range(count)]


def hue_views(image: np.ndarray, count: int) -> list[np.ndarray]:
    """The (H, W, 3) uint8 image followed by ``count - 1`` copies with their hue rotated by
    :func:`view_angles`."""
    return [image] + [rotate_hue(image, angle) for angle in view_angles(count)[1:]]


def views_for(expression: str, count: int, generic_noun: str = "") -> int:
    """The number of views to answer ``expression`` on: ``count``, or 1 when it names a colour
    (``data.COLOUR_WORDS``), which a hue rotation would make wrong, or when it names things by
    ``generic_noun`` alone ("the first solid shape"), which no colour can be evidence against."""
    words = {word.strip(".,;:!?").lower() for word in expression.split()}
    if generic_noun and words & {generic_noun, pluralize(generic_noun)}:
        return 1
    return 1 if names_colour([expression]) else count
