"""Noun-phrase parsers: offline from textblob's pattern tagger, or spaCy when installed.

TextBlob's own noun-phrase extractors do not work offline: ``FastNPExtractor`` and
``ConllExtractor`` (and ``TextBlob(...).tags``/``.noun_phrases``) need NLTK corpora
(punkt, brown, conll2000) that must be downloaded. Its pattern part-of-speech tagger
(``textblob.en.parser.find_tags``) ships its lexicon inside the package and needs
nothing else, so :class:`TextBlobParser` tags with it and chunks noun phrases itself:

* tokens come from a regex tokenizer that keeps character offsets (possessive ``'s``
  split off, hyphenated words kept whole, every other symbol one token);
* a noun phrase is ``(DT|PRP$|CD)* (JJ|VBN|VBG, optionally joined by "," / CC)* CD* NN*``
  ending in a noun, optionally extended by possessives (``the dog's red ball``); a plural
  noun ends the phrase (the tagger often reads the verb after it as a noun: "dogs chase");
  pronouns are not phrases;
* a phrase is plural when its head (last noun) is tagged NNS/NNPS, or a numeral other
  than one or a plural determiner (these, those, both, several, many, ...) modifies it.

Spans are [start, end) character offsets into the given text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pixelground.backends.base import Phrase
from pixelground.core.errors import DependencyMissingError, require

_TOKEN = re.compile(
    r"(?:[^\W\d_]\.){2,}"  # acronyms: U.S., e.g.
    r"|(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Mt|vs|etc)\."  # abbreviations that end in a dot
    r"|[^\W_]+(?:[-'’][^\W_]+)*(?=['’][sS]\b)"  # a word before a possessive 's
    r"|['’][sS]\b"  # the possessive
    r"|[^\W_]+(?:[-.'’][^\W_]+)*"  # words, with inner hyphens, dots, apostrophes
    r"|\S"  # any other visible character: punctuation, symbols, emoji
)

#: Part-of-speech tag -> one-letter class used by the chunk grammar.
_CLASS = {
    **dict.fromkeys(("DT", "PDT", "PRP$", "WP$"), "D"),
    "CD": "C",
    **dict.fromkeys(("JJ", "JJR", "JJS", "VBN", "VBG"), "A"),
    **dict.fromkeys(("NN", "NNP"), "N"),
    **dict.fromkeys(("NNS", "NNPS"), "S"),
    "POS": "P",
    "CC": "&",
    ",": ",",
}
_MODIFIERS = r"(?:A(?:[,&]?A)*)?"  # numerals go before adjectives: "two red dogs"
_NOUNS = r"(?:N+S?|S)"  # a plural noun ends the nouns: "dogs chase" is noun + verb
_NP = re.compile(rf"[DC]*{_MODIFIERS}{_NOUNS}(?:P{_MODIFIERS}{_NOUNS})*")

PLURAL_TAGS = frozenset({"NNS", "NNPS"})
PLURAL_DETERMINERS = frozenset(
    {"these", "those", "both", "several", "many", "few", "all", "various", "multiple", "some"}
)
SINGULAR_NUMERALS = frozenset({"one", "1", "a", "an"})
TIME_ADVERBS = frozenset({"today", "tonight", "yesterday", "tomorrow"})


@dataclass(frozen=True)
class Token:
    """A tagged token with its [start, end) character span."""

    text: str
    start: int
    end: int
    tag: str


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Split text into (token, start, end) with character offsets."""
    return [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def chunk_noun_phrases(tokens: list[Token], text: str) -> list[Phrase]:
    """Noun phrases over tagged tokens (the grammar of the module docstring)."""
    codes = "".join(_CLASS.get(t.tag, "O") for t in tokens)
    phrases = []
    for match in _NP.finditer(codes):
        part = tokens[match.start() : match.end()]
        first, last = part[0], part[-1]
        phrases.append(Phrase(text[first.start : last.end], first.start, last.end, _plural(part)))
    return phrases


def _plural(part: list[Token]) -> bool:
    head = part[-1]
    if head.tag in PLURAL_TAGS:
        return True
    # Modifiers of the head: tokens after the last possessive.
    cut = max((i for i, t in enumerate(part) if t.tag == "POS"), default=-1)
    for token in part[cut + 1 : -1]:
        word = token.text.lower()
        if token.tag == "CD" and word not in SINGULAR_NUMERALS:
            return True
        if token.tag in ("DT", "PDT") and word in PLURAL_DETERMINERS:
            return True
    return False


class TextBlobParser:
    """Parser over textblob's bundled pattern tagger; works offline, no NLTK data.

    Args:
        max_chars: texts longer than this are parsed in their first ``max_chars``
            characters only (tagging is linear, this only bounds latency).
    """

    def __init__(self, max_chars: int = 100_000) -> None:
        require("textblob", "models")
        from textblob.en import parser as pattern_parser

        self._parser = pattern_parser
        self.max_chars = int(max_chars)
        self.info = {"class": "TextBlobParser", "tagger": "textblob.en (pattern lexicon)"}

    def tag(self, text: str) -> list[Token]:
        """Part-of-speech tagged tokens (Penn Treebank tags) with character spans."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        spans = tokenize(text[: self.max_chars])
        if not spans:
            return []
        tagged = self._parser.find_tags([s[0] for s in spans])
        tokens = []
        for (word, start, end), (_, tag) in zip(spans, tagged, strict=True):
            if not any(c.isalnum() for c in word) and tag.startswith("NN"):
                tag = "SYM"  # emoji and symbols the lexicon does not know default to NN
            elif word.lower() in TIME_ADVERBS:
                tag = "RB"  # the lexicon has "today" etc. as nouns: "the car today"
            tokens.append(Token(word, start, end, tag))
        return tokens

    def noun_phrases(self, text: str) -> list[Phrase]:
        """Noun phrases with [start, end) spans into ``text``, in order (empty for no text)."""
        return chunk_noun_phrases(self.tag(text), text)


class SpacyParser:
    """Parser over a spaCy pipeline's noun chunks (when spaCy and the pipeline are installed).

    Args:
        model: an installed spaCy pipeline name or path (needs a parser, e.g. en_core_web_sm).

    Raises:
        DependencyMissingError: spaCy or the pipeline is not installed.
    """

    def __init__(self, model: str = "en_core_web_sm") -> None:
        try:
            spacy = require("spacy", "models")
        except DependencyMissingError as error:
            raise DependencyMissingError(
                "spaCy is not installed; pip install spacy and then "
                f"python -m spacy download {model}, or use the offline 'textblob' parser"
            ) from error
        try:
            self.nlp = spacy.load(model)
        except OSError as error:
            raise DependencyMissingError(
                f"spaCy pipeline {model!r} is not installed; install it with "
                f"python -m spacy download {model} (or pip install its wheel), "
                "or use the offline 'textblob' parser"
            ) from error
        self.info = {"class": "SpacyParser", "model": str(model)}

    def noun_phrases(self, text: str) -> list[Phrase]:
        """Noun chunks (pronoun-headed chunks skipped) with [start, end) spans into ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        if not text.strip():
            return []
        phrases = []
        for chunk in self.nlp(text).noun_chunks:
            root: Any = chunk.root
            if root.pos_ == "PRON":
                continue
            number = root.morph.get("Number") if hasattr(root, "morph") else []
            plural = root.tag_ in PLURAL_TAGS or "Plur" in number
            phrases.append(Phrase(chunk.text, chunk.start_char, chunk.end_char, plural))
        return phrases
