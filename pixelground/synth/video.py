"""Video clips of moving shapes, per-frame masks, and motion expressions.

Each object moves in a straight line at constant speed from ``start`` (frame 0) to ``end``
(last frame). Its motion is one of:

- ``static``: it does not move;
- ``move``: it stays fully inside the frame and moves left, right, up or down (the dominant
  axis is at least 4x the other);
- ``enter``: it is fully outside the frame on frame 0, beyond the named side, and fully inside
  on the last frame;
- ``leave``: fully inside on frame 0, fully outside beyond the named side on the last frame.

Its ``direction`` (left/right/up/down) is the dominant direction of travel, for every motion
but static: an object entering from the left moves to the right. Motion expressions mean:

- "that moves to the right": direction == "right" (whatever the motion kind);
- "that stays still": motion == "static";
- "that enters from the left": motion == "enter" and side == "left";
- "that leaves to the left" / "through the top": motion == "leave" and side == that side.

Objects are drawn in a fixed order (later on top); inside the frame every object keeps at
least ``min_visible`` of its in-frame pixels on every frame, so an object's mask is empty
exactly on the frames where it is outside the image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelground.synth.geometry import shape_mask, shape_polygon
from pixelground.synth.language import SUBSETS, Desc, Expression, pick_desc
from pixelground.synth.render import render_background, render_shapes
from pixelground.synth.scene import (
    Background,
    Pair,
    Scene,
    SceneConfig,
    Shape,
    sample_attributes,
    sample_background,
)

MOTIONS: tuple[str, ...] = ("static", "move", "enter", "leave")
MOTION_WEIGHTS: tuple[float, ...] = (0.25, 0.4, 0.175, 0.175)
SIDES: tuple[str, ...] = ("left", "right", "top", "bottom")
#: Direction of travel when entering from a side (leaving towards it is the opposite).
_ENTER_DIRECTION = {"left": "right", "right": "left", "top": "down", "bottom": "up"}
_LEAVE_DIRECTION = {"left": "left", "right": "right", "top": "up", "bottom": "down"}
_UNIT = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
_LEAVE_WORDS = {
    "left": "to the left",
    "right": "to the right",
    "top": "through the top",
    "bottom": "through the bottom",
}


@dataclass(frozen=True)
class MovingShape:
    """A shape (positioned at frame 0) with its straight-line motion.

    Attributes:
        shape: attributes and frame-0 position.
        start, end: (cx, cy) centre on the first and last frame.
        motion: one of ``MOTIONS``.
        direction: "left", "right", "up", "down", or None when static.
        side: the image side entered from / left through (enter and leave only).
    """

    shape: Shape
    start: tuple[float, float]
    end: tuple[float, float]
    motion: str
    direction: str | None = None
    side: str | None = None

    def at(self, t: int, num_frames: int) -> Shape:
        """The shape on frame ``t`` of ``num_frames``."""
        f = t / max(num_frames - 1, 1)
        return self.shape.moved(
            self.start[0] + f * (self.end[0] - self.start[0]),
            self.start[1] + f * (self.end[1] - self.start[1]),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "shape": self.shape.to_dict(),
            "start": [round(v, 2) for v in self.start],
            "end": [round(v, 2) for v in self.end],
            "motion": self.motion,
            "direction": self.direction,
            "side": self.side,
        }


@dataclass
class Clip:
    """Moving shapes on a static background, ``num_frames`` frames of (height, width)."""

    width: int
    height: int
    num_frames: int
    background: Background
    objects: list[MovingShape] = field(default_factory=list)

    def scene_at(self, t: int) -> Scene:
        """The scene on frame ``t``."""
        shapes = [o.at(t, self.num_frames) for o in self.objects]
        return Scene(self.width, self.height, self.background, shapes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "width": self.width,
            "height": self.height,
            "num_frames": self.num_frames,
            "background": self.background.to_dict(),
            "objects": [o.to_dict() for o in self.objects],
        }


@dataclass(frozen=True)
class ClipConfig:
    """What clips look like: frame count, object count, and the scene look (``scene``)."""

    num_frames: int = 8
    min_objects: int = 2
    max_objects: int = 4
    scene: SceneConfig = field(default_factory=SceneConfig)
    min_visible: float = 0.3
    max_tries: int = 40


def sample_clip(
    rng: np.random.Generator,
    config: ClipConfig | None = None,
    pairs: Sequence[Pair] | None = None,
    required_pairs: Sequence[Pair] = (),
) -> Clip:
    """Sample a clip; ``pairs`` and ``required_pairs`` as in ``scene.sample_scene``."""
    config = config or ClipConfig()
    side = config.scene.size
    pairs = list(pairs) if pairs is not None else list(config.scene.all_pairs())
    background = sample_background(rng, config.scene.backgrounds)
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    special = int(rng.integers(count)) if required_pairs else -1
    objects: list[MovingShape] = []
    fulls: list[np.ndarray] = []  # per object: (T, H, W) full masks
    for index in range(count):
        attrs = sample_attributes(rng, config.scene, required_pairs if index == special else pairs)
        for _ in range(config.max_tries):
            motion = str(rng.choice(MOTIONS, p=np.array(MOTION_WEIGHTS) / sum(MOTION_WEIGHTS)))
            obj = _trajectory(rng, attrs, len(objects) + 1, motion, side)
            masks = np.stack(
                [
                    shape_mask(obj.at(t, config.num_frames), side, side)
                    for t in range(config.num_frames)
                ]
            )
            if _visible_enough([*fulls, masks], config.min_visible):
                objects.append(obj)
                fulls.append(masks)
                break
    return Clip(side, side, config.num_frames, background, objects)


def _trajectory(
    rng: np.random.Generator, attrs: dict[str, Any], obj_id: int, motion: str, side: int
) -> MovingShape:
    """Start and end centres for a motion, keeping the shape's polygon in/out as required."""
    probe = Shape(id=obj_id, cx=0.0, cy=0.0, **attrs)
    reach = float(np.abs(shape_polygon(probe)).max()) + 2.0
    low, high = reach, side - reach
    start = rng.uniform(low, high, size=2)
    end = start.copy()
    direction: str | None = None
    edge: str | None = None
    if motion == "move":
        direction = str(rng.choice(list(_UNIT)))
        length = rng.uniform(0.25, 0.45) * side
        along = 0 if direction in ("left", "right") else 1
        sign = _UNIT[direction][along]
        start[along] = (
            rng.uniform(low, high - length) if sign > 0 else rng.uniform(low + length, high)
        )
        end[along] = start[along] + sign * length
        end[1 - along] = np.clip(start[1 - along] + rng.uniform(-0.2, 0.2) * length, low, high)
    elif motion in ("enter", "leave"):
        edge = str(rng.choice(SIDES))
        direction = (_ENTER_DIRECTION if motion == "enter" else _LEAVE_DIRECTION)[edge]
        along = 0 if edge in ("left", "right") else 1
        outside = -reach - rng.uniform(0, 0.05) * side
        if edge in ("right", "bottom"):
            outside = side - outside
        inside = rng.uniform(low, min(high, low + 0.35 * side))  # near the side it crosses
        if edge in ("right", "bottom"):
            inside = side - inside
        start[along], end[along] = (outside, inside) if motion == "enter" else (inside, outside)
    shape = probe.moved(start[0], start[1])
    return MovingShape(
        shape=shape,
        start=(float(start[0]), float(start[1])),
        end=(float(end[0]), float(end[1])),
        motion=motion,
        direction=direction,
        side=edge,
    )


