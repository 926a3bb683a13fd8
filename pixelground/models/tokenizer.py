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
    REGION_TOKEN,
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
    tokenizer: Any,
    conversation: Sequence[dict[str, str]],
    num_image_tokens: int,
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
        asking = turn["role"] == "user"
        piece = [ids.user, *text] if asking else []
        input_ids += piece
        labels += [IGNORE_INDEX] * len(piece)
        if not asking:
            input_ids += [ids.assistant, *text, ids.eos]
            labels += [IGNORE_INDEX, *text, ids.eos]
    return input_ids, labels


def prompt_ids(tokenizer: Any, prompt: str, num_image_tokens: int) -> list[int]:
    """Ids of a single-turn prompt ending with ``<assistant>`` (generation starts after it),
    in the layout :func:`encode_conversation` trains."""
    question = [{"role": "user", "content": prompt}]
    input_ids, _ = encode_conversation(tokenizer, question, num_image_tokens)
    return [*input_ids, TokenIds.of(tokenizer).assistant]


_PHRASE = re.compile(re.escape(PHRASE_OPEN) + r"(.*?)" + re.escape(PHRASE_CLOSE), re.DOTALL)


def phrase_tokens(tokenizer: Any, texts: Iterable[str]) -> list[str]:
    """The tokens inside the grounded phrases (``<p> ... </p>``) of ``texts``, sorted: the
    words the phrase-word heads are trained on."""
    found: set[int] = set()
    for text in texts:
        for phrase in _PHRASE.findall(text):
            found.update(_text_ids(tokenizer, _strip_markup(phrase)))
    found.discard(tokenizer.unk_token_id)
    return sorted(tokenizer.convert_ids_to_tokens(sorted(found)))


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


class _GroundedBuilder:
    """Walks generated ids, building text, phrase spans and the phrase each [SEG] grounds."""

    def __init__(self, tokenizer: Any, masks: Sequence[np.ndarray], shape: tuple[int, ...]):
        self.tokenizer = tokenizer
        self.ids = TokenIds.of(tokenizer)
        self.masks, self.shape = list(masks), shape
        self.out = _TextBuilder()
        self.phrases: list[Phrase] = []
        self.phrase_masks: list[np.ndarray | None] = []
        self.buffer: list[int] = []
        self.open_at: int | None = None  # -1: a phrase opened, its text not seen yet
        self.last_closed: int | None = None  # the phrase a following [SEG] grounds
        self.seg_index = 0

    def flush(self) -> None:
        if not self.buffer:
            return
        start = self.out.add(self.tokenizer.decode(self.buffer, skip_special_tokens=True))
        self.buffer.clear()
        if self.open_at == -1:
            self.open_at = start
        elif self.last_closed is not None and self.phrase_masks[self.last_closed] is not None:
            self.last_closed = None  # text after a grounded phrase ends its [SEG] run

    def seg(self) -> None:
        if self.seg_index < len(self.masks):
            mask = self.masks[self.seg_index]
        else:
            mask = np.zeros(self.shape, bool)
        self.seg_index += 1
        end = len(self.out.text)
        if self.last_closed is None:
            self.phrases.append(Phrase("", end, end))
        elif self.phrase_masks[self.last_closed] is None:
            self.phrase_masks[self.last_closed] = mask
            return
        else:
            base = self.phrases[self.last_closed]
            base.plural = True
            self.phrases.append(Phrase(base.text, base.start, base.end, plural=True))
        self.phrase_masks.append(mask)

    def feed(self, token: int) -> None:
        ids = self.ids
        if token not in (ids.p_open, ids.p_close, ids.seg):
            if token not in (ids.pad, ids.eos, ids.bos, ids.image, ids.user, ids.assistant):
                self.buffer.append(token)
            return
        self.flush()
        if token == ids.p_open:
            self.open_at, self.last_closed = -1, None
        elif token == ids.p_close and self.open_at is not None and self.open_at >= 0:
            text = self.out.text
            self.phrases.append(Phrase(text[self.open_at :], self.open_at, len(text)))
            self.phrase_masks.append(None)
            self.open_at, self.last_closed = None, len(self.phrases) - 1
        elif token == ids.seg:
            self.seg()


def grounded_text(
    tokenizer: Any, generated: Sequence[int], masks: Sequence[np.ndarray], shape: tuple[int, ...]
) -> GroundedText:
    """Turn generated ids and the masks of their [SEG] tokens into a GroundedText.

    A [SEG] right after ``<p>phrase</p>`` grounds that phrase; further [SEG]s right after it
    repeat the phrase (a plural phrase gets one entry per mask); any other [SEG] grounds an
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
    builder = _GroundedBuilder(tokenizer, masks, shape)
    for token in generated:
        builder.feed(int(token))
    builder.flush()
    filled = [m if m is not None else np.zeros(shape, bool) for m in builder.phrase_masks]
    ids = builder.ids
    raw = tokenizer.decode([t for t in generated if t not in (ids.pad, ids.eos)])
    return GroundedText(text=builder.out.text, phrases=builder.phrases, masks=filled, raw=raw)
