"""Referring expressions: every expression, read back from its words by an evaluator written
independently of pixelground.synth.language, refers to exactly its targets; no-target
expressions match nothing; held-out combinations never reach train targets; captions' spans
index their phrases."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from pixelground.synth.captions import grounded_caption
from pixelground.synth.language import ExpressionConfig, generate_expressions
from pixelground.synth.scene import SceneConfig, sample_scene
from pixelground.synth.splits import HELD_OUT_PAIRS, sample_rng
from pixelground.synth.writer import VOCABULARY

VALUES = {value: name for name, values in VOCABULARY.items() for value in values if name != "kind"}
KIND_WORDS = {k: k for k in VOCABULARY["kind"]} | {k + "s": k for k in VOCABULARY["kind"]}
KIND_WORDS |= {"shape": None, "shapes": None}
ORDINAL = {"first": 1, "second": 2, "third": 3, "fourth": 4}
SUPERLATIVE = {"leftmost": "left", "rightmost": "right", "topmost": "top", "bottommost": "bottom"}
RELATION = r"left of|right of|above|below"


def parse_desc(words: str) -> dict[str, str]:
    """ "small striped red triangles" -> {"size": "small", "texture": "striped", ...}."""
    *adjectives, noun = words.split()
    out = {name: value for value, name in ((w, VALUES[w]) for w in adjectives)}
    assert len(out) == len(adjectives), f"repeated attribute in {words!r}"
    if KIND_WORDS[noun]:
        out["kind"] = KIND_WORDS[noun]
    return out


def parse(text: str) -> dict[str, Any]:
    """The meaning of an expression, from its words alone."""
    if m := re.fullmatch(r"all (.+)", text):
        return {"form": "all", "desc": parse_desc(m[1])}
    if m := re.fullmatch(r"the (leftmost|rightmost|topmost|bottommost) (.+)", text):
        return {"form": "nth", "desc": parse_desc(m[2]), "n": 1, "from": SUPERLATIVE[m[1]]}
    if m := re.fullmatch(
        r"the (first|second|third|fourth) (.+) from the (left|right|top|bottom)", text
    ):
        return {"form": "nth", "desc": parse_desc(m[2]), "n": ORDINAL[m[1]], "from": m[3]}
    if m := re.fullmatch(rf"the (.+?) ({RELATION}) the (.+)", text):
        return {"form": "rel", "desc": parse_desc(m[1]), "rel": m[2], "anchor": parse_desc(m[3])}
    m = re.fullmatch(r"the (.+)", text)
    assert m, text
    return {"form": "one", "desc": parse_desc(m[1])}


def evaluate(meaning: dict[str, Any], objects: list[dict[str, Any]], margin: float) -> list[int]:
    """Ids of the objects (dicts with attributes and cx, cy) the meaning refers to.

    Singular forms must single out at most one object, and compared centres must be at least
    ``margin`` apart, or the expression is ambiguous (assertion error).
    """

    def fits(desc, obj):
        return all(obj[k] == v for k, v in desc.items())

    hits = [o for o in objects if fits(meaning["desc"], o)]
    form = meaning["form"]
    if form == "all":
        return sorted(o["id"] for o in hits)
    if form == "rel":
        anchors = [o for o in objects if fits(meaning["anchor"], o)]
        assert len(anchors) == 1, "the anchor must be unique"
        a = anchors[0]
        hits = [o for o in hits if o["id"] != a["id"]]
        key, sign = {"left of": ("cx", -1), "right of": ("cx", 1), "above": ("cy", -1),
                     "below": ("cy", 1)}[meaning["rel"]]  # fmt: skip
        assert all(abs(o[key] - a[key]) >= margin for o in hits), "too close to call"
        hits = [o for o in hits if sign * (o[key] - a[key]) > 0]
    if form == "nth":
        key, reverse = {"left": ("cx", False), "right": ("cx", True), "top": ("cy", False),
                        "bottom": ("cy", True)}[meaning["from"]]  # fmt: skip
        ordered = sorted(hits, key=lambda o: o[key], reverse=reverse)
        gaps = np.diff([o[key] for o in ordered])
        assert np.all(np.abs(gaps) >= margin), "too close to order"
        hits = ordered[meaning["n"] - 1 : meaning["n"]]
    assert len(hits) <= 1, f"singular expression matches {len(hits)} objects"
    return [o["id"] for o in hits]


def _objects(scene_line: dict[str, Any]) -> list[dict[str, Any]]:
    positions = {s["id"]: s for s in scene_line["scene"]["shapes"]}
    return [
        o | {"cx": positions[o["id"]]["cx"], "cy": positions[o["id"]]["cy"]}
        for o in scene_line["objects"]
    ]


@pytest.mark.parametrize("split", ["train", "test"])
def test_written_expressions_mean_exactly_their_targets(synth_root, jsonl, split):
    folder = synth_root / "refer" / split
    scenes = {s["image"]: s for s in jsonl(folder / "scenes.jsonl")}
    margin = 0.05 * scenes[next(iter(scenes))]["scene"]["width"] - 0.02  # positions are rounded
    annotations = jsonl(folder / "annotations.jsonl")
    assert len(annotations) >= 3 * len(scenes)
    types = set()
    for ann in annotations:
        found = evaluate(parse(ann["expression"]), _objects(scenes[ann["image"]]), margin)
        assert found == ann["targets"], ann["expression"]
        assert ann["no_target"] == (not found)
        types.add(ann["type"])
        if ann["type"] == "multi":
            assert len(found) >= 2
    assert types == {"attribute", "relation", "ordinal", "multi", "no_target"}


@pytest.mark.parametrize("seed", range(40))
def test_generated_expressions_agree_with_independent_evaluator(seed):
    """Many scenes in memory (no rounding): also exercises the generator's margin checks."""
    rng = sample_rng(seed, "refer", "val", 0)
    scene = sample_scene(rng, SceneConfig(size=256, max_shapes=7))
    config = ExpressionConfig(margin=12.0)
    objects = [{"id": s.id, "cx": s.cx, "cy": s.cy, **{k: s.attribute(k) for k in VOCABULARY}}
               for s in scene.shapes]  # fmt: skip
    for expression in generate_expressions(rng, scene.shapes, 8, VOCABULARY, config):
        found = evaluate(parse(expression.text), objects, 12.0)
        assert tuple(found) == expression.targets, expression.text
        assert expression.no_target == (expression.type == "no_target")


