"""Objects, geometry and caption verification of the engine (pure functions)."""

from __future__ import annotations

import numpy as np

from pixelground.engine.objects import (
    depth_layers,
    make_object,
    merge_objects,
    relation,
    scene_relations,
)
from pixelground.engine.scene_stages import gcg_markup, template_caption, verify


def _box_mask(x0, y0, x1, y1, size=40):
    mask = np.zeros((size, size), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_merge_keeps_best_mask_and_pools_labels():
    a = make_object(_box_mask(0, 0, 10, 10), 0.9, ["dog"], "detector")
    b = make_object(_box_mask(0, 0, 10, 11), 0.5, ["animal", "dog"], "entity")
    c = make_object(_box_mask(20, 20, 30, 30), 0.7, [], "entity")
    merged = merge_objects([b, a, c], 40, 40, iou=0.5)
    assert [o["id"] for o in merged] == [0, 1]
    assert merged[0]["score"] == 0.9 and merged[0]["labels"] == ["dog", "animal"]
    assert merged[0]["sources"] == ["detector", "entity"]
    assert merged[1]["labels"] == []


def test_relations_from_boxes_and_depth():
    left = {**make_object(_box_mask(0, 10, 10, 20), 1, ["a"], "x"), "id": 0}
    right = {**make_object(_box_mask(30, 10, 40, 20), 1, ["b"], "x"), "id": 1}
    assert relation(left, right, _box_mask(0, 10, 10, 20), _box_mask(30, 10, 40, 20)) == "left of"
    assert relation(right, left, _box_mask(30, 10, 40, 20), _box_mask(0, 10, 10, 20)) == "right of"
    cup = {**make_object(_box_mask(12, 0, 18, 10), 1, ["cup"], "x"), "id": 2}
    table = {**make_object(_box_mask(5, 10, 35, 30), 1, ["table"], "x"), "id": 3}
    assert relation(cup, table, _box_mask(12, 0, 18, 10), _box_mask(5, 10, 35, 30)) == "on"
    near = {**table, "id": 4, "layer": "foreground"}
    far = {**table, "id": 5, "layer": "background"}
    mask = _box_mask(5, 10, 35, 30)
    assert relation(near, far, mask, mask) == "in front of"
    assert relation(far, near, mask, mask) == "behind"
    found = scene_relations([left, right, cup], 40, 40, k=1)
    assert len(found) == 3 and all(r["subject"] != r["object"] for r in found)


def test_depth_layers_split_the_range_in_thirds():
    depth = np.tile(np.linspace(0, 1, 30, dtype=np.float32), (30, 1))  # nearer to the right
    masks = np.stack([_box_mask(0, 0, 5, 30, 30), _box_mask(12, 0, 17, 30, 30),
                      _box_mask(25, 0, 30, 30, 30)])  # fmt: skip
    layers = [layer for _, layer in depth_layers(depth, masks, nearer_is_larger=True)]
    assert layers == ["background", "midground", "foreground"]
    flipped = [layer for _, layer in depth_layers(depth, masks, nearer_is_larger=False)]
    assert flipped == ["foreground", "midground", "background"]


def test_template_caption_marks_each_object_once_and_verifies():
    objects = [
        {**make_object(_box_mask(0, 0, 10, 10), 1, ["red circle"], "x"), "id": 0},
        {**make_object(_box_mask(20, 0, 30, 10), 1, ["blue square"], "x"), "id": 1},
    ]
    record = {"objects": objects, "relations": [
        {"subject": 0, "predicate": "left of", "object": 1},
        {"subject": 1, "predicate": "right of", "object": 0},
    ]}  # fmt: skip
    markup = template_caption(record)
    assert markup == "<p>red circle</p> is left of <p>blue square</p>."
    text, kept, dropped = verify(markup, record)
    assert text == "red circle is left of blue square." and dropped == []
    assert [p["object"] for p in kept] == [0, 1]
    assert gcg_markup(text, kept) == "<p>red circle</p> [SEG] is left of <p>blue square</p> [SEG]."


def test_verify_drops_phrases_naming_nothing():
    objects = [{**make_object(_box_mask(0, 0, 10, 10), 1, ["dog"], "x"), "id": 0}]
    markup = "<p>A brown dog</p> chases <p>a unicorn</p>."
    text, kept, dropped = verify(markup, {"objects": objects})
    assert text == "A brown dog chases a unicorn."
    assert [p["text"] for p in kept] == ["A brown dog"] and dropped == ["a unicorn"]
