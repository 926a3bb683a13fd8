"""The attributes stage asks only for what the record keeps (label and short caption): one
generation fewer per object than a full describe, and the same record as when the detailed
caption was also generated (fake captioner counting calls; the tiny preset's real one)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixelground.backends.presets import Part, Preset
from pixelground.core.media import load_image
from pixelground.engine.objects import make_object, object_masks
from pixelground.engine.runner import new_record
from pixelground.engine.source import Item
from pixelground.engine.stages import Context, Settings, attributes
from pixelground.pipeline import Pipeline, load


class CountingCaptioner:
    """Answers from the crop's mean colour; counts every generation by kind."""

    def __init__(self):
        self.calls = {"label": 0, "short": 0, "detailed": 0}

    def caption(self, image, detailed=False):
        self.calls["detailed" if detailed else "short"] += 1
        return f"{'long' if detailed else 'short'} {int(np.asarray(image).mean())}"

    def describe_region(self, image, box, detailed=False):
        self.calls["label"] += 1
        return f"thing {int(box[0])}"


def _record(tmp_path, size=32):
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[4:12, 4:12] = 200
    pixels[16:30, 10:28] = 90
    path = tmp_path / "a.png"
    Image.fromarray(pixels).save(path)
    image = load_image(path)
    objects = []
    for index, (y0, y1, x0, x1) in enumerate([(4, 12, 4, 12), (16, 30, 10, 28)]):
        mask = np.zeros((size, size), bool)
        mask[y0:y1, x0:x1] = True
        objects.append({**make_object(mask, 0.9, [] if index else ["red"], "fake"), "id": index})
    return {**new_record(Item("a", str(path)), image), "objects": objects}, image


def _old_attributes(record, image, ctx):
    """The stage as it was: a full describe (label, short and detailed caption)."""
    out = []
    masks = object_masks(record["objects"], image.height, image.width)
    for obj, mask in zip(record["objects"], masks, strict=True):
        region = ctx.pipe.describe(image, mask=mask).regions[0]
        short = str(region.attributes.get("short_caption") or region.label or "").strip()
        obj = {**obj, "attribute": short or None}
        if not obj["labels"] and region.label:
            obj["labels"] = [region.label]
        out.append(obj)
    return {**record, "objects": out}


def test_attributes_two_generations_per_object_same_record(tmp_path):
    record, image = _record(tmp_path)
    captioner = CountingCaptioner()
    preset = Preset("fake", "counting captioner", {"captioner": Part("florence2")})
    ctx = Context(Pipeline(preset, backends={"captioner": captioner}), Settings())
    new = attributes(record, image, ctx)
    assert captioner.calls == {"label": 2, "short": 2, "detailed": 0}
    old = _old_attributes(record, image, ctx)
    assert captioner.calls == {"label": 4, "short": 4, "detailed": 2}
    assert new == old
    assert new["objects"][0]["labels"] == ["red"] and new["objects"][1]["labels"] == ["thing 10"]
    assert all(o["attribute"].startswith("short ") for o in new["objects"])


@pytest.mark.slow
def test_attributes_same_record_on_the_tiny_preset(tmp_path):
    record, image = _record(tmp_path)
    ctx = Context(load("tiny", device="cpu"), Settings())
    assert attributes(record, image, ctx) == _old_attributes(record, image, ctx)
