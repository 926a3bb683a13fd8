"""Grounded captions (caption text with phrase spans) and region captions of a scene.

A grounded caption names every shape once, left to right:

    "The image shows a small red circle, a large striped blue square and a dotted green star
     on a plain dark background."

Each shape's phrase ("a small red circle") has a [start, end) span into the caption. The
same pieces give the model's training text with ``<p>...</p> [SEG]`` markup, so the plain
caption is exactly the markup with tags and [SEG] markers removed.

A region caption describes one shape, where it is and what overlaps it:

    "a small striped red circle in the top left, partly covered by a blue square."
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pixelground.synth.scene import Background, Scene, Shape

SEG = "[SEG]"
CAPTION_PREFIX = "The image shows "


@dataclass(frozen=True)
class Caption:
    """A grounded caption.

    Attributes:
        text: the caption without markup.
        phrases: (phrase, (start, end), shape id) for each shape, in caption order; spans
            index ``text``.
        markup: the caption with ``<p>phrase</p> [SEG]`` for each phrase (training text).
    """

    text: str
    phrases: tuple[tuple[str, tuple[int, int], int], ...]
    markup: str


def shape_phrase(shape: Shape, article: str = "a") -> str:
    """ "a small striped red circle" (solid texture is not named)."""
    texture = "" if shape.texture == "solid" else f"{shape.texture} "
    return f"{article} {shape.size} {texture}{shape.colour} {shape.kind}"


def background_phrase(background: Background) -> str:
    """ "a plain dark background", "a light gradient background", "a dark noisy background"."""
    if background.kind == "plain":
        return f"a plain {background.tone} background"
    kind = {"gradient": "gradient", "noise": "noisy"}[background.kind]
    return f"a {background.tone} {kind} background"


def caption_order(shapes: Sequence[Shape]) -> list[Shape]:
    """Shapes left to right by centre x (then top to bottom, then id)."""
    return sorted(shapes, key=lambda s: (round(s.cx, 3), round(s.cy, 3), s.id))


def grounded_caption(scene: Scene) -> Caption:
    """The grounded caption of a scene (see the module docstring)."""
    ordered = caption_order(scene.shapes)
    text, markup = CAPTION_PREFIX, CAPTION_PREFIX
    phrases = []
    for i, shape in enumerate(ordered):
        if i:
            joiner = " and " if i == len(ordered) - 1 else ", "
            text += joiner
            markup += joiner
        phrase = shape_phrase(shape)
        phrases.append((phrase, (len(text), len(text) + len(phrase)), shape.id))
        text += phrase
        markup += f"<p>{phrase}</p> {SEG}"
    tail = f" on {background_phrase(scene.background)}."
    return Caption(text=text + tail, phrases=tuple(phrases), markup=markup + tail)


def position_phrase(shape: Shape, width: int, height: int) -> str:
    """Where the centre is on a 3x3 grid: "in the top left", "in the centre", "on the right"."""
    col = min(int(3 * shape.cx / width), 2)
    row = min(int(3 * shape.cy / height), 2)
    vertical = ("top", "", "bottom")[row]
    horizontal = ("left", "", "right")[col]
    if not vertical and not horizontal:
        return "in the centre"
    if vertical and horizontal:
        return f"in the {vertical} {horizontal}"
    return f"at the {vertical or horizontal}"


def region_caption(scene: Scene, shape_id: int, full: np.ndarray, visible: np.ndarray) -> str:
    """Caption of one shape: attributes, position, and the shapes it covers or is covered by.

    Args:
        scene: the scene.
        shape_id: the described shape.
        full: (N, H, W) full masks in the scene's drawing order.
        visible: (N, H, W) visible masks in the same order.
    """
    index = [s.id for s in scene.shapes].index(shape_id)
    shape = scene.shapes[index]
    words = f"{shape_phrase(shape)} {position_phrase(shape, scene.width, scene.height)}"
    hidden = full[index] & ~visible[index]
    covering = [(int((hidden & full[j]).sum()), j) for j in range(index + 1, len(scene.shapes))]
    covering = [c for c in covering if c[0] > 0]
    if covering:
        other = scene.shapes[max(covering)[1]]
        words += f", partly covered by a {other.colour} {other.kind}"
    covered = [(int((full[index] & full[j] & ~visible[j]).sum()), j) for j in range(index)]
    covered = [c for c in covered if c[0] > 0]
    if covered:
        other = scene.shapes[max(covered)[1]]
        words += f", in front of a {other.colour} {other.kind}"
    return words + "."
