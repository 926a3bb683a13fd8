"""Visual prompts: points, boxes and masks, validated against the image size.

Coordinates are pixels, x to the right and y down, with the image spanning
[0, width] x [0, height]. A point is inside if 0 <= x < width and 0 <= y < height.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pixelground.core.errors import InputError


@dataclass(frozen=True)
class Point:
    """A click: ``positive`` True means "this is the object", False "this is not"."""

    x: float
    y: float
    positive: bool = True

    def validate(self, height: int, width: int) -> None:
        """Raise InputError if the point lies outside a (height, width) image."""
        if not (np.isfinite(self.x) and np.isfinite(self.y)):
            raise InputError(f"point ({self.x}, {self.y}) is not a finite coordinate")
        if not (0 <= self.x < width and 0 <= self.y < height):
            raise InputError(
                f"point ({self.x:g}, {self.y:g}) is outside the {width}x{height} image; "
                f"x must be in [0, {width}) and y in [0, {height})"
            )

    @classmethod
    def parse(cls, text: str, positive: bool = True) -> Point:
        """Parse ``"x,y"`` as typed on a command line."""
        return cls(*_parse_floats(text, 2, "X,Y"), positive=positive)

    @classmethod
    def of(cls, value: Point | Sequence[float]) -> Point:
        """A Point from a Point or an (x, y) sequence; InputError for anything else."""
        return value if isinstance(value, Point) else cls(*_numbers(value, 2, "point (x, y)"))


@dataclass(frozen=True)
class Box:
    """An xyxy box in pixels."""

    x0: float
    y0: float
    x1: float
    y1: float

    def as_array(self) -> np.ndarray:
        """The box as a float64 array of shape (4,)."""
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)

    def validate(self, height: int, width: int) -> None:
        """Raise InputError unless the box is non-empty and overlaps a (height, width) image."""
        values = self.as_array()
        if not np.isfinite(values).all():
            raise InputError(f"box {tuple(values)} has a non-finite coordinate")
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise InputError(
                f"box ({self.x0:g}, {self.y0:g}, {self.x1:g}, {self.y1:g}) is empty: "
                "it must be x0,y0,x1,y1 with x1 > x0 and y1 > y0"
            )
        if self.x1 <= 0 or self.y1 <= 0 or self.x0 >= width or self.y0 >= height:
            raise InputError(
                f"box ({self.x0:g}, {self.y0:g}, {self.x1:g}, {self.y1:g}) lies outside "
                f"the {width}x{height} image"
            )

    def clipped(self, height: int, width: int) -> Box:
        """The part of the box inside a (height, width) image."""
        return Box(
            min(max(self.x0, 0.0), width),
            min(max(self.y0, 0.0), height),
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
        )

    @classmethod
    def parse(cls, text: str) -> Box:
        """Parse ``"x0,y0,x1,y1"`` as typed on a command line."""
        return cls(*_parse_floats(text, 4, "X0,Y0,X1,Y1"))

    @classmethod
    def of(cls, value: Box | Sequence[float]) -> Box:
        """A Box from a Box or an (x0, y0, x1, y1) sequence; InputError for anything else."""
        return value if isinstance(value, Box) else cls(*_numbers(value, 4, "box (x0, y0, x1, y1)"))


@dataclass(frozen=True, eq=False)
class Prompt:
    """What tells a segmenter which object: any of points, one box and one mask.

    Attributes:
        points: clicks, positive and negative.
        box: an xyxy box.
        mask: a (H, W) bool mask of the object, e.g. from a previous frame or a user.
    """

    points: tuple[Point, ...] = ()
    box: Box | None = None
    mask: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple(self.points))
        if not self.points and self.box is None and self.mask is None:
            raise InputError("a prompt needs at least one point, a box or a mask")

    def validate(self, height: int, width: int) -> None:
        """Raise InputError if any part of the prompt does not fit a (height, width) image."""
        for point in self.points:
            point.validate(height, width)
        if self.box is not None:
            self.box.validate(height, width)
        if self.mask is not None:
            if self.mask.shape != (height, width):
                raise InputError(
                    f"mask prompt has shape {self.mask.shape}, the image is {(height, width)}"
                )
            if not self.mask.any():
                raise InputError("mask prompt is empty: it must mark at least one pixel")


def _numbers(value: object, count: int, what: str) -> list[float]:
    try:
        numbers = [float(v) for v in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InputError(f"a {what} takes {count} numbers, got {value!r}") from None
    if len(numbers) != count:
        raise InputError(f"a {what} takes {count} numbers, got {len(numbers)}")
    return numbers


def _parse_floats(text: str, count: int, form: str) -> list[float]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count:
        raise InputError(f"cannot read {text!r}: expected {form}")
    return values


def validate_prompts(prompts: Sequence[Prompt], height: int, width: int) -> None:
    """Validate every prompt against a (height, width) image; InputError on the first bad one."""
    if not prompts:
        raise InputError("no prompt given: pass a point, a box or a mask")
    for prompt in prompts:
        prompt.validate(height, width)
