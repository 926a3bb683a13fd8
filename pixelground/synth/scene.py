"""Seeded sampling of scenes of coloured, textured shapes on a background.

A scene is pure data: its shapes (kind, colour, size, texture, centre, radius, rotation) in
drawing order (the first shape is at the bottom, later shapes occlude earlier ones) and its
background. ``render.render_scene`` turns it into pixels and masks. Every random choice comes
from the ``numpy.random.Generator`` passed in, so a seed fixes the scene.

Coordinates are pixels with (0, 0) the top-left corner of the top-left pixel; x grows to the
right, y grows down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from pixelground.synth.geometry import shape_mask, visible_masks

KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "ellipse")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 70),
    "blue": (40, 90, 225),
    "yellow": (240, 205, 35),
    "purple": (150, 60, 205),
    "orange": (245, 135, 30),
}
SIZES: tuple[str, ...] = ("small", "medium", "large")
#: Radius range of each size class, as a fraction of the image side (non-overlapping).
SIZE_RADIUS: dict[str, tuple[float, float]] = {
    "small": (0.055, 0.07),
    "medium": (0.09, 0.11),
    "large": (0.14, 0.165),
}
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted")
BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "noise")
ATTRIBUTES: tuple[str, ...] = ("size", "texture", "colour", "kind")

Pair = tuple[str, str]  # (colour, kind)


@dataclass(frozen=True)
class Shape:
    """One shape of a scene.

    Attributes:
        id: object id, 1-based, unique in its scene (0 is the background in label maps).
        kind, colour, size, texture: the categorical attributes language refers to.
        cx, cy: centre in pixels.
        radius: size in pixels (circumradius-like; each kind scales it to a similar area).
        rotation: degrees, counter-clockwise on screen.
        aspect: minor/major axis ratio (ellipses; 1 for other kinds).
        rgb: base colour after a small jitter around ``COLOURS[colour]``.
        pattern_angle: stripe direction in degrees (striped texture).
    """

    id: int
    kind: str
    colour: str
    size: str
    texture: str
    cx: float
    cy: float
    radius: float
    rotation: float = 0.0
    aspect: float = 1.0
    rgb: tuple[int, int, int] = (0, 0, 0)
    pattern_angle: float = 0.0

    @property
    def pair(self) -> Pair:
        """The (colour, kind) combination, the unit of held-out splits."""
        return (self.colour, self.kind)

    def attribute(self, name: str) -> str:
        """The value of one of ``ATTRIBUTES``."""
        return str(getattr(self, name))

    def moved(self, cx: float, cy: float) -> Shape:
        """The same shape with its centre at (cx, cy)."""
        return replace(self, cx=float(cx), cy=float(cy))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (positions rounded to 1/100 pixel)."""
        out = asdict(self)
        for key in ("cx", "cy", "radius", "rotation", "aspect", "pattern_angle"):
            out[key] = round(float(out[key]), 2)
        out["rgb"] = list(self.rgb)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shape:
        """Inverse of ``to_dict``."""
        values = dict(data)
        values["rgb"] = tuple(int(v) for v in values["rgb"])
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class Background:
    """A plain colour, a linear gradient between two colours, or grey noise around a colour.

    Attributes:
        kind: one of ``BACKGROUNDS``.
        rgb: the (first) colour.
        rgb2: the gradient's second colour (equal to ``rgb`` otherwise).
        angle: gradient direction in degrees.
        noise_seed: seed of the noise field (kind "noise").
        noise_sigma: standard deviation of the noise in grey levels.
    """

    kind: str
    rgb: tuple[int, int, int]
    rgb2: tuple[int, int, int]
    angle: float = 0.0
    noise_seed: int = 0
    noise_sigma: float = 0.0

    @property
    def tone(self) -> str:
        """ "dark" or "light", from the mean grey level."""
        return "dark" if (sum(self.rgb) + sum(self.rgb2)) / 6 < 128 else "light"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = asdict(self)
        out["rgb"], out["rgb2"] = list(self.rgb), list(self.rgb2)
        out["angle"] = round(float(self.angle), 2)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Background:
        """Inverse of ``to_dict``."""
        values = dict(data)
        values["rgb"] = tuple(int(v) for v in values["rgb"])
        values["rgb2"] = tuple(int(v) for v in values["rgb2"])
        return cls(**values)


