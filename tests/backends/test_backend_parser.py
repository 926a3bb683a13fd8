"""Noun-phrase parsers: TextBlobParser offline, SpacyParser errors and chunk mapping."""

from __future__ import annotations

import sys
import time
import types

import pytest

from pixelground.backends.base import Parser, Phrase
from pixelground.backends.parser import SpacyParser, TextBlobParser, tokenize
from pixelground.core.errors import DependencyMissingError


@pytest.fixture(scope="module")
def parser() -> TextBlobParser:
    return TextBlobParser()


def _phrases(parser: TextBlobParser, text: str) -> list[tuple[str, bool]]:
    found = parser.noun_phrases(text)
    for phrase in found:
        assert text[phrase.start : phrase.end] == phrase.text
    return [(p.text, p.plural) for p in found]


def test_is_a_parser(parser: TextBlobParser) -> None:
    assert isinstance(parser, Parser)
    assert parser.info["class"] == "TextBlobParser"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "A black swan swims near two white geese in the pond.",
            [("A black swan", False), ("two white geese", True), ("the pond", False)],
        ),
        (
            "A man in a red shirt is holding a surfboard next to the ocean waves.",
            [
                ("A man", False),
                ("a red shirt", False),
                ("a surfboard", False),
                ("the ocean waves", True),
            ],
        ),
        (
            "Several people walk on the street; these bikes are parked.",
            [("Several people", True), ("the street", False), ("these bikes", True)],
        ),
        ("The dog's big red ball is here.", [("The dog's big red ball", False)]),
        (
            "Mr. Smith's cars are in the U.S. today",
            [("Mr. Smith's cars", True), ("the U.S.", False)],
        ),
        ("It is a big, black and white cat.", [("a big, black and white cat", False)]),
        ("one cat and 3 dogs", [("one cat", False), ("3 dogs", True)]),
    ],
)
def test_noun_phrases_spans_and_plurals(
    parser: TextBlobParser, text: str, expected: list[tuple[str, bool]]
) -> None:
    assert _phrases(parser, text) == expected


def test_spans_are_character_offsets(parser: TextBlobParser) -> None:
    text = "  Two   black\tswans\n glide."
    (phrase,) = parser.noun_phrases(text)
    assert phrase == Phrase("Two   black\tswans", 2, 19, True)


def test_pronouns_are_not_phrases(parser: TextBlobParser) -> None:
    assert _phrases(parser, "It sees them and they see it.") == []


@pytest.mark.parametrize("text", ["", "   ", "...!!", "😀🎉", "?!?! --- ***", "\n\n\t"])
def test_odd_text_gives_no_phrases(parser: TextBlobParser, text: str) -> None:
    assert parser.noun_phrases(text) == []


def test_emoji_around_words(parser: TextBlobParser) -> None:
    assert _phrases(parser, "😀 a cat 🐈 sleeps on the sofa 😀") == [
        ("a cat", False),
        ("the sofa", False),
    ]
    assert [t.tag for t in parser.tag("😀")] == ["SYM"]


def test_very_long_text_is_fast_and_bounded(parser: TextBlobParser) -> None:
    text = "A black swan swims near two white geese in the pond. " * 2000  # 106k characters
    started = time.perf_counter()
    found = parser.noun_phrases(text)
    assert time.perf_counter() - started < 10
    assert found and all(p.end <= parser.max_chars for p in found)
    assert len(found) >= 3 * 1800


def test_non_string_is_rejected(parser: TextBlobParser) -> None:
    with pytest.raises(TypeError):
        parser.noun_phrases(None)  # type: ignore[arg-type]


def test_tokenize_keeps_offsets() -> None:
    text = "The dog's ball, Dr. Who's black-and-white U.S. car!"
    tokens = tokenize(text)
    assert [t for t, _, _ in tokens] == [
        "The", "dog", "'s", "ball", ",", "Dr.", "Who", "'s", "black-and-white", "U.S.", "car", "!",
    ]  # fmt: skip
    assert all(text[s:e] == t for t, s, e in tokens)


def test_spacy_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spacy", None)  # import spacy -> ImportError
    with pytest.raises(DependencyMissingError, match="pip install spacy"):
        SpacyParser()


def test_spacy_pipeline_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("spacy")

    def load(name: str):
        raise OSError(f"[E050] Can't find model '{name}'")

    fake.load = load  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spacy", fake)
    with pytest.raises(DependencyMissingError, match="python -m spacy download en_core_web_sm"):
        SpacyParser()


def test_spacy_noun_chunks_are_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A UNIT-TEST FAKE spaCy pipeline (spaCy is not installed here) checks the chunk mapping."""

    class Root:
        def __init__(self, tag: str, pos: str, number: list[str]) -> None:
            self.tag_, self.pos_ = tag, pos
            self.morph = types.SimpleNamespace(get=lambda key: number)

    class Chunk:
        def __init__(self, text: str, start: int, root: Root) -> None:
            self.text, self.start_char, self.end_char, self.root = (
                text,
                start,
                start + len(text),
                root,
            )

    def nlp(text: str):
        assert text == "Two swans see it and a sheep."
        return types.SimpleNamespace(
            noun_chunks=[
                Chunk("Two swans", 0, Root("NNS", "NOUN", ["Plur"])),
                Chunk("it", 14, Root("PRP", "PRON", ["Sing"])),
                Chunk("a sheep", 21, Root("NN", "NOUN", ["Plur"])),
            ]
        )

    fake = types.ModuleType("spacy")
    fake.load = lambda name: nlp  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spacy", fake)
    spacy_parser = SpacyParser("en_core_web_sm")
    assert isinstance(spacy_parser, Parser)
    assert spacy_parser.noun_phrases("Two swans see it and a sheep.") == [
        Phrase("Two swans", 0, 9, True),
        Phrase("a sheep", 21, 28, True),
    ]
    assert spacy_parser.noun_phrases("  ") == []


def test_a_verb_before_a_numeral_is_not_part_of_the_phrase():
    text = "A man is walking two dogs next to the river."
    phrases = TextBlobParser().noun_phrases(text)
    assert [p.text for p in phrases] == ["A man", "two dogs", "the river"]
    assert [p.plural for p in phrases] == [False, True, False]
