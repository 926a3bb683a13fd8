"""Rasterise scenes: RGB uint8 pixels and exact per-object masks.

Each shape is a polygon (circles and ellipses with 72 vertices) filled by PIL without
anti-aliasing, so its full mask is exact, and the image is painted through the masks in drawing
order: a pixel of an object's visible mask always shows that object's colour or texture shade,
and a pixel outside every visible mask always shows the background.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from pixelground.synth.scene import Background, Scene, Shape

#: Each kind's polygon radius relative to ``Shape.radius``, so kinds of one size class have
#: similar areas.
KIND_SCALE: dict[str, float] = {
    "circle": 1.0,
    "ellipse": 1.25,
    "square": 0.9,
    "triangle": 1.3,
    "star": 1.3,
    "hexagon": 1.05,
}
#: Texture shade: the darker colour of stripes and dots, as a factor of the base colour.
SHADE = 0.55
_ROUND = 72


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


def shape_polygon(shape: Shape) -> np.ndarray:
    """(K, 2) float64 xy vertices of the shape's outline, in pixels."""
    r = shape.radius * KIND_SCALE.get(shape.kind, 1.0)
    kind = shape.kind
    if kind in ("circle", "ellipse"):
        t = np.linspace(0, 2 * np.pi, _ROUND, endpoint=False)
        pts = np.stack([r * np.cos(t), r * shape.aspect * np.sin(t)], axis=1)
    elif kind == "star":
        t = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        pts = np.stack([radii * np.cos(t), radii * np.sin(t)], axis=1)
    else:
        sides = {"square": 4, "triangle": 3, "hexagon": 6}[kind]
        start = {"square": np.pi / 4, "triangle": np.pi / 2, "hexagon": 0.0}[kind]
        t = start + np.arange(sides) * 2 * np.pi / sides
        pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
        if kind == "triangle":
            pts[:, 1] -= r * 0.25  # centre the triangle's box on its centre
    angle = np.deg2rad(shape.rotation)
    rot = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    pts = pts @ rot.T
    if kind in ("triangle", "star"):
        pts[:, 1] = -pts[:, 1]  # apex up on screen (y grows down)
    return pts + np.array([shape.cx, shape.cy])


def shape_mask(shape: Shape, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of the whole shape, ignoring occlusion; parts outside are clipped."""
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in shape_polygon(shape).tolist()], fill=255)
    return np.asarray(canvas) > 0


def visible_masks(full: np.ndarray) -> np.ndarray:
    """Visible part of each mask of a stack in drawing order: (N, H, W) -> (N, H, W) bool.

    Later masks are on top and hide the pixels of earlier ones.
    """
    visible = np.zeros_like(full, dtype=bool)
    covered = np.zeros(full.shape[1:], dtype=bool)
    for i in range(len(full) - 1, -1, -1):
        visible[i] = full[i] & ~covered
        covered |= full[i]
    return visible


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
