"""Stable colours: the same phrase or track gets the same colour in every run and process.

Colours come from a fixed palette of distinct RGB colours. A phrase picks its slot from a
BLAKE2 hash of its normalised text (case-folded, whitespace collapsed), never from Python's
``hash()``, which is salted per process. A track picks its slot from its id, so consecutive
tracks get different colours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable

RGB = tuple[int, int, int]

#: Distinct colours that stay visible on photographs (after Sasha Trubetskoy's list of 20
#: simple distinct colours, without white, black, grey and the palest tints).
PALETTE: tuple[RGB, ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (255, 225, 25),  # yellow
    (0, 130, 200),  # blue
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (210, 245, 60),  # lime
    (250, 190, 212),  # pink
    (0, 128, 128),  # teal
    (220, 190, 255),  # lavender
    (170, 110, 40),  # brown
    (128, 0, 0),  # maroon
    (170, 255, 195),  # mint
    (128, 128, 0),  # olive
    (255, 215, 180),  # apricot
    (0, 0, 128),  # navy
)


def normalize_phrase(phrase: str) -> str:
    """The form of a phrase that decides its colour: case-folded, whitespace collapsed."""
    return " ".join(phrase.split()).casefold()


def _slot(key: str) -> int:
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % len(PALETTE)


def phrase_color(phrase: str) -> RGB:
    """The palette colour of a phrase, the same in every process.

    Args:
        phrase: any text; ``"The dog"`` and ``" the  dog"`` share a colour.

    Returns:
        An (r, g, b) tuple of ints in [0, 255].
    """
    return PALETTE[_slot(normalize_phrase(phrase))]


def track_color(track_id: int) -> RGB:
    """The palette colour of a track id; ids that differ by less than len(PALETTE) differ."""
    return PALETTE[int(track_id) % len(PALETTE)]


def distinct_colors(keys: Iterable[Hashable]) -> dict[Hashable, RGB]:
    """Colours for a set of keys, all different while there are no more keys than colours.

    Strings start from their ``phrase_color`` slot (strings equal after normalisation share
    one colour), ints from their ``track_color`` slot, anything else from the hash of
    ``str(key)``. Where two keys want the same slot, they are served in a fixed order and
    the later one moves to the next free slot, so the answer depends only on the set of
    keys, never on their order.

    Args:
        keys: phrases, track ids or other hashable labels; duplicates are ignored.

    Returns:
        key -> (r, g, b), in order of first appearance of each key.
    """
    unique = list(dict.fromkeys(keys))
    canonical = {key: _canonical(key) for key in unique}
    taken: set[int] = set()
    slots: dict[tuple[str, str], int] = {}
    for wanted, name in sorted({(_wanted_slot(key), canonical[key]) for key in unique}):
        slot = wanted
        if len(taken) < len(PALETTE):
            while slot in taken:
                slot = (slot + 1) % len(PALETTE)
        taken.add(slot)
        slots[name] = slot
    return {key: PALETTE[slots[canonical[key]]] for key in unique}


def _canonical(key: Hashable) -> tuple[str, str]:
    if isinstance(key, str):
        return ("phrase", normalize_phrase(key))
    if isinstance(key, int) and not isinstance(key, bool):
        return ("track", f"{key:020d}" if key >= 0 else str(key))
    return (type(key).__name__, str(key))


def _wanted_slot(key: Hashable) -> int:
    if isinstance(key, str):
        return _slot(normalize_phrase(key))
    if isinstance(key, int) and not isinstance(key, bool):
        return key % len(PALETTE)
    return _slot(str(key))


def davis_palette() -> list[int]:
    """The 256-colour palette of DAVIS and PASCAL VOC label PNGs, as 768 ints (r, g, b, ...).

    Label k gets the colour whose bits are k's bits spread over r, g and b (1: dark red).
    """
    palette = []
    for label in range(256):
        r = g = b = 0
        value = label
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette.extend((r, g, b))
    return palette
