"""Visualisation: stable colours, exact blending, contours, boxes, points, legend, renders."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from paths import SHARED_DATA
from PIL import Image

from pixelground.core.masks import decode_rle, masks_to_boxes
from pixelground.core.media import load_image
from pixelground.core.prompts import Point
from pixelground.core.result import (
    GroundedResult,
    ImageInfo,
    Region,
    Track,
    VideoInfo,
    VideoResult,
)
from pixelground.viz import (
    PALETTE,
    distinct_colors,
    draw_boxes,
    draw_contours,
    draw_labels,
    draw_legend,
    draw_points,
    legend_entries,
    legend_layout,
    overlay_masks,
    phrase_color,
    render_frame,
    render_result,
    render_video_frame,
    track_color,
)
from pixelground.viz.legend import PANEL_ALPHA
from pixelground.viz.overlay import NEGATIVE_COLOR, POSITIVE_COLOR, mask_contours

SWAN = SHARED_DATA / "davis2016_blackswan"
PHRASES = ["a black swan", "the water", "reeds", "Dog", "two cats", "the red car"]


def swan_frame(index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real blackswan frame (480, 854, 3) uint8 and its GT mask (480, 854) bool."""
    pixels = load_image(SWAN / "JPEGImages" / "480p" / "blackswan" / f"{index:05d}.jpg").pixels
    gt = np.array(Image.open(SWAN / "Annotations" / "480p" / "blackswan" / f"{index:05d}.png"))
    return pixels, gt == 255


# --- colours -------------------------------------------------------------------------------


def test_phrase_colors_are_stable_within_a_process():
    first = [phrase_color(p) for p in PHRASES]
    assert first == [phrase_color(p) for p in PHRASES]
    assert all(c in PALETTE for c in first)
    assert phrase_color("The  Dog ") == phrase_color("the dog")


def test_phrase_colors_match_a_fresh_process_with_another_hash_seed():
    code = (
        "import json; from pixelground.viz.colors import phrase_color, distinct_colors;"
        f"p = {PHRASES!r};"
        "print(json.dumps([[list(phrase_color(x)) for x in p],"
        " [list(distinct_colors(p)[x]) for x in p]]))"
    )
    seen = []
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        seen.append(json.loads(done.stdout))
    here = [
        [list(phrase_color(x)) for x in PHRASES],
        [list(distinct_colors(PHRASES)[x]) for x in PHRASES],
    ]
    assert seen[0] == seen[1] == here


def test_phrase_colors_spread_over_the_palette():
    colors = {phrase_color(f"object number {i}") for i in range(200)}
    assert len(colors) == len(PALETTE)


def test_distinct_colors_differ_and_ignore_order():
    phrases = [f"thing {i}" for i in range(len(PALETTE))]
    colors = distinct_colors(phrases)
    assert len(set(colors.values())) == len(PALETTE)
    assert distinct_colors(list(reversed(phrases))) == colors
    # a phrase keeps its own hashed colour when nobody else wants it
    assert distinct_colors(["a black swan"]) == {"a black swan": phrase_color("a black swan")}
    # more keys than colours: every key still gets a palette colour
    many = distinct_colors([f"k{i}" for i in range(40)])
    assert len(many) == 40 and set(many.values()) <= set(PALETTE)
    # phrases equal after normalisation share one colour
    same = distinct_colors(["Dog", "dog ", "cat"])
    assert same["Dog"] == same["dog "] != same["cat"]


def test_track_colors_follow_the_id():
    assert [track_color(i) for i in range(len(PALETTE))] == list(PALETTE)
    assert track_color(len(PALETTE) + 3) == track_color(3)
    assert distinct_colors([0, 1, 2]) == {0: PALETTE[0], 1: PALETTE[1], 2: PALETTE[2]}


# --- overlay maths on a tiny synthetic image ----------------------------------------------


def tiny_image() -> np.ndarray:
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[..., 0] = 100
    image[..., 1] = 40
    image[..., 2] = np.arange(5, dtype=np.uint8) * 10
    return image