def test_held_out_pairs_never_train_targets_nor_named(synth_root, jsonl):
    held = {tuple(p) for p in HELD_OUT_PAIRS}
    for task in ("refer", "gcg", "region"):
        folder = synth_root / task / "train"
        for line in jsonl(folder / "scenes.jsonl"):
            assert not any((o["colour"], o["kind"]) in held for o in line["objects"])
    for ann in jsonl(synth_root / "refer" / "train" / "annotations.jsonl"):
        words = ann["expression"]
        for colour, kind in held:
            assert not re.search(rf"\b{colour} {kind}s?\b", words), words
    scenes = {s["image"]: {o["id"]: o for o in s["objects"]}
              for s in jsonl(synth_root / "refer" / "test" / "scenes.jsonl")}  # fmt: skip
    test_annotations = jsonl(synth_root / "refer" / "test" / "annotations.jsonl")
    for ann in test_annotations:
        objects = scenes[ann["image"]]
        pairs = {(objects[i]["colour"], objects[i]["kind"]) for i in ann["targets"]}
        assert ann["no_target"] or pairs & held, ann["expression"]
    assert sum(not a["no_target"] for a in test_annotations) >= len(test_annotations) // 2


def test_no_target_expressions_have_no_matching_shape(synth_root, jsonl):
    folder = synth_root / "refer" / "train"
    scenes = {s["image"]: s for s in jsonl(folder / "scenes.jsonl")}
    negatives = [a for a in jsonl(folder / "annotations.jsonl") if a["no_target"]]
    assert negatives
    for ann in negatives:
        meaning = parse(ann["expression"])
        objects = _objects(scenes[ann["image"]])
        assert evaluate(meaning, objects, 0.0) == []
        assert ann["gt"]["regions"] == []


@pytest.mark.parametrize("seed", range(10))
def test_grounded_caption_spans_index_their_phrases(seed):
    scene = sample_scene(sample_rng(seed, "gcg", "train", 0), SceneConfig(size=128))
    caption = grounded_caption(scene)
    assert len(caption.phrases) == len(scene.shapes)
    assert sorted(i for _, _, i in caption.phrases) == sorted(s.id for s in scene.shapes)
    for phrase, (start, end), shape_id in caption.phrases:
        assert caption.text[start:end] == phrase
        shape = scene.shape(shape_id)
        assert parse_desc(phrase.removeprefix("a ")) == {
            k: shape.attribute(k)
            for k in VOCABULARY
            if not (k == "texture" and shape.texture == "solid")
        }
    plain = re.sub(r"</?p>", "", caption.markup).replace(" [SEG]", "")
    assert plain == caption.text
    assert caption.markup.count("[SEG]") == len(scene.shapes)


def test_how_many_attributes_a_description_names_does_not_tell_whether_it_has_a_target():
    """No-target expressions are worded as target ones are: among attribute and multi
    expressions, the share without a target is about the same whatever the description's
    length (a model must look, not count words)."""
    config = ExpressionConfig(margin=12.0)
    counts: dict[tuple[str, int], list[int]] = {}
    for seed in range(400):
        rng = sample_rng(seed, "refer", "train", 0)
        scene = sample_scene(rng, SceneConfig(size=256))
        for expression in generate_expressions(rng, scene.shapes, 4, VOCABULARY, config):
            form = expression.query["form"]
            if form in ("attribute", "multi"):
                named = min(len(expression.query["desc"]), 3)
                tally = counts.setdefault((form, named), [0, 0])
                tally[0] += 1
                tally[1] += expression.no_target
    for form in ("attribute", "multi"):
        shares = [counts[form, n][1] / counts[form, n][0] for n in (1, 2, 3) if (form, n) in counts]
        assert len(shares) >= 2 and all(counts[form, n][0] >= 20 for n in (1, 2))
        assert max(shares) - min(shares) < 0.15, (form, counts)
