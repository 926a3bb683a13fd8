"""Pure parsers for Florence-2 output strings (no torch).

Florence-2 writes locations as tokens ``<loc_0>`` .. ``<loc_999>``: the image width and
height are each cut into 1000 equal bins, and a bin is read back as its centre,
``(bin + 0.5) * size / 1000``, exactly as transformers' ``Florence2PostProcessor.dequantize``
does (we keep the float instead of truncating it to an int). A coordinate is quantised to
``floor(coord / (size / 1000))`` clamped to [0, 999], as its ``quantize`` does.

Output shapes the model writes, by task:

* boxes: four location tokens ``x0 y0 x1 y1`` per box, after a phrase
  (``"a cat<loc_1><loc_2><loc_3><loc_4>a dog<loc_..>x4"``; several boxes in a row belong
  to the same phrase);
* quad boxes (OCR with regions): eight tokens ``x0 y0 .. x3 y3`` after each text;
* polygons: runs of ``x y`` token pairs, polygons of one object separated by ``<sep>``,
  objects optionally wrapped in ``<poly>`` .. ``</poly>``, optionally after a label.

Every parser here takes the decoded text with special tokens kept and never raises on
malformed text: what cannot be read is dropped (a trailing partial box, an odd
coordinate, a polygon with fewer than three points).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

NUM_BINS = 1000
BOX_TOKENS = 4
QUAD_TOKENS = 8

#: Tokens the tokenizer adds around a generation that carry no content.
SPECIAL_TOKENS = ("<s>", "</s>", "<pad>", "<unk>", "<image>")

_TOKEN = re.compile(r"<loc_(\d+)>|<(/?[A-Za-z_][A-Za-z0-9_\-]*)>")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Piece:
    """One lexical piece of a Florence-2 output.

    Attributes:
        kind: ``"text"``, ``"loc"`` or ``"tag"`` (any other ``<...>`` markup token).
        value: the text, the bin (as a string of digits) or the tag with its brackets.
        loc_index: for ``"loc"`` pieces, the ordinal of this token among all location
            tokens of the output (0-based); -1 otherwise.
    """

    kind: str
    value: str
    loc_index: int = -1


@dataclass(frozen=True)
class ParsedBox:
    """A dequantised box (or quad) and the ordinal of its first location token.

    Attributes:
        coords: xyxy pixels for boxes, (x0, y0, .., x3, y3) for quads.
        loc_index: ordinal of its first ``<loc_>`` token in the output, so scores
            computed per generated location token can be attached to it.
    """

    coords: tuple[float, ...]
    loc_index: int


@dataclass(frozen=True)
class ParsedPhrase:
    """A phrase and the boxes the model gave it, in output order."""

    phrase: str
    boxes: list[ParsedBox] = field(default_factory=list)


@dataclass(frozen=True)
class ParsedPolygons:
    """One object: its label (may be empty) and its polygons, each flat [x0, y0, x1, y1, ..]."""

    label: str
    polygons: list[list[float]] = field(default_factory=list)


def clamp_bin(value: int) -> int:
    """A bin index clamped to [0, NUM_BINS - 1]."""
    return min(max(int(value), 0), NUM_BINS - 1)


def dequantize(bin_index: int, size: float) -> float:
    """Centre of a location bin in pixels: ``(bin + 0.5) * size / 1000``."""
    return (clamp_bin(bin_index) + 0.5) * float(size) / NUM_BINS


def quantize(coord: float, size: float) -> int:
    """The location bin of a pixel coordinate: ``floor(coord / (size / 1000))`` in [0, 999]."""
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return clamp_bin(math.floor(float(coord) / (float(size) / NUM_BINS)))


def box_to_location_tokens(box: Sequence[float], width: int, height: int) -> str:
    """An xyxy pixel box as the four tokens Florence-2 region prompts expect.

    Args:
        box: (x0, y0, x1, y1) in pixels.
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        e.g. ``"<loc_52><loc_90><loc_480><loc_700>"``.
    """
    if len(box) != 4:
        raise ValueError(f"a box has 4 numbers (x0, y0, x1, y1), got {len(box)}")
    x0, y0, x1, y1 = (float(v) for v in box)
    bins = (quantize(x0, width), quantize(y0, height), quantize(x1, width), quantize(y1, height))
    return "".join(f"<loc_{b}>" for b in bins)


def strip_special(text: str) -> str:
    """Remove the sequence tokens (``<s>``, ``</s>``, ``<pad>``, ...) from a decoded output."""
    for token in SPECIAL_TOKENS:
        text = text.replace(token, "")
    return text


def lex(text: str) -> list[Piece]:
    """Split an output into text, location and tag pieces (special tokens removed).

    A ``<`` that does not start a well-formed token stays part of the text.
    """
    text = strip_special(text)
    pieces: list[Piece] = []
    position = 0
    loc_count = 0
    for match in _TOKEN.finditer(text):
        if match.start() > position:
            pieces.append(Piece("text", text[position : match.start()]))
        if match.group(1) is not None:
            pieces.append(Piece("loc", match.group(1), loc_count))
            loc_count += 1
        else:
            pieces.append(Piece("tag", match.group(0)))
        position = match.end()
    if position < len(text):
        pieces.append(Piece("text", text[position:]))
    return pieces


def location_bins(text: str) -> list[int]:
    """Every location bin in the output, in order (values above 999 are clamped)."""
    return [clamp_bin(int(p.value)) for p in lex(text) if p.kind == "loc"]


def clean_text(text: str) -> str:
    """The words of an output: special, location and markup tokens removed, spaces collapsed."""
    words = "".join(p.value if p.kind == "text" else " " for p in lex(text))
    return _SPACES.sub(" ", words).strip()


def _dequantize_group(bins: Sequence[int], width: int, height: int) -> tuple[float, ...]:
    return tuple(dequantize(b, width if i % 2 == 0 else height) for i, b in enumerate(bins))


def _loc_runs(pieces: Sequence[Piece]) -> Iterable[tuple[str, list[Piece]]]:
    """Yield (text before the run, run of consecutive location pieces); tags end a run."""
    words: list[str] = []
    run: list[Piece] = []
    for piece in pieces:
        if piece.kind == "loc":
            run.append(piece)
            continue
        if run:
            yield "".join(words), run
            words, run = [], []
        if piece.kind == "text":
            words.append(piece.value)
    if run:
        yield "".join(words), run


def parse_phrase_boxes(
    text: str,
    width: int,
    height: int,
    group: int = BOX_TOKENS,
    allow_empty: bool = False,
    banned: Iterable[str] = (),
) -> list[ParsedPhrase]:
    """Phrases with their boxes: ``"a cat<loc>x4a dog<loc>x4<loc>x4"`` -> 2 phrases, 1 + 2 boxes.

    Args:
        text: decoded output, special tokens kept.
        width: image width in pixels.
        height: image height in pixels.
        group: location tokens per box: 4 for boxes, 8 for quad boxes.
        allow_empty: keep boxes that follow no text (phrase ``""``), as region proposals do.
        banned: phrases to drop (compared case-insensitively), e.g. pronouns Florence-2 grounds.

    Returns:
        ParsedPhrase list in output order; a run of location tokens that is not a multiple
        of ``group`` loses its trailing partial box.
    """
    banned_set = {b.strip().lower() for b in banned}
    phrases: list[ParsedPhrase] = []
    for words, run in _loc_runs(lex(text)):
        phrase = _SPACES.sub(" ", words).strip()
        if (not phrase and not allow_empty) or phrase.lower() in banned_set:
            continue
        boxes = [
            ParsedBox(
                _dequantize_group([int(p.value) for p in run[i : i + group]], width, height),
                run[i].loc_index,
            )
            for i in range(0, len(run) - group + 1, group)
        ]
        if boxes:
            phrases.append(ParsedPhrase(phrase, boxes))
    return phrases


def parse_boxes(text: str, width: int, height: int) -> list[tuple[float, float, float, float]]:
    """Every xyxy box in the output (phrases ignored), in order."""
    found = parse_phrase_boxes(text, width, height, allow_empty=True)
    return [tuple(b.coords) for p in found for b in p.boxes]  # type: ignore[misc]


def parse_quad_boxes(text: str, width: int, height: int) -> list[tuple[str, tuple[float, ...]]]:
    """OCR-with-region output: (text, (x0, y0, x1, y1, x2, y2, x3, y3)) per line."""
    found = parse_phrase_boxes(text, width, height, group=QUAD_TOKENS, allow_empty=True)
    return [(p.phrase, b.coords) for p in found for b in p.boxes]


class _PolygonBuilder:
    """Accumulates objects -> polygons -> coordinates while walking the pieces."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.objects: list[ParsedPolygons] = []
        self.label_words: list[str] = []
        self.label = ""
        self.polygons: list[list[float]] = []
        self.bins: list[int] = []
        self.label_used = False  # an object was emitted with the current label

    def end_polygon(self) -> None:
        bins = self.bins[: len(self.bins) - len(self.bins) % 2]
        if len(bins) >= 6:  # three points enclose an area; fewer cannot be drawn
            self.polygons.append(list(_dequantize_group(bins, self.width, self.height)))
        self.bins = []

    def end_object(self) -> None:
        self.end_polygon()
        if self.polygons:
            self.objects.append(ParsedPolygons(self.label, self.polygons))
            self.label_used = True
        self.polygons = []

    def add_text(self, words: str) -> None:
        self.end_object()
        if self.label_used:
            self.label_words, self.label_used = [], False
        self.label_words.append(words)
        self.label = _SPACES.sub(" ", "".join(self.label_words)).strip()


def parse_polygons(text: str, width: int, height: int) -> list[ParsedPolygons]:
    """Objects with polygons, from referring-expression / region-to-segmentation outputs.

    ``<sep>`` separates polygons of one object; ``<poly>`` .. ``</poly>`` wraps one object
    (several wrapped objects after one label share that label); text before the
    coordinates is the label.

    Args:
        text: decoded output, special tokens kept.
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        ParsedPolygons list; each polygon is flat ``[x0, y0, x1, y1, ...]`` in pixels
        with at least three points.
    """
    builder = _PolygonBuilder(width, height)
    for piece in lex(text):
        if piece.kind == "loc":
            builder.bins.append(int(piece.value))
        elif piece.kind == "text":
            if piece.value.strip():
                builder.add_text(piece.value)
        elif piece.value == "<sep>":
            builder.end_polygon()
        elif piece.value in ("<poly>", "</poly>"):
            builder.end_object()
    builder.end_object()
    return builder.objects
