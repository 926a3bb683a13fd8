"""Scene sampling and rendering: determinism, exact masks, occlusion, geometry."""

from __future__ import annotations

import numpy as np
import pytest

from pixelground.synth.geometry import shape_mask, visible_masks
from pixelground.synth.render import SHADE, render_scene
from pixelground.synth.scene import (
    COLOURS,
    Background,
    Scene,
    SceneConfig,
    Shape,
    sample_scene,
)
from pixelground.synth.splits import HELD_OUT_PAIRS, sample_rng, split_policy

CONFIG = SceneConfig(size=128)


def _scene(seed: int, index: int = 0, split: str = "train") -> Scene:
    policy = split_policy(split)
    return sample_scene(
        sample_rng(seed, "refer", split, index), CONFIG, policy.pairs, policy.required_pairs
    )


def test_same_seed_same_scene_and_pixels_different_seed_differs():
    a, b = _scene(3), _scene(3)
    assert a.to_dict() == b.to_dict()
    ra, rb = render_scene(a), render_scene(b)
    assert np.array_equal(ra.image, rb.image) and np.array_equal(ra.visible, rb.visible)
    others = [render_scene(_scene(seed)).image for seed in (4, 5)]
    assert not any(np.array_equal(ra.image, o) for o in others)
    assert _scene(3, index=1).to_dict() != a.to_dict()  # the index is part of the seed


def test_scene_round_trips_through_dict():
    scene = _scene(11)
    assert Scene.from_dict(scene.to_dict()).to_dict() == scene.to_dict()


def _plain(scene: Scene) -> Scene:
    bg = Background(kind="plain", rgb=(128, 120, 130), rgb2=(128, 120, 130))
    return Scene(scene.width, scene.height, bg, scene.shapes)


@pytest.mark.parametrize("seed", range(12))
def test_visible_masks_are_exactly_the_shape_pixels(seed):
    """On a plain background, a pixel differs from the background iff some visible mask holds
    it, and inside object k's visible mask every pixel is k's colour or its texture shade."""
    scene = _plain(_scene(seed))
    rendered = render_scene(scene)
    image = rendered.image.astype(int)
    differs = np.any(image != np.array(scene.background.rgb), axis=2)
    assert np.array_equal(differs, rendered.visible.any(axis=0))
    for shape, mask in zip(scene.shapes, rendered.visible, strict=True):
        base = np.array(shape.rgb)
        allowed = [base, np.floor(base * SHADE)]
        pixels = image[mask]
        ok = np.zeros(len(pixels), dtype=bool)
        for colour in allowed:
            ok |= np.all(pixels == colour, axis=1)
        assert ok.all()
        if shape.texture == "solid":
            assert np.all(pixels == base)
        else:
            assert (~np.all(pixels == base, axis=1)).any()  # the pattern shows


@pytest.mark.parametrize("seed", range(12))
def test_occlusion_order_and_visibility(seed):
    scene = _scene(seed)
    rendered = render_scene(scene)
    n = len(scene.shapes)
    assert CONFIG.min_shapes <= n <= CONFIG.max_shapes
    assert rendered.visible.sum(axis=0).max() <= 1  # disjoint
    assert not (rendered.visible & ~rendered.full).any()
    for i in range(n):  # a pixel of i is hidden exactly when a later shape covers it
        above = rendered.full[i + 1 :].any(axis=0) if i + 1 < n else np.zeros_like(rendered.full[i])
        assert np.array_equal(rendered.visible[i], rendered.full[i] & ~above)
        fraction = rendered.visible[i].sum() / rendered.full[i].sum()
        assert fraction >= CONFIG.min_visible
        full = rendered.full[i]
        assert not (full[0].any() or full[-1].any() or full[:, 0].any() or full[:, -1].any())
    labels = rendered.label_map()
    for shape_id, mask in zip(rendered.ids, rendered.visible, strict=True):
        assert np.array_equal(labels == shape_id, mask)


def test_shape_geometry_matches_analytic_shapes():
    size = 128
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    circle = Shape(1, "circle", "red", "large", "solid", 60.3, 70.1, 20.0, rgb=COLOURS["red"])
    disk = (xx - 60.3) ** 2 + (yy - 70.1) ** 2 <= 20.0**2
    mask = shape_mask(circle, size, size)
    assert (mask & disk).sum() / (mask | disk).sum() > 0.95
    square = Shape(2, "square", "blue", "large", "solid", 64.0, 64.0, 20.0, rgb=COLOURS["blue"])
    half = 20.0 * 0.9 / np.sqrt(2)
    box = (np.abs(xx - 64) <= half) & (np.abs(yy - 64) <= half)
    mask = shape_mask(square, size, size)
    assert (mask & box).sum() / (mask | box).sum() > 0.95
    triangle = Shape(3, "triangle", "green", "large", "solid", 64.0, 64.0, 20.0)
    rows = np.flatnonzero(shape_mask(triangle, size, size).any(axis=1))
    widths = shape_mask(triangle, size, size).sum(axis=1)[rows]
    assert widths[0] < widths[-1]  # apex up: narrow at the top (y grows down)
    # the ellipse is elongated, every kind is roughly as large as the circle of its radius
    ellipse = Shape(4, "ellipse", "red", "large", "solid", 64.0, 64.0, 20.0, aspect=0.55)
    em = shape_mask(ellipse, size, size)
    assert np.ptp(np.flatnonzero(em.any(0))) > 1.6 * np.ptp(np.flatnonzero(em.any(1)))
    for kind in ("circle", "square", "triangle", "star", "hexagon", "ellipse"):
        shape = Shape(5, kind, "red", "large", "solid", 64.0, 64.0, 20.0, aspect=0.55)
        area = shape_mask(shape, size, size).sum()
        assert 0.45 * np.pi * 400 < area < 1.15 * np.pi * 400, kind


def test_visible_masks_helper_hides_lower_masks():
    full = np.zeros((2, 4, 4), dtype=bool)
    full[0, :, :3] = True
    full[1, :, 2:] = True
    visible = visible_masks(full)
    assert visible[0, :, 2].sum() == 0 and visible[0, :, :2].all() and visible[1, :, 2:].all()


def test_split_pairs_respect_held_out_combinations():
    held = set(HELD_OUT_PAIRS)
    for index in range(30):
        assert not any(s.pair in held for s in _scene(1, index, "train").shapes)
        assert any(s.pair in held for s in _scene(1, index, "test").shapes)
        assert any(s.pair in held for s in _scene(1, index, "val_heldout").shapes)


def test_val_heldout_follows_the_test_policy_with_scenes_of_its_own():
    test, val_heldout = split_policy("test"), split_policy("val_heldout")
    assert (val_heldout.pairs, val_heldout.required_pairs) == (test.pairs, test.required_pairs)
    assert val_heldout.is_test and not split_policy("val").is_test
    assert all(
        _scene(0, index, "val_heldout").to_dict() != _scene(0, index, "test").to_dict()
        for index in range(5)
    )
