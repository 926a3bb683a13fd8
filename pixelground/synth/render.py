"""Rasterise scenes: RGB uint8 pixels and exact per-object masks.

Each shape is a polygon (circles and ellipses with 72 vertices) filled by PIL without
anti-aliasing, so its full mask is exact, and the image is painted through the masks in drawing
order: a pixel of an object's visible mask always shows that object's colour or texture shade,
and a pixel outside every visible mask always shows the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixelground.synth.geometry import shape_mask, visible_masks
from pixelground.synth.scene import Background, Scene, Shape

#: Texture shade: the darker colour of stripes and dots, as a factor of the base colour.
SHADE = 0.55


@dataclass
class Rendered:
    """Pixels and masks of a rendered scene.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        full: (N, H, W) bool masks of each shape ignoring occlusion (clipped to the image).
        visible: (N, H, W) bool masks of each shape's visible pixels; pairwise disjoint.
        ids: (N,) int object ids, in the scene's drawing order.
    """

    image: np.ndarray
    full: np.ndarray
    visible: np.ndarray
    ids: np.ndarray

    def label_map(self) -> np.ndarray:
        """(H, W) uint8 map of object ids (0 = background), as DAVIS annotation PNGs store."""
        out = np.zeros(self.image.shape[:2], dtype=np.uint8)
        for shape_id, mask in zip(self.ids, self.visible, strict=True):
            out[mask] = shape_id
        return out


def texture_colours(shape: Shape, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Colours of a shape's pixels at integer (ys, xs): (K,), (K,) -> (K, 3) uint8.

    Solid shapes are their base colour; striped and dotted shapes mix it with a darker shade
    (``SHADE`` times the base). Patterns are anchored to the shape's centre, so they move
    with it.
    """
    base = np.array(shape.rgb, dtype=np.float64)
    dark = np.floor(base * SHADE).astype(np.uint8)
    out = np.empty((len(ys), 3), dtype=np.uint8)
    out[:] = base.astype(np.uint8)
    if shape.texture == "solid" or not len(ys):
        return out
    dx = xs + 0.5 - shape.cx
    dy = ys + 0.5 - shape.cy
    if shape.texture == "striped":
        width = max(2.5, shape.radius * 0.22)
        angle = np.deg2rad(shape.pattern_angle)
        u = dx * np.cos(angle) + dy * np.sin(angle)
        shaded = np.floor(u / width).astype(np.int64) % 2 == 1
    else:  # dotted
        gap = max(5.0, shape.radius * 0.45)
        ox = np.mod(dx, gap) - gap / 2
        oy = np.mod(dy, gap) - gap / 2
        shaded = ox * ox + oy * oy <= (gap * 0.3) ** 2
    out[shaded] = dark
    return out


def render_background(background: Background, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 background pixels."""
    c1 = np.array(background.rgb, dtype=np.float32)
    if background.kind == "gradient":
        c2 = np.array(background.rgb2, dtype=np.float32)
        angle = np.deg2rad(background.angle)
        xs = ((np.arange(width) / max(width - 1, 1) - 0.5) * np.cos(angle)).astype(np.float32)
        ys = ((np.arange(height) / max(height - 1, 1) - 0.5) * np.sin(angle)).astype(np.float32)
        u = ys[:, None] + xs[None, :]
        t = ((u - u.min()) / max(float(u.max() - u.min()), 1e-9))[..., None]
        pixels = c1 * (1 - t) + c2 * t
    elif background.kind == "noise":
        noise = np.random.default_rng(background.noise_seed).standard_normal(
            size=(height, width, 1), dtype=np.float32
        )
        pixels = c1 + np.float32(background.noise_sigma) * noise
    else:
        pixels = np.broadcast_to(c1, (height, width, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def render_shapes(
    shapes: list[Shape],
    background: Background,
    height: int,
    width: int,
    base: np.ndarray | None = None,
) -> Rendered:
    """Paint shapes (bottom first) over a background.

    Args:
        shapes: shapes in drawing order.
        background: the background (rendered unless ``base`` is given).
        height, width: image size.
        base: optional (H, W, 3) uint8 pre-rendered background (copied, not modified), so a
            clip renders its static background once.

    Returns:
        Rendered with a (H, W, 3) image and (N, H, W) full and visible masks.
    """
    image = render_background(background, height, width) if base is None else base.copy()
    n = len(shapes)
    full = np.zeros((n, height, width), dtype=bool)
    for i, shape in enumerate(shapes):
        full[i] = shape_mask(shape, height, width)
    visible = visible_masks(full)
    for i, shape in enumerate(shapes):
        ys, xs = np.nonzero(visible[i])
        image[ys, xs] = texture_colours(shape, ys, xs)
    ids = np.array([s.id for s in shapes], dtype=np.int64)
    return Rendered(image=image, full=full, visible=visible, ids=ids)


def render_scene(scene: Scene) -> Rendered:
    """Render a scene: pixels, full masks and visible masks (see ``Rendered``)."""
    return render_shapes(scene.shapes, scene.background, scene.height, scene.width)
