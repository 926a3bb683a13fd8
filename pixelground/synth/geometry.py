"""Shape outlines and masks: the geometry shared by scene sampling and rendering.

Each shape is a polygon (circles and ellipses with ``ROUND_VERTICES`` vertices) filled by PIL
without anti-aliasing, so its mask is exact. Functions take any object with the outline fields
of ``pixelground.synth.scene.Shape`` (kind, centre, radius, rotation, aspect).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw

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
ROUND_VERTICES = 72


class Outline(Protocol):
    """The fields of a shape its outline depends on (``Shape`` has them)."""

    @property
    def kind(self) -> str: ...

    @property
    def cx(self) -> float: ...

    @property
    def cy(self) -> float: ...

    @property
    def radius(self) -> float: ...

    @property
    def rotation(self) -> float: ...

    @property
    def aspect(self) -> float: ...


def shape_polygon(shape: Outline) -> np.ndarray:
    """(K, 2) float64 xy vertices of the shape's outline, in pixels."""
    r = shape.radius * KIND_SCALE.get(shape.kind, 1.0)
    kind = shape.kind
    if kind in ("circle", "ellipse"):
        t = np.linspace(0, 2 * np.pi, ROUND_VERTICES, endpoint=False)
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


def shape_mask(shape: Outline, height: int, width: int) -> np.ndarray:
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