@dataclass
class Scene:
    """Shapes in drawing order (bottom first) on a background, in an image of (height, width)."""

    width: int
    height: int
    background: Background
    shapes: list[Shape] = field(default_factory=list)

    def shape(self, shape_id: int) -> Shape:
        """The shape with this id; KeyError if there is none."""
        for shape in self.shapes:
            if shape.id == shape_id:
                return shape
        raise KeyError(f"no shape with id {shape_id}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "width": self.width,
            "height": self.height,
            "background": self.background.to_dict(),
            "shapes": [s.to_dict() for s in self.shapes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        """Inverse of ``to_dict``."""
        return cls(
            width=int(data["width"]),
            height=int(data["height"]),
            background=Background.from_dict(data["background"]),
            shapes=[Shape.from_dict(s) for s in data["shapes"]],
        )


@dataclass(frozen=True)
class SceneConfig:
    """What scenes look like.

    Attributes:
        size: image side in pixels (images are square).
        min_shapes, max_shapes: number of shapes per scene (inclusive).
        kinds, colours, sizes, textures, backgrounds: the values sampled from.
        overlap_prob: chance that a new shape may overlap (occlude) those below it.
        min_visible: every shape keeps at least this fraction of its pixels visible.
        max_tries: placement attempts per shape before it is dropped.
    """

    size: int = 256
    min_shapes: int = 2
    max_shapes: int = 6
    kinds: tuple[str, ...] = KINDS
    colours: tuple[str, ...] = tuple(COLOURS)
    sizes: tuple[str, ...] = SIZES
    textures: tuple[str, ...] = TEXTURES
    backgrounds: tuple[str, ...] = BACKGROUNDS
    overlap_prob: float = 0.35
    min_visible: float = 0.6
    max_tries: int = 40

    def all_pairs(self) -> tuple[Pair, ...]:
        """Every (colour, kind) combination of this config."""
        return tuple((c, k) for c in self.colours for k in self.kinds)


def sample_background(rng: np.random.Generator, kinds: Sequence[str] = BACKGROUNDS) -> Background:
    """A muted (low-saturation) background, so saturated shape colours always stand out."""
    kind = str(kinds[int(rng.integers(len(kinds)))])
    rgb = _muted(rng)
    rgb2 = rgb
    if kind == "gradient":
        rgb2 = _muted(rng)
        while abs(sum(rgb2) - sum(rgb)) < 120:
            rgb2 = _muted(rng)
    return Background(
        kind=kind,
        rgb=rgb,
        rgb2=rgb2,
        angle=float(rng.uniform(0, 360)),
        noise_seed=int(rng.integers(2**31)),
        noise_sigma=float(rng.uniform(6, 14)) if kind == "noise" else 0.0,
    )


def _muted(rng: np.random.Generator) -> tuple[int, int, int]:
    grey = int(rng.integers(50, 191))
    tint = rng.integers(-12, 13, size=3)
    return tuple(int(v) for v in np.clip(grey + tint, 0, 255))  # type: ignore[return-value]


def sample_attributes(
    rng: np.random.Generator, config: SceneConfig, pairs: Sequence[Pair]
) -> dict[str, Any]:
    """Categorical attributes of one shape; (colour, kind) is drawn from ``pairs``."""
    colour, kind = pairs[int(rng.integers(len(pairs)))]
    size = str(config.sizes[int(rng.integers(len(config.sizes)))])
    texture = str(config.textures[int(rng.integers(len(config.textures)))])
    low, high = SIZE_RADIUS[size]
    jitter = rng.integers(-10, 11, size=3)
    rotation = {
        "circle": 0.0,
        "square": rng.uniform(-15, 15),
        "triangle": rng.uniform(-15, 15),
    }.get(kind, rng.uniform(0, 360))
    return {
        "kind": kind,
        "colour": colour,
        "size": size,
        "texture": texture,
        "radius": float(rng.uniform(low, high) * config.size),
        "rotation": float(rotation),
        "aspect": float(rng.uniform(0.5, 0.62)) if kind == "ellipse" else 1.0,
        "rgb": tuple(int(v) for v in np.clip(np.array(COLOURS[colour]) + jitter, 0, 255)),
        "pattern_angle": float(rng.choice([0.0, 45.0, 90.0, 135.0])),
    }


def sample_scene(
    rng: np.random.Generator,
    config: SceneConfig | None = None,
    pairs: Sequence[Pair] | None = None,
    required_pairs: Sequence[Pair] = (),
) -> Scene:
    """Sample a scene.

    Args:
        rng: the source of every random choice.
        config: scene parameters (defaults: ``SceneConfig()``).
        pairs: (colour, kind) combinations shapes may have (default: all of the config's).
        required_pairs: if given, one shape (at a random depth) has one of these combinations.

    Returns:
        A Scene of ``config.size`` x ``config.size`` with shapes fully inside the image, each
        keeping at least ``config.min_visible`` of its pixels after occlusion.
    """
    config = config or SceneConfig()
    pairs = list(pairs) if pairs is not None else list(config.all_pairs())
    side = config.size
    background = sample_background(rng, config.backgrounds)
    count = int(rng.integers(config.min_shapes, config.max_shapes + 1))
    special = int(rng.integers(count)) if required_pairs else -1
    shapes: list[Shape] = []
    fulls: list[np.ndarray] = []
    for index in range(count):
        attrs = sample_attributes(rng, config, required_pairs if index == special else pairs)
        may_overlap = bool(rng.random() < config.overlap_prob)
        placed = _place(rng, config, attrs, len(shapes) + 1, fulls, may_overlap)
        if placed is None:
            if index == special:  # keep the required combination: retry it as the top shape
                placed = _place(rng, config, attrs, len(shapes) + 1, fulls, True)
            if placed is None:
                continue
        shape, mask = placed
        shapes.append(shape)
        fulls.append(mask)
    return Scene(width=side, height=side, background=background, shapes=shapes)


def _place(
    rng: np.random.Generator,
    config: SceneConfig,
    attrs: dict[str, Any],
    shape_id: int,
    fulls: list[np.ndarray],
    may_overlap: bool,
) -> tuple[Shape, np.ndarray] | None:
    """Find a centre for a new top shape; returns it and its (H, W) full mask, or None."""
    side = config.size
    radius = attrs["radius"]
    low, high = radius * 1.2 + 1, side - radius * 1.2 - 1
    for _ in range(config.max_tries):
        cx, cy = rng.uniform(low, high, size=2)
        shape = Shape(id=shape_id, cx=float(cx), cy=float(cy), **attrs)
        mask = shape_mask(shape, side, side)
        if (
            not mask.any()
            or mask[0].any()
            or mask[-1].any()
            or mask[:, 0].any()
            or mask[:, -1].any()
        ):
            continue
        touching = [bool((mask & f).any()) for f in fulls]
        if any(touching) and not may_overlap:
            continue
        if any(touching) and not _visible_enough([*fulls, mask], config.min_visible):
            continue
        return shape, mask
    return None


def _visible_enough(fulls: list[np.ndarray], min_visible: float) -> bool:
    stack = np.stack(fulls)
    visible = visible_masks(stack)
    full_area = stack.reshape(len(stack), -1).sum(1)
    vis_area = visible.reshape(len(stack), -1).sum(1)
    return bool(np.all(vis_area >= min_visible * full_area))
