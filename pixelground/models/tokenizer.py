"""Tokenizer, conversation template and grounded-text decoding for the [SEG]-token model.

The default tokenizer is a word-level ``tokenizers`` model trained offline on the training
texts (no downloads), wrapped in a transformers fast tokenizer and saved with the checkpoint.
A pretrained tokenizer (hub id / dir) works too: the markup tokens are added to it.

Sequence layout (one image, any number of turns)::

    <s> <image>*N <user> user text <assistant> answer </s> <user> ... <assistant> ... </s>

Only answer tokens and their closing ``</s>`` carry labels; everything else is -100.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelground.backends.base import GroundedText, Phrase
from pixelground.core.errors import InputError
from pixelground.models.config import (
    ASSISTANT_TOKEN,
    BOS_TOKEN,
    EOS_TOKEN,
    IMAGE_TOKEN,
    MARKUP_TOKENS,
    PAD_TOKEN,
    PHRASE_CLOSE,
    PHRASE_OPEN,
    SEG_TOKEN,
    UNK_TOKEN,
    USER_TOKEN,
)

IGNORE_INDEX = -100
_NO_SPACE_BEFORE = re.compile(r"^[.,;:!?)\]'%]")


def build_word_tokenizer(texts: Iterable[str], lowercase: bool = True) -> Any:
    """Train a word-level tokenizer on ``texts`` (offline) and wrap it for transformers.

    Args:
        texts: every user and assistant text of the training data.
        lowercase: lower-case text before splitting.

    Returns:
        A transformers fast tokenizer with the markup tokens as special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, *MARKUP_TOKENS]
    trainer = trainers.WordLevelTrainer(special_tokens=specials, min_frequency=1)
    core = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    if lowercase:
        core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    core.train_from_iterator((_strip_markup(t) for t in texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        additional_special_tokens=list(MARKUP_TOKENS),
    )


def add_markup_tokens(tokenizer: Any) -> int:
    """Add the markup (and missing pad/bos/eos) tokens to a pretrained tokenizer.

    Returns:
        How many tokens were added (resize the LM's embeddings by as many).
    """
    added = 0
    for name, token in (
        ("pad_token", PAD_TOKEN),
        ("bos_token", BOS_TOKEN),
        ("eos_token", EOS_TOKEN),
    ):
        if getattr(tokenizer, name, None) is None:
            added += tokenizer.add_special_tokens({name: token})
    missing = [t for t in MARKUP_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        added += tokenizer.add_special_tokens({"additional_special_tokens": missing})
    return added


def _strip_markup(text: str) -> str:
    for token in MARKUP_TOKENS:
        text = text.replace(token, " ")
    return text


@dataclass
class TokenIds:
    """Ids of the special tokens the model needs."""

    pad: int
    bos: int
    eos: int
    image: int
    user: int
    assistant: int
    seg: int
    p_open: int
    p_close: int
    region: int

    @classmethod
    def of(cls, tokenizer: Any) -> TokenIds:
        """Look the ids up in ``tokenizer``."""
        from pixelground.models.config import REGION_TOKEN

        def get(token: str) -> int:
            found = tokenizer.convert_tokens_to_ids(token)
            if found is None or found == tokenizer.unk_token_id and token != UNK_TOKEN:
                raise InputError(f"tokenizer lacks the token {token!r}; call add_markup_tokens")
            return int(found)

        return cls(
            pad=int(tokenizer.pad_token_id),
            bos=int(tokenizer.bos_token_id),
            eos=int(tokenizer.eos_token_id),
            image=get(IMAGE_TOKEN),
            user=get(USER_TOKEN),
            assistant=get(ASSISTANT_TOKEN),
            seg=get(SEG_TOKEN),
            p_open=get(PHRASE_OPEN),
            p_close=get(PHRASE_CLOSE),
            region=get(REGION_TOKEN),
        )


def _text_ids(tokenizer: Any, text: str) -> list[int]:
    text = text.replace(IMAGE_TOKEN, " ").strip()
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def encode_conversation(
    tokenizer: Any, conversation: Sequence[dict[str, str]], num_image_tokens: int
) -> tuple[list[int], list[int]]:
    """Token ids and labels of a conversation (labels -100 outside assistant answers).

    Args:
        tokenizer: the model's tokenizer.
        conversation: turns ``{"role": "user"|"assistant", "content": str}``.
        num_image_tokens: image placeholders inserted after ``<s>``.

    Returns:
        ``(input_ids, labels)``, equal-length lists.
    """
    ids = TokenIds.of(tokenizer)
    input_ids = [ids.bos] + [ids.image] * num_image_tokens
    labels = [IGNORE_INDEX] * len(input_ids)
    for turn in conversation:
        text = _text_ids(tokenizer, turn["content"])
        if turn["role"] == "user":
            piece = [ids.user, *text]
            input_ids += piece
            labels += [IGNORE_INDEX] * len(piece)
        else:
            input_ids += [ids.assistant, *text, ids.eos]
            labels += [IGNORE_INDEX, *text, ids.eos]
    return input_ids, labels


def prompt_ids(tokenizer: Any, prompt: str, num_image_tokens: int) -> list[int]:
    """Ids of a single-turn prompt ending with ``<assistant>`` (generation starts after it)."""
    ids = TokenIds.of(tokenizer)
    return [
        ids.bos,
        *[ids.image] * num_image_tokens,
        ids.user,
        *_text_ids(tokenizer, prompt),
        ids.assistant,
    ]


def count_unknown(tokenizer: Any, texts: Iterable[str]) -> tuple[int, int]:
    """(unknown word tokens, all word tokens) of ``texts`` under ``tokenizer``."""
    unk = tokenizer.unk_token_id
    total = unknown = 0
    for text in texts:
        found = _text_ids(tokenizer, text)
        total += len(found)
        unknown += sum(1 for i in found if i == unk)
    return unknown, total


class _TextBuilder:
    """Joins decoded pieces with single spaces (none before punctuation), tracking offsets."""

    def __init__(self) -> None:
        self.text = ""

    def add(self, piece: str) -> int:
        piece = piece.strip()
        if not piece:
            return len(self.text)
        if self.text and not _NO_SPACE_BEFORE.match(piece):
            self.text += " "
        start = len(self.text)
        self.text += piece
        return start


def grounded_text(
    tokenizer: Any, generated: Sequence[int], masks: Sequence[np.ndarray], shape: tuple[int, int]
) -> GroundedText:
    """Turn generated ids and the masks of their [SEG] tokens into a GroundedText.

    A [SEG] right after ``<p>phrase</p>`` grounds that phrase; further [SEG]s repeat the
    phrase (a plural phrase gets one entry per mask); a [SEG] without a phrase grounds an
    empty span at its position. A phrase without [SEG] gets an empty mask.

    Args:
        tokenizer: the model's tokenizer.
        generated: generated ids, without the closing ``</s>``.
        masks: one bool mask per [SEG] in ``generated``, in order: (H, W) for an image,
            (T, H, W) for a video.
        shape: the shape of one mask, for phrases without [SEG].

    Returns:
        The answer with markup removed, its phrases with [start, end) spans, one mask each.
    """
    ids = TokenIds.of(tokenizer)
    out = _TextBuilder()
    phrases: list[Phrase] = []
    phrase_masks: list[np.ndarray | None] = []
    buffer: list[int] = []
    open_at: int | None = None
    last_closed: int | None = None  # index into phrases of a phrase a [SEG] may ground
    seg_index = 0

    def flush() -> None:
        nonlocal open_at
        if buffer:
            start = out.add(tokenizer.decode(buffer, skip_special_tokens=True))
            open_at = start if open_at == -1 else open_at
            buffer.clear()

    for token in generated:
        if token not in (ids.p_open, ids.p_close, ids.seg):
            if token not in (ids.pad, ids.eos, ids.bos, ids.image, ids.user, ids.assistant):
                buffer.append(token)
            continue
        flush()
        if token == ids.p_open:
            open_at, last_closed = -1, None
        elif token == ids.p_close and open_at is not None and open_at >= 0:
            phrases.append(Phrase(out.text[open_at:], open_at, len(out.text)))
            phrase_masks.append(None)
            open_at, last_closed = None, len(phrases) - 1
        elif token == ids.seg:
            mask = masks[seg_index] if seg_index < len(masks) else np.zeros(shape, bool)
            seg_index += 1
            if last_closed is not None and phrase_masks[last_closed] is None:
                phrase_masks[last_closed] = mask
            elif last_closed is not None:
                base = phrases[last_closed]
                base.plural = True
                phrases.append(Phrase(base.text, base.start, base.end, plural=True))
                phrase_masks.append(mask)
            else:
                phrases.append(Phrase("", len(out.text), len(out.text)))
                phrase_masks.append(mask)
    flush()
    filled = [m if m is not None else np.zeros(shape, bool) for m in phrase_masks]
    raw = tokenizer.decode([t for t in generated if t not in (ids.pad, ids.eos)])
    return GroundedText(text=out.text, phrases=phrases, masks=filled, raw=raw)
