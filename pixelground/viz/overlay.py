"""Draw masks, contours, boxes, points and labels on images and video frames.

Images are RGB uint8 arrays of shape (H, W, 3); masks are bool (N, H, W) or (H, W); boxes
are xyxy pixels, exclusive of x1/y1 (as ``pixelground.core.masks.masks_to_boxes`` makes
them). Every function returns a new array and leaves its input untouched; nothing here
reads or writes files (callers save, e.g. ``PIL.Image.fromarray(out).save(path)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from pixelground.core.masks import as_mask_stack, masks_to_boxes
from pixelground.core.media import load_image
from pixelground.core.prompts import Point
from pixelground.core.result import GroundedResult, VideoResult
from pixelground.viz.colors import PALETTE, RGB, distinct_colors, track_color
from pixelground.viz.legend import auto_font_size, draw_legend, draw_tags, legend_entries

POSITIVE_COLOR: RGB = (0, 200, 0)
NEGATIVE_COLOR: RGB = (220, 30, 30)
ColorsLike = RGB | Sequence[RGB] | None


def as_rgb(image: np.ndarray | Image.Image) -> np.ndarray:
    """A copy of ``image`` as RGB uint8 (H, W, 3).

    Args:
        image: (H, W, 3) uint8 array, or anything ``load_image`` turns into one without
            reading a file: a grey, RGBA, 16-bit or float array, or a PIL image.

    Returns:
        A new contiguous uint8 array of shape (H, W, 3).
    """
    array = image if isinstance(image, np.ndarray) else None
    if array is not None and array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        return np.array(array, dtype=np.uint8, copy=True, order="C")
    if not isinstance(image, np.ndarray | Image.Image):
        raise TypeError(f"expected an image array or PIL image, got {type(image).__name__}")
    return np.array(load_image(image, max_pixels=2**62).pixels, copy=True, order="C")


def _colors_for(colors: ColorsLike, count: int) -> list[RGB]:
    if colors is None:
        return [PALETTE[i % len(PALETTE)] for i in range(count)]
    if len(colors) == 3 and all(isinstance(c, int | np.integer) for c in colors):
        return [tuple(int(c) for c in colors)] * count  # one colour for all
    if len(colors) != count:
        raise ValueError(f"{len(colors)} colours for {count} items")
    return [tuple(int(v) for v in c) for c in colors]


def _check_masks(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    stack = as_mask_stack(masks)
    if stack.shape[1:] != image.shape[:2]:
        raise ValueError(f"masks are {stack.shape[1:]} but the image is {image.shape[:2]}")
    return stack


def _line_width(image: np.ndarray) -> int:
    return max(1, round(min(image.shape[:2]) / 240))


def overlay_masks(
    image: np.ndarray, masks: np.ndarray, colors: ColorsLike = None, alpha: float = 0.5
) -> np.ndarray:
    """Tint each mask's pixels with its colour: ``out = (1 - alpha) * out + alpha * colour``.

    Masks are blended one after the other, so where they overlap a later mask is laid over
    the blend of the earlier ones; the sum is kept in float and rounded once at the end.
    Pixels outside every mask are returned unchanged.

    Args:
        image: RGB uint8 (H, W, 3).
        masks: bool (N, H, W) or (H, W).
        colors: one (r, g, b) per mask, a single (r, g, b) for all, or None for the palette.
        alpha: opacity of the tint in [0, 1].

    Returns:
        A new RGB uint8 (H, W, 3) array.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = as_rgb(image)
    stack = _check_masks(out, masks)
    if not len(stack):
        return out
    touched = stack.any(axis=0)
    blended = out[touched].astype(np.float64)
    for mask, color in zip(stack, _colors_for(colors, len(stack)), strict=True):
        inside = mask[touched]
        blended[inside] = (1.0 - alpha) * blended[inside] + alpha * np.asarray(color, np.float64)
    out[touched] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def mask_contours(masks: np.ndarray, thickness: int = 1) -> np.ndarray:
    """The inner boundary band of each mask, ``thickness`` pixels wide (4-connected).

    A mask pixel is on the boundary when a pixel within ``thickness`` steps is outside the
    mask or outside the image. Args: masks (N, H, W) or (H, W). Returns: bool, same shape.
    """
    stack = as_mask_stack(masks)
    eroded = stack.copy()
    for _ in range(max(1, int(thickness))):
        padded = np.pad(eroded, ((0, 0), (1, 1), (1, 1)), constant_values=False)
        eroded = (
            padded[:, 1:-1, 1:-1]
            & padded[:, :-2, 1:-1]
            & padded[:, 2:, 1:-1]
            & padded[:, 1:-1, :-2]
            & padded[:, 1:-1, 2:]
        )
    band = stack & ~eroded
    return band[0] if np.ndim(masks) == 2 else band