def test_overlay_changes_only_mask_pixels_with_exact_blending():
    image = tiny_image()
    mask = np.zeros((4, 5), dtype=bool)
    mask[1:3, 1:4] = True
    out = overlay_masks(image, mask, [(200, 0, 255)], alpha=0.25)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~mask], image[~mask])
    # 0.75 * 100 + 0.25 * 200 = 125; 0.75 * 40 = 30; 0.75 * b + 63.75 for b = 10, 20, 30
    assert out[1, 1].tolist() == [125, 30, 71]  # 7.5 + 63.75 = 71.25
    assert out[2, 2].tolist() == [125, 30, 79]  # 15 + 63.75 = 78.75
    assert out[1, 3].tolist() == [125, 30, 86]  # 22.5 + 63.75 = 86.25
    assert image[1, 1].tolist() == [100, 40, 10]  # input untouched


def test_overlapping_masks_blend_in_order():
    image = tiny_image()
    a = np.zeros((4, 5), dtype=bool)
    b = np.zeros((4, 5), dtype=bool)
    a[0, 0:2] = True
    b[0, 1:3] = True
    out = overlay_masks(image, np.stack([a, b]), [(0, 0, 0), (255, 255, 255)], alpha=0.5)
    assert out[0, 0].tolist() == [50, 20, 0]  # only a: half of (100, 40, 0)
    # a then b: 0.5 * (0.5 * (100, 40, 10)) + 127.5 = (152.5, 137.5, 130) -> rint
    assert out[0, 1].tolist() == [152, 138, 130]
    assert out[0, 2].tolist() == [178, 148, 138]  # only b: (227.5, 147.5, 137.5) -> rint


def test_overlay_alpha_extremes_and_errors():
    image = tiny_image()
    mask = np.ones((4, 5), dtype=bool)
    assert np.array_equal(overlay_masks(image, mask, [(9, 9, 9)], alpha=0.0), image)
    assert (overlay_masks(image, mask, (9, 8, 7), alpha=1.0) == [9, 8, 7]).all()
    with pytest.raises(ValueError, match="alpha"):
        overlay_masks(image, mask, alpha=1.5)
    with pytest.raises(ValueError, match="masks are"):
        overlay_masks(image, np.ones((3, 5), dtype=bool))
    with pytest.raises(ValueError, match="colours"):
        overlay_masks(image, np.stack([mask, mask]), [(1, 2, 3)])


def test_contours_are_the_inner_boundary_of_the_mask():
    mask = np.zeros((7, 8), dtype=bool)
    mask[1:6, 2:7] = True
    band = mask_contours(mask, thickness=1)
    expected = mask.copy()
    expected[2:5, 3:6] = False
    assert np.array_equal(band, expected)
    assert np.array_equal(mask_contours(mask, thickness=2), mask & ~_square(7, 8, 3, 4, 3, 4))
    image = np.full((7, 8, 3), 50, dtype=np.uint8)
    out = draw_contours(image, mask, [(255, 0, 0)], thickness=1)
    assert (out[expected] == [255, 0, 0]).all()
    assert (out[~expected] == 50).all()


def _square(h, w, y0, x0, y1, x1):
    out = np.zeros((h, w), dtype=bool)
    out[y0 : y1 + 1, x0 : x1 + 1] = True
    return out


def test_draw_boxes_outlines_exactly_the_box_pixels():
    image = np.zeros((10, 12, 3), dtype=np.uint8)
    out = draw_boxes(image, [[2, 3, 8, 7], [np.nan] * 4, [5, 5, 5, 9]], [(0, 255, 0)] * 3, width=1)
    outline = _square(10, 12, 3, 2, 6, 7) & ~_square(10, 12, 4, 3, 5, 6)
    assert (out[outline] == [0, 255, 0]).all()
    assert (out[~outline] == 0).all()  # NaN box and zero-width box draw nothing


