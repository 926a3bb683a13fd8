"""Levels 1-4 stages on the real backend classes of the tiny preset (random weights: the
plumbing, not the quality): depth layers, CLIP label choice, relations, a VLM-written dense
caption that verification rejects (so the template is used), and level-4 context.

Objects come from a cheap square-finding stage instead of SAM2's entity grid (slow on CPU);
every later stage is the engine's own, on the tiny preset's models."""

from __future__ import annotations

import json

import pytest
from engine_fakes import square_object, write_images

from pixelground.engine import Dataset, Stage, annotate
from pixelground.engine.runner import ALL_STAGES
from pixelground.pipeline import load

pytestmark = pytest.mark.slow


def _two_objects(record, image, ctx):
    record = square_object(record, image, ctx)
    obj = dict(record["objects"][0], labels=["box", "square"])  # two candidates: CLIP picks
    corner = {**obj, "id": 1, "labels": ["square"], "box": [0, 0, 4, 4]}
    return {**record, "objects": [obj, corner]}


def test_tiny_preset_runs_levels_1_to_4(tmp_path):
    write_images(tmp_path / "src", 1, size=48)
    later = [s for s in ALL_STAGES if s.name in
             ("depth", "labels", "relations", "dense_caption", "context")]  # fmt: skip
    stages = [Stage("objects", 1, _two_objects, finds_objects=True), *later]
    stats = annotate(tmp_path / "src", tmp_path / "out", preset=load("tiny", device="cpu"),
                     stages=stages, levels=(1, 2, 3, 4), batch_size=2)  # fmt: skip
    assert stats["done"] == 1, stats["failures"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["objects", *[s.name for s in later]]
    assert manifest["stages"][1]["backends"] == {"depth": "depth:tiny:depth"}
    for record in Dataset(tmp_path / "out").records():
        objects = record["objects"]
        assert all(o["layer"] in ("foreground", "midground", "background") for o in objects)
        assert objects[0]["label"] in ("box", "square") and objects[1]["label"] == "square"
        assert len(record["relations"]) == 2
        caption = record["dense_caption"]
        assert caption["writer"] in ("vlm", "template") and caption["phrases"]
        assert isinstance(record["context"], str)