def draw_contours(
    image: np.ndarray, masks: np.ndarray, colors: ColorsLike = None, thickness: int | None = None
) -> np.ndarray:
    """Paint each mask's inner boundary in its colour.

    Args:
        image: RGB uint8 (H, W, 3).
        masks: bool (N, H, W) or (H, W).
        colors: as in ``overlay_masks``.
        thickness: band width in pixels; chosen from the image size when None.

    Returns:
        A new RGB uint8 (H, W, 3) array; only mask pixels may change.
    """
    out = as_rgb(image)
    stack = _check_masks(out, masks)
    band = mask_contours(stack, thickness or _line_width(out))
    for edge, color in zip(band, _colors_for(colors, len(stack)), strict=True):
        out[edge] = color
    return out


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray | Sequence[Sequence[float]],
    colors: ColorsLike = None,
    width: int | None = None,
) -> np.ndarray:
    """Draw xyxy boxes as rectangles; the outline lies inside [x0, x1) x [y0, y1).

    Args:
        image: RGB uint8 (H, W, 3).
        boxes: (N, 4) xyxy pixels, exclusive of x1/y1; boxes with NaN or no area are skipped.
        colors: as in ``overlay_masks``.
        width: line width in pixels; chosen from the image size when None.

    Returns:
        A new RGB uint8 (H, W, 3) array.
    """
    out = as_rgb(image)
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    line = width or _line_width(out)
    for box, color in zip(array, _colors_for(colors, len(array)), strict=True):
        if not np.isfinite(box).all():
            continue
        x0, y0 = math.floor(box[0]), math.floor(box[1])
        x1, y1 = math.ceil(box[2]) - 1, math.ceil(box[3]) - 1
        if x1 < x0 or y1 < y0:
            continue
        draw.rectangle((x0, y0, x1, y1), outline=color, width=line)
    return np.asarray(canvas).copy()