def test_draw_points_marks_positive_green_and_negative_red():
    image = np.full((40, 60, 3), 128, dtype=np.uint8)
    points = [Point(10, 20), Point(45, 20, positive=False)]
    out = draw_points(image, points, radius=8)
    assert out[24, 14].tolist() == list(POSITIVE_COLOR)  # inside the disc, off the glyph
    assert out[24, 49].tolist() == list(NEGATIVE_COLOR)
    assert out[20, 10].tolist() == [255, 255, 255]  # the "+" glyph at the click
    assert out[14, 45].tolist() == list(NEGATIVE_COLOR)  # "-" has no vertical bar
    assert out[2, 30].tolist() == [128, 128, 128]
    assert np.array_equal(
        draw_points(image, [(45, 20, False)], radius=8), draw_points(image, [points[1]], radius=8)
    )


# --- labels and legend ---------------------------------------------------------------------


def test_legend_lists_every_phrase_once_with_its_colour():
    labels = ["swan", "water", "swan", "reeds", "water"]
    palette = distinct_colors(labels)
    colors = [palette[x] for x in labels]
    entries = legend_entries(labels, colors)
    assert [text for text, _ in entries] == ["swan", "water", "reeds"]
    image = np.full((200, 300, 3), 200, dtype=np.uint8)
    out = draw_legend(image, entries, font_size=14)
    panel, items = legend_layout(entries, 200, 300, 14)
    assert [i.text for i in items] == ["swan", "water", "reeds"]
    for item, (_, color) in zip(items, entries, strict=True):
        x0, y0, x1, y1 = item.swatch
        assert (out[y0:y1, x0:x1] == color).all()
    px0, py0, px1, py1 = panel
    outside = np.ones((200, 300), dtype=bool)
    outside[py0:py1, px0:px1] = False
    assert (out[outside] == 200).all()
    dimmed = round((1 - PANEL_ALPHA) * 200)
    assert (out[py1 - 1, px1 - 1] == dimmed).all()  # panel corner: translucent dark


def test_legend_that_does_not_fit_ends_with_a_count_of_the_rest():
    entries = [(f"phrase {i}", PALETTE[i % len(PALETTE)]) for i in range(30)]
    panel, items = legend_layout(entries, 120, 200, 12)
    assert items[-1].text.startswith("+") and items[-1].color is None
    hidden = int(items[-1].text.split()[0][1:])
    assert len(items) - 1 + hidden == 30
    assert panel[3] <= 120
    long = legend_layout([("x" * 500, PALETTE[0])], 100, 120, 12)[1][0]
    assert long.text.endswith("...") and len(long.text) < 500


def test_draw_labels_tags_and_legend():
    image = np.full((120, 200, 3), 255, dtype=np.uint8)
    out = draw_labels(image, ["cat", "dog"], [PALETTE[0], PALETTE[1]], anchors=[(10, 80), None])
    assert (out[60:80, 10:20] == PALETTE[0]).all(axis=-1).any()  # the "cat" tag above (10, 80)
    no_legend = draw_labels(image, ["cat"], [PALETTE[0]], anchors=[(100, 100)], legend=False)
    assert (no_legend[:20, :20] == 255).all()
    with pytest.raises(ValueError):
        draw_labels(image, ["cat"], [PALETTE[0], PALETTE[1]])


# --- full renders on real data ---------------------------------------------------------------


def test_render_result_on_a_real_image_and_its_gt_mask(tmp_path):
    pixels, gt = swan_frame(0)
    region = Region(mask=gt, phrase="a black swan", score=0.87)
    result = GroundedResult("segment", ImageInfo(854, 480), "a black swan", [region])
    before = pixels.copy()
    out = render_result(pixels, result, points=[Point(400, 200)])
    assert out.shape == (480, 854, 3) and out.dtype == np.uint8
    assert np.array_equal(pixels, before)  # input untouched
    color = np.asarray(phrase_color("a black swan"), dtype=np.float64)
    inside = gt.copy()
    inside[:120, :] = False  # away from the legend and tag
    moved = np.abs(out[inside].astype(float) - color).mean()
    assert moved < np.abs(pixels[inside].astype(float) - color).mean() - 20
    x0, y0, x1, y1 = masks_to_boxes(gt)[0].astype(int)
    far = np.ones_like(gt)
    far[max(0, y0 - 40) : y1 + 5, max(0, x0 - 5) : x1 + 5] = False
    far[:150, :400] = False  # legend panel
    far[180:220, 380:420] = False  # the click
    assert np.array_equal(out[far], pixels[far])
    Image.fromarray(out).save(tmp_path / "swan.png")
    assert load_image(tmp_path / "swan.png").pixels.shape == (480, 854, 3)


