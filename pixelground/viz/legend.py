"""Text on images: fonts, label tags and the legend panel (phrase -> colour).

Everything works on RGB uint8 arrays of shape (H, W, 3) and returns a new array; nothing
reads or writes files. Text uses Pillow's built-in font, so it renders offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pixelground.viz.colors import RGB

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

PANEL_COLOR: RGB = (0, 0, 0)
PANEL_ALPHA = 0.65
TEXT_COLOR: RGB = (255, 255, 255)


@lru_cache(maxsize=16)
def load_font(size: int) -> Font:
    """Pillow's default font at ``size`` pixels (the fixed bitmap font on old Pillow)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def auto_font_size(height: int, width: int) -> int:
    """A legible font size for an image: about 1/30 of its short side, within [10, 32]."""
    return int(min(32, max(10, round(min(height, width) / 30))))


def text_size(text: str, font: Font) -> tuple[int, int]:
    """(width, height) in pixels of ``text`` drawn at the origin, from its ink bounding box."""
    x0, y0, x1, y1 = font.getbbox(text)
    return int(x1), int(y1)


def line_height(font: Font) -> int:
    """Pixels from the top of a text line to the bottom of its lowest glyph ("Ag")."""
    return int(font.getbbox("Ag")[3])


def text_color_on(color: RGB) -> RGB:
    """Black or white, whichever reads better on a background of ``color``."""
    r, g, b = color
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def blend_rect(image: np.ndarray, box: tuple[int, int, int, int], color: RGB, alpha: float) -> None:
    """Blend ``color`` into ``image[y0:y1, x0:x1]`` in place with opacity ``alpha``."""
    x0, y0, x1, y1 = box
    patch = image[y0:y1, x0:x1].astype(np.float64)
    patch = (1.0 - alpha) * patch + alpha * np.asarray(color, dtype=np.float64)
    image[y0:y1, x0:x1] = np.clip(np.rint(patch), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class LegendItem:
    """One row of the legend panel.

    Attributes:
        text: the phrase (or "+k more" for entries that did not fit).
        color: the swatch colour, or None for the "+k more" row.
        swatch: xyxy pixel box of the colour swatch, exclusive of x1/y1.
        text_xy: top-left corner where the text is drawn.
    """

    text: str
    color: RGB | None
    swatch: tuple[int, int, int, int]
    text_xy: tuple[int, int]


def legend_entries(labels: Sequence[str], colors: Sequence[RGB]) -> list[tuple[str, RGB]]:
    """Distinct labels with their colours, in order of first appearance (each label once)."""
    if len(labels) != len(colors):
        raise ValueError(f"{len(labels)} labels but {len(colors)} colours")
    seen: dict[str, RGB] = {}
    for label, color in zip(labels, colors, strict=True):
        seen.setdefault(label, tuple(int(c) for c in color))
    return list(seen.items())


def legend_layout(
    entries: Sequence[tuple[str, RGB]], height: int, width: int, font_size: int
) -> tuple[tuple[int, int, int, int], list[LegendItem]]:
    """Where the legend panel and its rows go in a (height, width) image.

    The panel sits in the top-left corner. Rows that do not fit in the image height are
    replaced by one "+k more" row; text too wide for the image is shortened with "...".

    Args:
        entries: (label, colour) pairs, each label once.
        height: image height in pixels.
        width: image width in pixels.
        font_size: text size in pixels.

    Returns:
        The panel's xyxy box and one LegendItem per drawn row.
    """
    font = load_font(font_size)
    pad = max(2, font_size // 3)
    _, ink_top, _, ink_bottom = font.getbbox("Ag")
    shift = max(0, (ink_top + ink_bottom - font_size) // 2)  # centre swatches on the text
    row = max(font_size + shift, ink_bottom) + pad
    margin = pad
    fit = max(1, (height - 2 * margin - pad) // row)
    shown = list(entries)
    if len(shown) > fit:
        hidden = len(shown) - (fit - 1)
        shown = shown[: fit - 1] + [(f"+{hidden} more", None)]
    max_text = max(1, width - 2 * margin - 3 * pad - font_size)
    texts = [_fit_text(text, font, max_text) for text, _ in shown]
    text_w = max((text_size(t, font)[0] for t in texts), default=0)
    x0, y0 = margin, margin
    panel = (
        x0,
        y0,
        min(width, x0 + 3 * pad + font_size + text_w),
        min(height, y0 + pad + row * len(shown)),
    )
    items = []
    for i, ((_, color), text) in enumerate(zip(shown, texts, strict=True)):
        top = y0 + pad + i * row
        sy = top + shift
        swatch = (x0 + pad, sy, x0 + pad + font_size, sy + font_size)
        items.append(LegendItem(text, color, swatch, (swatch[2] + pad, top)))
    return panel, items


def _fit_text(text: str, font: Font, max_width: int) -> str:
    if text_size(text, font)[0] <= max_width:
        return text
    while text and text_size(text + "...", font)[0] > max_width:
        text = text[:-1]
    return text + "..."


def draw_legend(
    image: np.ndarray, entries: Sequence[tuple[str, RGB]], font_size: int | None = None
) -> np.ndarray:
    """Draw a legend panel listing each (label, colour) pair in the top-left corner.

    Args:
        image: RGB uint8 (H, W, 3).
        entries: (label, colour) pairs; see ``legend_entries`` to deduplicate.
        font_size: text size in pixels; chosen from the image size when None.

    Returns:
        A new RGB uint8 (H, W, 3) array.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    if not entries:
        return out
    height, width = out.shape[:2]
    size = font_size or auto_font_size(height, width)
    panel, items = legend_layout(entries, height, width, size)
    blend_rect(out, panel, PANEL_COLOR, PANEL_ALPHA)
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    font = load_font(size)
    for item in items:
        if item.color is not None:
            x0, y0, x1, y1 = item.swatch
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=item.color)
        draw.text(item.text_xy, item.text, fill=TEXT_COLOR, font=font)
    return np.asarray(canvas).copy()


def draw_tags(
    image: np.ndarray,
    texts: Sequence[str],
    anchors: Sequence[tuple[float, float] | None],
    colors: Sequence[RGB],
    font_size: int | None = None,
) -> np.ndarray:
    """Draw each text on a small box of its colour, just above its anchor point.

    Args:
        image: RGB uint8 (H, W, 3).
        texts: one label per tag.
        anchors: (x, y) pixel the tag's bottom-left corner sits on (a box's top-left
            corner); a tag that would leave the image is moved inside; None skips the tag.
        colors: the tag background of each text.
        font_size: text size in pixels; chosen from the image size when None.

    Returns:
        A new RGB uint8 (H, W, 3) array.
    """
    if not len(texts) == len(anchors) == len(colors):
        raise ValueError(f"got {len(texts)} texts, {len(anchors)} anchors, {len(colors)} colours")
    out = np.array(image, dtype=np.uint8, copy=True)
    height, width = out.shape[:2]
    size = font_size or auto_font_size(height, width)
    font = load_font(size)
    pad = max(1, size // 5)
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    placed: list[tuple[int, int, int, int]] = []
    for text, anchor, color in zip(texts, anchors, colors, strict=True):
        if anchor is None or not np.isfinite(anchor).all():
            continue
        text_w, _ = text_size(text, font)
        tag_w, tag_h = text_w + 2 * pad, line_height(font) + 2 * pad
        x = int(min(max(anchor[0], 0), max(width - tag_w, 0)))
        y = int(anchor[1]) - tag_h
        if y < 0:
            y = int(min(max(anchor[1], 0), max(height - tag_h, 0)))
        y = _free_row(x, y, tag_w, tag_h, height, placed)
        placed.append((x, y, x + tag_w, y + tag_h))
        color = tuple(int(c) for c in color)
        draw.rectangle((x, y, x + tag_w - 1, y + tag_h - 1), fill=color)
        draw.text((x + pad, y + pad), text, fill=text_color_on(color), font=font)
    return np.asarray(canvas).copy()


def _free_row(
    x: int, y: int, w: int, h: int, height: int, placed: list[tuple[int, int, int, int]]
) -> int:
    """The first of y, y + h, y + 2h, ... (up to 4 steps down) where a w x h tag overlaps no
    placed tag; y itself when none is free."""
    for step in range(5):
        top = y + step * h
        if top + h > height:
            break
        if not any(
            x < bx1 and bx0 < x + w and top < by1 and by0 < top + h for bx0, by0, bx1, by1 in placed
        ):
            return top
    return y
