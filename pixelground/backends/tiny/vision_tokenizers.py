"""Tokenizers for the tiny vision models, built offline from small vocabularies.

Model hubs are unreachable where pixelground is built and tested, so the tiny CLIP, BERT
and SigLIP-style tokenizers are written here from a few hundred tokens: every byte (CLIP),
letters and digits (BERT, SigLIP), and whole-word tokens for a few common words.
"""

from __future__ import annotations

import string
from typing import Any

from pixelground.core.errors import require

#: Words the tiny tokenizers know as whole tokens (everything else falls back to characters).
TINY_WORDS = (
    "a an the of in on with and photo picture image black white swan bird cat dog person "
    "man woman car tree sky water road grass building left right big small red blue green "
    "there is are this that what where"
).split()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1))
    printable += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes, strict=True)}


def _apply_merges(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encoding of one word: merge the best-ranked adjacent pair until none is left."""
    while len(pieces) > 1:
        pairs = [
            (ranks.get(pair, len(ranks)), i)
            for i, pair in enumerate(zip(pieces[:-1], pieces[1:], strict=True))
        ]
        rank, i = min(pairs)
        if rank == len(ranks):
            break
        pieces = [*pieces[:i], pieces[i] + pieces[i + 1], *pieces[i + 2 :]]
    return pieces


def _word_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges (in rank order) under which each word, with CLIP's "</w>", is one token."""
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        pieces = _apply_merges([*word[:-1], word[-1] + "</w>"], ranks)
        while len(pieces) > 1:
            ranks.setdefault((pieces[0], pieces[1]), len(ranks))
            pieces = _apply_merges(pieces, ranks)
    return sorted(ranks, key=ranks.__getitem__)


def tiny_clip_tokenizer(max_length: int = 77) -> Any:
    """A CLIPTokenizer over every byte plus BPE merges for TINY_WORDS (under 700 tokens).

    As in CLIP's vocabulary the special tokens come last, so no real token has id 0's
    meaning twice: OWLv2 treats a query whose first id is 0 as padding.
    """
    transformers = require("transformers", "models")
    vocab: dict[str, int] = {}
    for char in _bytes_to_unicode().values():
        vocab.setdefault(char, len(vocab))
    for char in _bytes_to_unicode().values():
        vocab.setdefault(char + "</w>", len(vocab))
    merges = _word_merges(TINY_WORDS)
    for first, second in merges:
        vocab.setdefault(first + second, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return transformers.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def clip_text_ids() -> dict[str, int]:
    """bos/eos/pad ids of the tiny CLIP tokenizer, for the text config (CLIP pools at eos)."""
    tokenizer = tiny_clip_tokenizer()
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "vocab_size": len(tokenizer),
    }


#: Grounding DINO splits phrases at these BERT ids ([CLS], [SEP], ".", "?"): keep them.
_BERT_FIXED_IDS = {
    0: "[PAD]",
    100: "[UNK]",
    101: "[CLS]",
    102: "[SEP]",
    103: "[MASK]",
    1012: ".",
    1029: "?",
}


def tiny_bert_tokenizer() -> Any:
    """A BertTokenizer whose special and delimiter tokens sit at bert-base-uncased's ids."""
    transformers = require("transformers", "models")
    size = 1100
    tokens: list[str | None] = [None] * size
    for index, token in _BERT_FIXED_IDS.items():
        tokens[index] = token
    free = iter(i for i in range(104, size) if tokens[i] is None)
    symbols = [
        c for c in string.ascii_lowercase + string.digits + string.punctuation if c not in ".?"
    ]
    for token in [
        *symbols,
        *("##" + c for c in string.ascii_lowercase + string.digits),
        *TINY_WORDS,
    ]:
        tokens[next(free)] = token
    vocab = {(token or f"[unused{i}]"): i for i, token in enumerate(tokens)}
    return transformers.BertTokenizer(vocab=vocab, model_max_length=256)


def tiny_siglip_tokenizer(max_length: int = 64) -> Any:
    """A sentencepiece-style (Unigram, Metaspace) fast tokenizer with SigLIP's special tokens.

    Built with the ``tokenizers`` library so it needs neither sentencepiece nor protobuf.
    """
    transformers = require("transformers", "models")
    tokenizers = require("tokenizers", "models")
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    for char in string.ascii_lowercase + string.digits + string.punctuation:
        pieces += [("▁" + char, -6.0), (char, -6.0)]
    pieces += [("▁" + word, -2.0) for word in TINY_WORDS]
    model = tokenizers.models.Unigram(pieces, unk_id=2)
    backend = tokenizers.Tokenizer(model)
    backend.normalizer = tokenizers.normalizers.Lowercase()
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace()
    backend.decoder = tokenizers.decoders.Metaspace()
    backend.post_processor = tokenizers.processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="</s>",
        pad_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )
