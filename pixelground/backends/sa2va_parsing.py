"""Pure parsers for Sa2VA / GLaMM-style grounded answers (no torch).

Such models answer with markup: ``"<p> A man </p> [SEG] stands next to <p> a car </p>
[SEG]."``. Each ``[SEG]`` token yields one mask, in order (the model's
``prediction_masks[i]`` belongs to the i-th ``[SEG]``). A phrase owns the ``[SEG]`` that
directly follows its ``</p>`` (only whitespace between). A ``[SEG]`` after no phrase
(``"Sure, [SEG]."``, the usual referring-segmentation answer) is *unowned*; a phrase with
no ``[SEG]`` after it has no mask.

The clean text drops the markup and chat tokens (``<|im_end|>``, ``</s>``, ...),
collapses whitespace and removes a space left before punctuation; phrase spans are
[start, end) offsets into that clean text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelground.core.masks import resize_mask

SEG_TOKEN = "[SEG]"
_MARKUP = re.compile(r"<p>(.*?)</p>|\[SEG\]", re.DOTALL)
_CHAT_TOKENS = re.compile(r"<\|[^|<>]{1,40}\|>|</?s>|<pad>|<unk>|<image>|<IMG_CONTEXT>")
_STRAY = re.compile(r"</?p>")
_SPACES = re.compile(r"\s+")
_PUNCTUATION = ".,;:!?)]}%"
_SENTENCE_END = (".", "!", "?")
_SOFT_STOPS = (",", ";", ":")


@dataclass(frozen=True)
class SegPhrase:
    """A marked phrase of a grounded answer.

    Attributes:
        text: the phrase as it appears in the clean text.
        start: start offset in the clean text.
        end: end offset (exclusive) in the clean text.
        seg_index: index of the ``[SEG]`` (and so of the mask) this phrase owns, or None.
    """

    text: str
    start: int
    end: int
    seg_index: int | None = None


@dataclass(frozen=True)
class SegAnswer:
    """A parsed grounded answer.

    Attributes:
        text: the answer without markup.
        phrases: marked phrases in order, with spans into ``text``.
        seg_count: number of ``[SEG]`` tokens in the answer.
        unowned: ``[SEG]`` indices no phrase owns, with the clean-text offset where each stood.
    """

    text: str
    phrases: list[SegPhrase] = field(default_factory=list)
    seg_count: int = 0
    unowned: list[tuple[int, int]] = field(default_factory=list)


def strip_chat_tokens(raw: str) -> str:
    """Remove chat-template tokens and a leading ``ASSISTANT:`` from a raw model answer."""
    text = _CHAT_TOKENS.sub("", raw)
    return re.split(r"ASSISTANT:\s*", text)[-1]


class _CleanText:
    """Builds the clean text piece by piece, collapsing whitespace as it goes."""

    def __init__(self) -> None:
        self.text = ""
        self.protected = 0  # the end of the last phrase: never cut before it
        self.marks: list[list[int]] = []  # [seg index, offset] of unowned [SEG]s

    def mark(self, seg_index: int) -> None:
        self.marks.append([seg_index, len(self.text.rstrip())])

    def _cut(self) -> None:
        self.text = self.text[:-1]
        for mark in self.marks:
            mark[1] = min(mark[1], len(self.text))

    def add(self, piece: str) -> None:
        piece = _SPACES.sub(" ", piece)
        if not self.text:
            piece = piece.lstrip()
        elif self.text.endswith(" ") and piece.startswith(" "):
            piece = piece[1:]
        if piece[:1] and piece[0] in _PUNCTUATION and self.text.endswith(" "):
            self._cut()
        # "Sure, [SEG]." -> "Sure." rather than "Sure,."
        if piece[:1] in _SENTENCE_END and self.text[-1:] in _SOFT_STOPS:
            if len(self.text) - 1 >= self.protected:
                self._cut()
        self.text += piece

    def add_phrase(self, phrase: str) -> tuple[int, int]:
        """Append a phrase (a space first if it had one and the text needs it): its span."""
        if phrase[:1].isspace() and self.text and not self.text.endswith(" "):
            self.text += " "
        phrase = _SPACES.sub(" ", phrase).strip()
        start = len(self.text)
        self.text += phrase
        self.protected = len(self.text)
        return start, len(self.text)


def parse_seg_answer(raw: str) -> SegAnswer:
    """Parse ``<p>phrase</p> [SEG]`` markup into clean text, phrases, spans and [SEG] owners.

    Args:
        raw: the model's answer, chat tokens and markup included.

    Returns:
        SegAnswer. Never raises: unmatched ``<p>`` / ``</p>`` are dropped, empty phrases
        skipped (a [SEG] after one stays unowned).
    """
    text = strip_chat_tokens(raw)
    out = _CleanText()
    phrases: list[SegPhrase] = []
    seg_count = 0
    waiting: int | None = None  # index in phrases of a phrase that may still own a [SEG]
    position = 0
    for match in _MARKUP.finditer(text):
        between = _STRAY.sub("", text[position : match.start()])
        if between.strip():
            waiting = None
        out.add(between)
        position = match.end()
        if match.group(0) == SEG_TOKEN:
            if waiting is not None:
                phrases[waiting] = _own(phrases[waiting], seg_count)
            else:
                out.mark(seg_count)
            seg_count += 1
            waiting = None
            continue
        inner = _STRAY.sub("", match.group(1))
        if not inner.strip():
            waiting = None
            continue
        start, end = out.add_phrase(inner)
        phrases.append(SegPhrase(out.text[start:end], start, end))
        waiting = len(phrases) - 1
        if match.group(1)[-1:].isspace():
            out.add(" ")
    out.add(_STRAY.sub("", text[position:]))
    clean = out.text.rstrip()
    unowned = [(index, min(at, len(clean))) for index, at in out.marks]
    return SegAnswer(clean, phrases, seg_count, unowned)


def _own(phrase: SegPhrase, seg_index: int) -> SegPhrase:
    return SegPhrase(phrase.text, phrase.start, phrase.end, seg_index)


def as_mask(mask: Any, height: int, width: int) -> np.ndarray:
    """One model mask as a bool (height, width) array.

    Accepts numpy or torch, (1, H, W) (Sa2VA gives one plane per frame: the first is
    taken) or (H, W), bool/int (nonzero = inside) or float probabilities (> 0.5 = inside);
    a different size is resized (nearest). None gives an empty mask.
    """
    if mask is None:
        return np.zeros((height, width), dtype=bool)
    if hasattr(mask, "detach"):
        mask = mask.detach().float().cpu().numpy()
    array = np.asarray(mask)
    while array.ndim > 2:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"a mask must be (H, W) or (1, H, W), got shape {np.shape(mask)}")
    binary = array > 0.5 if np.issubdtype(array.dtype, np.floating) else array.astype(bool)
    if binary.shape != (height, width):
        binary = resize_mask(binary, height, width)
    return binary


def masks_per_seg(
    masks: Sequence[Any] | None, seg_count: int, height: int, width: int
) -> list[np.ndarray]:
    """One (H, W) bool mask per [SEG]: missing ones empty, extra ones dropped.

    Args:
        masks: the model's ``prediction_masks`` (any length, may be None).
        seg_count: number of [SEG] tokens in the answer.
        height: image height.
        width: image width.
    """
    given = list(masks) if masks is not None else []
    return [as_mask(given[i] if i < len(given) else None, height, width) for i in range(seg_count)]


def extra_masks(masks: Sequence[Any] | None, seg_count: int) -> int:
    """How many masks the model returned beyond the [SEG] tokens of its text."""
    return max(len(masks) - seg_count, 0) if masks is not None else 0