def test_render_result_with_box_only_and_unnamed_regions():
    pixels, gt = swan_frame(0)
    regions = [
        Region(mask=gt, label="swan"),
        Region(box=(10, 300, 200, 470), phrase="reeds"),
        Region(mask=np.roll(gt, 200, axis=1)),
    ]
    result = GroundedResult("entities", ImageInfo(854, 480), "", regions)
    out = render_result(pixels, result, scores=False)
    assert not np.array_equal(out[300:470, 10:200], pixels[300:470, 10:200])
    with pytest.raises(ValueError, match="the image is"):
        render_result(pixels[:100], result)
    empty = GroundedResult("segment", ImageInfo(854, 480), "nothing")
    assert np.array_equal(render_result(pixels, empty), pixels)


def test_render_frame_keeps_track_colours_across_frames():
    frames = [swan_frame(i) for i in (0, 25)]
    outs = []
    for pixels, gt in frames:
        masks = {3: gt, 7: np.roll(gt, -300, axis=1)}
        out = render_frame(pixels, masks, {3: "black swan"}, alpha=1.0, contours=False)
        assert (out[gt & ~np.roll(gt, -300, axis=1)][:, None] == track_color(3)).all()
        outs.append(out)
    assert not np.array_equal(outs[0], outs[1])
    pixels, _ = frames[0]
    assert np.array_equal(render_frame(pixels, {}), pixels)


def test_render_video_frame_from_a_video_result():
    pixels, gt = swan_frame(0)
    track = Track(id=2, phrase="swan")
    track.add(0, gt)
    result = VideoResult("track", VideoInfo(854, 480, num_frames=2), tracks=[track])
    drawn = render_video_frame(pixels, result, 0, legend=False, alpha=1.0, contours=False)
    assert (drawn[gt] == track_color(2)).all()
    assert np.array_equal(render_video_frame(pixels, result, 1), pixels)  # absent: nothing


def test_render_sav_masklets_on_a_blank_frame():
    data = json.loads((SHARED_DATA / "sav_example" / "sav_000001_manual.json").read_text())
    masks = decode_rle(data["masklet"][0])
    blank = np.zeros(masks.shape[1:] + (3,), dtype=np.uint8)
    out = render_frame(blank, dict(enumerate(masks)), legend=False, contours=False, alpha=1.0)
    for i, mask in enumerate(masks):
        alone = mask & ~np.delete(masks, i, axis=0).any(axis=0)
        later = masks[i + 1 :].any(axis=0) if i + 1 < len(masks) else np.zeros_like(mask)
        assert (out[alone & ~later] == track_color(i)).all()


def test_images_in_other_forms_are_converted_like_load_image():
    pixels, gt = swan_frame(0)
    rgba = np.dstack([pixels, np.full(gt.shape, 255, dtype=np.uint8)])
    out = overlay_masks(rgba, gt, (255, 0, 0))
    assert np.array_equal(out, overlay_masks(pixels, gt, (255, 0, 0)))
    grey = pixels[..., 1]
    assert np.array_equal(overlay_masks(grey, gt, alpha=0.0), np.dstack([grey] * 3))
    pil = Image.fromarray(pixels)
    assert np.array_equal(draw_boxes(pil, [[1, 1, 5, 5]]), draw_boxes(pixels, [[1, 1, 5, 5]]))
    with pytest.raises(TypeError):
        overlay_masks("image.png", gt)  # no file reading in viz