def draw_points(
    image: np.ndarray,
    points: Sequence[Point | tuple[float, float] | tuple[float, float, bool]],
    radius: int | None = None,
) -> np.ndarray:
    """Draw clicks: positive points as green discs with "+", negative as red discs with "-".

    Args:
        image: RGB uint8 (H, W, 3).
        points: ``Point`` objects or (x, y[, positive]) tuples in pixels.
        radius: disc radius in pixels; chosen from the image size when None.

    Returns:
        A new RGB uint8 (H, W, 3) array.
    """
    out = as_rgb(image)
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    r = radius or max(4, round(min(out.shape[:2]) / 60))
    outline = max(1, r // 4)
    for point in points:
        if isinstance(point, Point):
            x, y, positive = point.x, point.y, point.positive
        else:
            x, y, positive = point[0], point[1], bool(point[2]) if len(point) > 2 else True
        fill = POSITIVE_COLOR if positive else NEGATIVE_COLOR
        draw.ellipse(
            (x - r, y - r, x + r, y + r), fill=fill, outline=(255, 255, 255), width=outline
        )
        arm = max(1, r // 2)
        draw.line((x - arm, y, x + arm, y), fill=(255, 255, 255), width=outline)
        if positive:
            draw.line((x, y - arm, x, y + arm), fill=(255, 255, 255), width=outline)
    return np.asarray(canvas).copy()


def draw_labels(
    image: np.ndarray,
    labels: Sequence[str],
    colors: Sequence[RGB],
    anchors: Sequence[tuple[float, float] | None] | None = None,
    legend: bool = True,
    font_size: int | None = None,
) -> np.ndarray:
    """Draw label tags at anchor points and a legend panel listing each label once.

    Args:
        image: RGB uint8 (H, W, 3).
        labels: one text per item (e.g. per region); repeated labels share a legend row.
        colors: one (r, g, b) per label.
        anchors: per item, the (x, y) pixel its tag sits above (e.g. its box's top-left
            corner), or None for no tag; no tags at all when ``anchors`` is None.
        legend: draw the legend panel (label -> colour) in the top-left corner.
        font_size: text size in pixels; chosen from the image size when None.

    Returns:
        A new RGB uint8 (H, W, 3) array.
    """
    out = as_rgb(image)
    if anchors is not None:
        out = draw_tags(out, labels, anchors, colors, font_size)
    if legend:
        out = draw_legend(out, legend_entries(labels, colors), font_size)
    return out


def region_key(region: object) -> str:
    """The text a region is coloured and listed by: its phrase, else its label, else its id."""
    phrase = getattr(region, "phrase", None)
    label = getattr(region, "label", None)
    return phrase or label or f"region {getattr(region, 'id', '?')}"


def render_result(
    image: np.ndarray | Image.Image,
    result: GroundedResult,
    alpha: float = 0.5,
    points: Sequence[Point] = (),
    boxes: bool = True,
    contours: bool = True,
    legend: bool = True,
    scores: bool = True,
) -> np.ndarray:
    """Draw a GroundedResult on its image: tinted masks, outlines, boxes, tags and a legend.

    Regions with the same phrase (else label) share a colour, stable across runs
    (``distinct_colors``); box-only regions get just a box.

    Args:
        image: the RGB uint8 (H, W, 3) image the result is about.
        result: the result; its image size must match ``image``.
        alpha: mask tint opacity.
        points: clicks to draw on top (e.g. the prompt of an interactive call).
        boxes: draw region boxes.
        contours: outline the masks.
        legend: draw the phrase -> colour panel.
        scores: add each region's score to its tag (tags are drawn when ``boxes`` is set).

    Returns:
        A new RGB uint8 (H, W, 3) array.
    """
    out = as_rgb(image)
    if out.shape[:2] != (result.image.height, result.image.width):
        raise ValueError(
            f"the image is {out.shape[:2]} but the result is for "
            f"{(result.image.height, result.image.width)}"
        )
    keys = [region_key(r) for r in result.regions]
    palette = distinct_colors(keys)
    colors = [palette[k] for k in keys]
    with_mask = [i for i, r in enumerate(result.regions) if r.mask is not None]
    if with_mask:
        masks = np.stack([result.regions[i].mask for i in with_mask])
        mask_colors = [colors[i] for i in with_mask]
        out = overlay_masks(out, masks, mask_colors, alpha)
        if contours:
            out = draw_contours(out, masks, mask_colors)
    anchors = None
    if boxes and len(result):
        region_boxes = result.boxes
        out = draw_boxes(out, region_boxes, colors)
        anchors = [tuple(b[:2]) if np.isfinite(b).all() else None for b in region_boxes]
    texts = [f"{k} {r.score:.2f}" if scores else k for k, r in zip(keys, result, strict=True)]
    if anchors is not None:
        out = draw_tags(out, texts, anchors, colors)
    if legend and keys:
        out = draw_legend(out, legend_entries(keys, colors))
    if points:
        out = draw_points(out, points)
    return out


def render_frame(
    image: np.ndarray | Image.Image,
    masks_by_track: Mapping[int, np.ndarray],
    labels: Mapping[int, str | None] | None = None,
    alpha: float = 0.5,
    contours: bool = True,
    boxes: bool = False,
    legend: bool = True,
) -> np.ndarray:
    """Draw one video frame's tracked masks, each track in its own stable colour.

    A track's colour depends only on its id (``track_color``), so it stays the same on every
    frame whichever other tracks are visible.

    Args:
        image: RGB uint8 (H, W, 3) frame.
        masks_by_track: track id -> bool (H, W) mask on this frame.
        labels: track id -> phrase or label, shown in the legend as "id: label".
        alpha: mask tint opacity.
        contours: outline the masks.
        boxes: draw each mask's bounding box.
        legend: draw the track -> colour panel.

    Returns:
        A new RGB uint8 (H, W, 3) array.
    """
    out = as_rgb(image)
    ids = sorted(masks_by_track)
    if not ids:
        return out
    masks = np.stack([np.asarray(masks_by_track[i], dtype=bool) for i in ids])
    colors = [track_color(i) for i in ids]
    out = overlay_masks(out, masks, colors, alpha)
    if contours:
        out = draw_contours(out, masks, colors)
    if boxes:
        out = draw_boxes(out, masks_to_boxes(masks), colors)
    if legend:
        names = [f"{i}: {labels[i]}" if labels and labels.get(i) else f"track {i}" for i in ids]
        size = auto_font_size(*out.shape[:2])
        out = draw_legend(out, legend_entries(names, colors), size)
    return out


def render_video_frame(
    image: np.ndarray | Image.Image, result: VideoResult, frame_index: int, **options: object
) -> np.ndarray:
    """``render_frame`` for frame ``frame_index`` of a VideoResult (tracks absent there skipped).

    Args:
        image: RGB uint8 (H, W, 3) pixels of that (sampled) frame.
        result: the video result.
        frame_index: sampled-frame index, as in ``Track.frames``.
        **options: passed on to ``render_frame``.

    Returns:
        A new RGB uint8 (H, W, 3) array.
    """
    labels = {t.id: t.phrase or t.label for t in result.tracks}
    return render_frame(image, result.frame_masks(frame_index), labels, **options)
