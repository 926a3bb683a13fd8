"""The engine on real backends: the ``shapes`` preset on generated scenes, then every export
read back by the command that consumes it (finetune's reader, ``pixelground eval refer``)."""

from __future__ import annotations

import json

import pytest

from pixelground.eval.run import load_dataset
from pixelground.models.data import read_finetune_jsonl
from pixelground.serve.cli import main
from pixelground.synth.writer import write_split

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine_shapes")
    write_split(root / "synth", "gcg", "test", n=1, seed=5)
    images = root / "synth" / "gcg" / "test" / "images"
    (images / "broken.png").write_bytes(b"\x89PNG broken")
    out = root / "dataset"
    code = main(["annotate", str(images), "--out", str(out), "--preset", "shapes",
                 "--levels", "1,2,3", "--batch-size", "2"])  # fmt: skip
    assert code == 0
    return root, out


def test_shapes_levels_1_to_3_give_objects_scene_graph_and_verified_caption(annotated, capsys):
    root, out = annotated
    stats = json.loads((out / "stats.json").read_text())
    assert stats["done"] == 1 and stats["failed"] == 1 and "broken.png" in stats["failures"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == [
        "caption", "merge", "attributes", "labels", "relations", "dense_caption"
    ]  # fmt: skip
    assert manifest["stages"][0]["backends"]["grounding_model"] == "segtoken:package:shapes"
    records = [json.loads(line) for path in sorted((out / "shards").glob("*.jsonl"))
               for line in path.read_text().splitlines()]  # fmt: skip
    done = [r for r in records if r["status"] == "done"]
    assert all(r["objects"] and r["caption"] for r in done)
    for record in done:
        ids = {o["id"] for o in record["objects"]}
        assert all(o["attribute"] and o["labels"] and o["label"] for o in record["objects"])
        assert {r["subject"] for r in record["relations"]} <= ids
        caption = record["dense_caption"]
        assert caption["markup"].count("[SEG]") == len(caption["phrases"]) > 0
        assert {p["object"] for p in caption["phrases"]} <= ids


def test_exports_are_read_by_finetune_and_eval(annotated, capsys):
    root, out = annotated
    files = {fmt: root / f"export.{fmt}" for fmt in ("coco", "gcg", "refer", "grand")}
    for fmt, path in files.items():
        assert main(["export", str(out), "--format", fmt, "--out", str(path)]) == 0
    capsys.readouterr()
    coco = json.loads(files["coco"].read_text())
    assert len(coco["images"]) == 1 and coco["annotations"]
    assert all(a["segmentation"]["size"] == [256, 256] for a in coco["annotations"])
    tuned = read_finetune_jsonl(files["gcg"])
    assert len(tuned.samples) == 1
    fmt, samples = load_dataset(f"records:{files['refer']}", "refer")
    assert samples and all(s.image_path.exists() and s.text for s in samples)
    grand = json.loads(files["grand"].read_text())
    assert set(grand) == {"00000.png"}
    assert all(entry["objects"] and entry["dense_caption"] for entry in grand.values())
    code = main(["eval", "refer", "--dataset", f"records:{files['refer']}", "--preset", "shapes",
                 "--limit", "2", "--out", str(root / "eval")])  # fmt: skip
    assert code == 0
    assert json.loads((root / "eval" / "report.json").read_text())["count"] == min(2, len(samples))
