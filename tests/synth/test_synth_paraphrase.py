"""The ``paraphrase`` split: test's scenes, queries and targets, worded by templates of its
own; no training lines. And the one colour list covers the generator's colours."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixelground.core.colours import COLOUR_WORDS
from pixelground.core.errors import InputError
from pixelground.synth.language import expression_text, resolve
from pixelground.synth.paraphrase import paraphrase
from pixelground.synth.scene import COLOURS, Scene
from pixelground.synth.writer import SynthOptions, write_split

SMALL = SynthOptions(size=128)


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("paraphrase")
    for split in ("test", "paraphrase"):
        write_split(root, "refer", split, 20, seed=3, options=SMALL)
    return root / "refer" / "test", root / "refer" / "paraphrase"


def test_same_scenes_queries_and_targets_other_words(both):
    test, reworded = both
    assert (test / "scenes.jsonl").read_bytes() == (reworded / "scenes.jsonl").read_bytes()
    a, b = _lines(test / "annotations.jsonl"), _lines(reworded / "annotations.jsonl")
    assert len(a) == len(b) > 40
    scenes = {s["image"]: Scene.from_dict(s["scene"]) for s in _lines(test / "scenes.jsonl")}
    for x, y in zip(a, b, strict=True):
        assert (x["id"], x["targets"], x["query"], x["type"]) == (
            y["id"],
            y["targets"],
            y["query"],
            y["type"],
        )
        assert y["expression"] != x["expression"] == expression_text(x["query"])
        assert y["gt"]["text"] == y["expression"]
        assert list(resolve(y["query"], scenes[y["image"]].shapes)) == y["targets"]
    info = json.loads((reworded / "info.json").read_text())
    assert info["split"] == "paraphrase" and "finetune.jsonl" not in info["files"]
    assert not (reworded / "finetune.jsonl").exists()  # never a training line


def test_the_paraphrases_use_their_own_forms_and_words(both):
    texts = " | ".join(line["expression"] for line in _lines(both[1] / "annotations.jsonl"))
    for form in (" that is ", "among the ", "from the "):
        assert form in texts


@pytest.mark.parametrize(
    ("query", "count", "allowed"),
    [
        (
            {"form": "ordinal", "desc": {"kind": "triangle"}, "direction": "right", "index": 1},
            1,
            ("triangle", "right"),
        ),
        ({"form": "multi", "desc": {"colour": "green"}}, 3, ("green",)),
        (
            {
                "form": "relation",
                "desc": {"kind": "circle"},
                "relation": "below",
                "anchor": {"colour": "blue", "kind": "square"},
            },
            1,
            ("blue", "square"),
        ),
    ],
)
def test_each_form_keeps_its_words_and_never_the_training_wording(query, count, allowed):
    rng = np.random.default_rng(0)
    texts = {paraphrase(query, count, rng) for _ in range(40)}
    assert len(texts) > 5 and expression_text(query) not in texts
    assert all(all(word in text for word in allowed) for text in texts)


def test_numerals_count_the_targets_and_are_not_used_without_any():
    rng = np.random.default_rng(1)
    query = {"form": "multi", "desc": {"colour": "green"}}
    with_three = {paraphrase(query, 3, rng) for _ in range(60)}
    assert any(text.startswith("the three ") for text in with_three)
    without = {paraphrase(query, 0, rng) for _ in range(60)}
    assert not any(text.startswith(("the zero", "both", "the one")) for text in without)


def test_paraphrase_is_a_referring_split_only(tmp_path):
    with pytest.raises(InputError, match="paraphrase split exists for refer only"):
        write_split(tmp_path, "gcg", "paraphrase", 2, seed=0, options=SMALL)


def test_the_generators_colours_are_in_the_one_colour_list():
    assert set(COLOURS) <= COLOUR_WORDS
