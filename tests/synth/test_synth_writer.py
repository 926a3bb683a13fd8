"""Written splits: byte-identical for a seed, valid JSON v1 ground truth, masks that match
the images, fine-tuning records the model reads, COCO files pycocotools reads, and the CLI."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle
from pixelground.core.result import GroundedResult
from pixelground.serve.commands import synth as synth_command
from pixelground.synth.render import SHADE
from pixelground.synth.writer import SynthOptions, write_split

SMALL = SynthOptions(size=96, num_frames=4)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("task", ["refer", "gcg", "region", "video"])
def test_same_seed_byte_identical_different_seed_differs(tmp_path, task):
    n = 3 if task == "video" else 5
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        write_split(tmp_path / name, task, "test", n, seed=seed, options=SMALL)
    a, b, c = (_digest(tmp_path / name / task / "test") for name in "abc")
    assert a == b and len(a) > 4
    assert a != c
    assert any(a[k] != c.get(k) for k in a if k.endswith(".png"))


def test_refer_ground_truth_parses_and_masks_match_the_image(synth_root, jsonl):
    folder = synth_root / "refer" / "train"
    scenes = {s["image"]: s for s in jsonl(folder / "scenes.jsonl")}
    for ann in jsonl(folder / "annotations.jsonl"):
        gt = GroundedResult.from_dict(ann["gt"])
        assert gt.text == ann["expression"] and [r.id for r in gt.regions] == ann["targets"]
        image = np.asarray(Image.open(folder / ann["image"]))
        assert (gt.image.height, gt.image.width) == image.shape[:2]
        shapes = {s["id"]: s for s in scenes[ann["image"]]["scene"]["shapes"]}
        for region in gt.regions:
            assert region.phrase == ann["expression"] and region.span == (0, len(ann["expression"]))
            base = np.array(shapes[region.id]["rgb"])
            pixels = image[region.mask].astype(int)
            assert region.area > 0
            assert np.all(np.all(pixels == base, 1) | np.all(pixels == np.floor(base * SHADE), 1))
    # each object's mask in scenes.jsonl is its visible pixels: together they tile the shapes
    for line in scenes.values():
        masks = decode_rle([o["mask"] for o in line["objects"]])
        assert masks.sum(axis=0).max() <= 1
        for obj, mask in zip(line["objects"], masks, strict=True):
            assert mask.sum() == obj["area"] > 0


def test_finetune_records_have_one_mask_per_seg(synth_root, jsonl):
    for task in ("refer", "gcg", "region", "video"):
        folder = synth_root / task / "train"
        records = jsonl(folder / "finetune.jsonl")
        annotations = jsonl(folder / "annotations.jsonl")
        assert len(records) == len(annotations) > 0
        for record, ann in zip(records, annotations, strict=True):
            assert record["id"] == ann["id"]
            user, assistant = record["conversation"]
            assert user["role"] == "user" and assistant["role"] == "assistant"
            assert assistant["content"].count("[SEG]") == len(record["masks"])
            assert user["content"].count("<region>") == len(record.get("regions", []))
            if task == "video":
                assert all(len(m) == len(record["frames"]) for m in record["masks"])
                assert (folder / record["frames"][0]).is_file()
                union = decode_rle(record["masks"][0])
                gt = [decode_rle(f["mask"]) for t in ann["gt"]["tracks"] for f in t["frames"]]
                assert union.sum() == sum(m.sum() for m in gt)  # targets' masks are disjoint
                continue
            assert (folder / record["image"]).is_file()
            if task == "refer":
                assert ann["expression"] in user["content"]
                if ann["no_target"]:
                    assert record["masks"] == [] and "[SEG]" not in assistant["content"]
                else:
                    union = GroundedResult.from_dict(ann["gt"]).union_mask()
                    assert np.array_equal(decode_rle(record["masks"][0]), union)


def test_gcg_ground_truth_and_coco_files(synth_root, jsonl):
    folder = synth_root / "gcg" / "test"
    annotations = jsonl(folder / "annotations.jsonl")
    coco_masks = COCO(str(folder / "test_gcg_coco_mask_gt.json"))
    captions = json.loads((folder / "test_gcg_coco_caption_gt.json").read_text())
    by_image = {c["image_id"]: c for c in captions["annotations"]}
    for ann, record in zip(annotations, jsonl(folder / "finetune.jsonl"), strict=True):
        gt = GroundedResult.from_dict(ann["gt"])
        assert gt.task == "gcg" and gt.text == ann["caption"]
        assert [r.phrase for r in gt.regions] == ann["phrases"] == by_image[ann["id"]]["labels"]
        for region in gt.regions:
            assert gt.text[region.span[0] : region.span[1]] == region.phrase
        markup = record["conversation"][1]["content"]
        assert re.sub(r"</?p>", "", markup).replace(" [SEG]", "") == gt.text
        for rle, region in zip(record["masks"], gt.regions, strict=True):
            assert np.array_equal(decode_rle(rle), region.mask)
        coco_anns = coco_masks.loadAnns(coco_masks.getAnnIds(imgIds=[ann["id"]]))
        assert len(coco_anns) == len(gt.regions)
        for coco_ann, region in zip(coco_anns, gt.regions, strict=True):
            assert np.array_equal(coco_masks.annToMask(coco_ann).astype(bool), region.mask)


def test_region_ground_truth(synth_root, jsonl):
    folder = synth_root / "region" / "train"
    scenes = {s["image"]: s for s in jsonl(folder / "scenes.jsonl")}
    for ann in jsonl(folder / "annotations.jsonl"):
        gt = GroundedResult.from_dict(ann["gt"])
        (region,) = gt.regions
        obj = next(o for o in scenes[ann["image"]]["objects"] if o["id"] == ann["region_id"])
        assert np.array_equal(region.mask, decode_rle(obj["mask"]))
        assert np.array_equal(decode_rle(ann["mask"]), region.mask)
        assert gt.text == ann["caption"] == region.attributes["caption"]
        texture = "" if obj["texture"] == "solid" else obj["texture"] + " "
        assert ann["caption"].startswith(f"a {obj['size']} {texture}{obj['colour']} {obj['kind']} ")
        assert region.label == f"{obj['colour']} {obj['kind']}"


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    synth_command.register(parser.add_subparsers())
    args = parser.parse_args(["synth", *argv])
    return args.handler(args)


def test_cli_writes_every_split(tmp_path, capsys):
    argv = [
        str(tmp_path),
        "--task",
        "refer",
        "--n",
        "5",
        "--seed",
        "1",
        "--split",
        "all",
        "--size",
        "96",
    ]
    assert _cli([*argv, "--json"]) == 0
    infos = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(i["split"], i["n"]) for i in infos] == [
        ("train", 5),
        ("val", 1),
        ("test", 1),
        ("val_heldout", 1),
    ]
    for split in ("train", "val", "test", "val_heldout"):
        folder = tmp_path / "refer" / split
        assert {"annotations.jsonl", "finetune.jsonl", "scenes.jsonl", "info.json"} <= {
            p.name for p in folder.iterdir()
        }
    assert len(list((tmp_path / "refer" / "train" / "images").glob("*.png"))) == 5
    with pytest.raises(InputError, match="--overwrite"):
        _cli(argv)
    assert _cli([*argv, "--overwrite", "--n-eval", "2"]) == 0
    assert len(list((tmp_path / "refer" / "test" / "images").glob("*.png"))) == 2
    video = [str(tmp_path), "--task", "video", "--n", "2", "--size", "96", "--frames", "3",
             "--image-format", "jpg"]  # fmt: skip
    assert _cli(video) == 0
    frames = sorted((tmp_path / "video" / "train" / "JPEGImages" / "00001").iterdir())
    assert [p.name for p in frames] == ["00000.jpg", "00001.jpg", "00002.jpg"]


def test_bad_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="seed"):
        write_split(tmp_path, "refer", "train", 2, seed=-1)
    with pytest.raises(InputError, match="unknown task"):
        write_split(tmp_path, "panoptic", "train", 2)
    with pytest.raises(InputError, match="size"):
        write_split(tmp_path, "refer", "train", 2, options=SynthOptions(size=16))