def _visible_enough(fulls: list[np.ndarray], min_visible: float) -> bool:
    """Every object keeps ``min_visible`` of its in-frame pixels on every frame."""
    stack = np.stack(fulls, axis=1)  # (T, N, H, W)
    covered = np.zeros(stack.shape[0:1] + stack.shape[2:], dtype=bool)
    for i in range(stack.shape[1] - 1, -1, -1):
        full = stack[:, i]
        area = full.reshape(len(full), -1).sum(1)
        visible = (full & ~covered).reshape(len(full), -1).sum(1)
        if np.any(visible < min_visible * area):
            return False
        covered |= full
    return True


def render_clip(clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    """Render every frame.

    Returns:
        frames: (T, H, W, 3) uint8; masks: (T, N, H, W) bool visible masks, objects in
        ``clip.objects`` order (ids 1..N).
    """
    frames, masks = [], []
    base = render_background(clip.background, clip.height, clip.width)
    for t in range(clip.num_frames):
        shapes = clip.scene_at(t).shapes
        rendered = render_shapes(shapes, clip.background, clip.height, clip.width, base)
        frames.append(rendered.image)
        masks.append(rendered.visible)
    n = len(clip.objects)
    if not masks:
        return np.zeros((0, clip.height, clip.width, 3), np.uint8), np.zeros(
            (0, n, clip.height, clip.width), bool
        )
    return np.stack(frames), np.stack(masks)


# ---------------------------------------------------------------- motion expressions

PREDICATES: tuple[str, ...] = ("direction", "static", "enter", "leave")


def motion_matches(obj: MovingShape, predicate: dict[str, str]) -> bool:
    """True if the object does what the predicate says (see the module docstring)."""
    name = predicate["predicate"]
    if name == "direction":
        return obj.direction == predicate["value"]
    if name == "static":
        return obj.motion == "static"
    return obj.motion == name and obj.side == predicate["value"]


def motion_words(predicate: dict[str, str], plural: bool = False) -> str:
    """ "that moves to the right", "that enter from the top", ..."""
    name, value = predicate["predicate"], predicate.get("value")
    verb = {"direction": "move", "static": "stay", "enter": "enter", "leave": "leave"}[name]
    verb = verb if plural else verb + "s"
    if name == "direction":
        rest = f"to the {value}" if value in ("left", "right") else str(value)
    elif name == "static":
        rest = "still"
    elif name == "enter":
        rest = f"from the {value}"
    else:
        rest = _LEAVE_WORDS[str(value)]
    return f"that {verb} {rest}"


def resolve_motion(query: dict[str, Any], objects: Sequence[MovingShape]) -> tuple[int, ...]:
    """Ids of the objects a motion query refers to (a singular query must match one or none)."""
    desc = Desc(**query["desc"])
    found = [
        o.shape.id
        for o in objects
        if desc.matches(o.shape) and ("motion" not in query or motion_matches(o, query["motion"]))
    ]
    if query["form"] != "multi" and len(found) > 1:
        raise ValueError(f"singular motion query matches {len(found)} objects")
    return tuple(sorted(found))


def motion_text(query: dict[str, Any]) -> str:
    """The words of a motion query."""
    desc = Desc(**query["desc"])
    plural = query["form"] == "multi"
    head = f"all {desc.text(plural=True)}" if plural else f"the {desc.text()}"
    return f"{head} {motion_words(query['motion'], plural)}" if "motion" in query else head


def _predicates_of(obj: MovingShape) -> list[dict[str, str]]:
    if obj.motion == "static":
        return [{"predicate": "static"}]
    out = [{"predicate": "direction", "value": str(obj.direction)}]
    if obj.motion in ("enter", "leave"):
        out.append({"predicate": obj.motion, "value": str(obj.side)})
    return out


def generate_motion_expressions(
    rng: np.random.Generator,
    objects: Sequence[MovingShape],
    count: int,
    accept: Callable[[Expression], bool] | None = None,
    prefer_pair: float = 0.0,
    focus: Sequence[MovingShape] | None = None,
    tries: int = 12,
) -> list[Expression]:
    """Up to ``count`` distinct expressions: mostly singular motion ones ("the circle that
    moves to the right"), some multi-target ("all shapes that move up") and some by
    appearance alone ("the red circle").

    Args:
        rng: the source of every random choice.
        objects: the clip's objects.
        count: how many expressions to return (fewer if the clip does not allow them).
        accept: an extra filter (e.g. a split's held-out policy).
        prefer_pair: chance that a description names both colour and kind when it can.
        focus: the objects expressions are built around (default: all).
        tries: candidates built per expression before giving up on its type.

    Returns:
        Expressions of type "motion", "multi" or "attribute" whose targets are
        ``resolve_motion(query, objects)``.
    """
    focus = list(focus) if focus is not None else list(objects)
    out: list[Expression] = []
    seen: set[str] = set()
    for _ in range(count * 3):
        if len(out) >= count or not focus:
            break
        roll = rng.random()
        form = "multi" if roll < 0.2 else "attribute" if roll < 0.35 else "motion"
        for _ in range(tries):
            target = focus[int(rng.integers(len(focus)))]
            query = _motion_query(rng, target, objects, form, prefer_pair)
            if query is None:
                continue
            expression = Expression(motion_text(query), resolve_motion(query, objects), form, query)
            if expression.text in seen or (accept is not None and not accept(expression)):
                continue
            seen.add(expression.text)
            out.append(expression)
            break
    return out


def _motion_query(
    rng: np.random.Generator,
    target: MovingShape,
    objects: Sequence[MovingShape],
    form: str,
    prefer_pair: float,
) -> dict[str, Any] | None:
    def count(desc: Desc, predicate: dict[str, str] | None) -> int:
        return sum(
            desc.matches(o.shape) and (predicate is None or motion_matches(o, predicate))
            for o in objects
        )

    descs = [Desc.of(target.shape, names) for names in SUBSETS]
    if form == "attribute":
        unique = [d for d in descs if d.to_dict() and count(d, None) == 1]
        return (
            {"form": form, "desc": pick_desc(rng, unique, prefer_pair).to_dict()}
            if unique
            else None
        )
    options = _predicates_of(target)
    predicate = options[int(rng.integers(len(options)))]
    if form == "multi":
        many = [d for d in descs if count(d, predicate) >= 2]
        if not many:
            return None
        return {"form": form, "desc": pick_desc(rng, many).to_dict(), "motion": predicate}
    unique = [d for d in descs if count(d, predicate) == 1]
    needs_motion = [d for d in unique if count(d, None) >= 2]
    pool = needs_motion if needs_motion and rng.random() < 0.8 else unique
    if not pool:
        return None
    return {"form": form, "desc": pick_desc(rng, pool, prefer_pair).to_dict(), "motion": predicate}
