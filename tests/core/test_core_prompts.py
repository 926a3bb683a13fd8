"""Prompts: points, boxes and masks validated against the image size; command-line parsing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from paths import SHARED_DATA
from PIL import Image

from pixelground.core.errors import InputError, PixelgroundError
from pixelground.core.masks import masks_to_boxes
from pixelground.core.prompts import Box, Point, Prompt, validate_prompts

H, W = 480, 854  # DAVIS frames


@pytest.fixture(scope="module")
def swan_mask() -> np.ndarray:
    path = SHARED_DATA / "davis2016_blackswan" / "Annotations" / "480p" / "blackswan" / "00000.png"
    return np.asarray(Image.open(path)) == 255


def test_points_inside_pass_and_outside_fail():
    Point(0, 0).validate(H, W)
    Point(W - 0.5, H - 0.5, positive=False).validate(H, W)
    for x, y in [(W, 10), (10, H), (-1, 10), (10, -0.1)]:
        with pytest.raises(InputError, match="outside the 854x480 image"):
            Point(x, y).validate(H, W)
    with pytest.raises(InputError, match="finite"):
        Point(float("nan"), 3).validate(H, W)


def test_box_validation():
    Box(10, 20, 30, 40).validate(H, W)
    Box(-50, -50, 10, 10).validate(H, W)  # partly outside: allowed, overlaps the image
    with pytest.raises(InputError, match="empty"):
        Box(30, 20, 30, 40).validate(H, W)
    with pytest.raises(InputError, match="empty"):
        Box(30, 40, 10, 20).validate(H, W)  # corners swapped
    for box in [Box(W, 0, W + 10, 10), Box(0, H, 10, H + 5), Box(-20, -20, 0, 0)]:
        with pytest.raises(InputError, match="outside"):
            box.validate(H, W)
    with pytest.raises(InputError, match="non-finite"):
        Box(0, 0, float("inf"), 10).validate(H, W)


def test_box_clipped_and_array():
    box = Box(-5, 10, 900, 500)
    assert box.clipped(H, W) == Box(0, 10, W, H)
    assert box.as_array().tolist() == [-5, 10, 900, 500]
    assert box.as_array().dtype == np.float64


def test_parse_box_and_point_from_command_line_text():
    assert Box.parse("10,20,30,40") == Box(10, 20, 30, 40)
    assert Box.parse(" 1.5, 2 ,3,4e1") == Box(1.5, 2, 3, 40)
    assert Point.parse("7,8") == Point(7, 8, True)
    assert Point.parse("7,8", positive=False).positive is False
    for bad in ["10,20,30", "a,b,c,d", "", "1,2,3,4,5"]:
        with pytest.raises(InputError, match="X0,Y0,X1,Y1"):
            Box.parse(bad)
    with pytest.raises(InputError, match="X,Y"):
        Point.parse("1;2")


def test_prompt_needs_something():
    with pytest.raises(InputError, match="at least one"):
        Prompt()


def test_mask_prompt_validation_with_a_real_mask(swan_mask):
    Prompt(mask=swan_mask).validate(H, W)
    with pytest.raises(InputError, match="shape"):
        Prompt(mask=swan_mask[:, :-1]).validate(H, W)
    with pytest.raises(InputError, match="empty"):
        Prompt(mask=np.zeros((H, W), dtype=bool)).validate(H, W)


def test_combined_prompt_from_real_mask_box_and_clicks(swan_mask):
    x0, y0, x1, y1 = masks_to_boxes(swan_mask)[0].tolist()
    ys, xs = np.nonzero(swan_mask)
    inside = Point(float(xs[0]), float(ys[0]))
    outside = Point(5, 5, positive=False)
    prompt = Prompt(points=[inside, outside], box=Box(x0, y0, x1, y1), mask=swan_mask)
    assert isinstance(prompt.points, tuple) and len(prompt.points) == 2
    prompt.validate(H, W)
    validate_prompts([prompt, Prompt(points=[inside])], H, W)
    bad = Prompt(points=[inside, Point(W + 3, 0)])
    with pytest.raises(InputError, match="outside"):
        validate_prompts([prompt, bad], H, W)
    with pytest.raises(InputError, match="no prompt"):
        validate_prompts([], H, W)


def test_prompt_errors_are_user_errors_and_values_are_frozen():
    with pytest.raises(PixelgroundError):
        Point(-1, 0).validate(H, W)
    with pytest.raises(ValueError):  # InputError is also a ValueError
        Box.parse("nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        Point(1, 2).x = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        Prompt(points=[Point(1, 2)]).box = Box(0, 0, 1, 1)
