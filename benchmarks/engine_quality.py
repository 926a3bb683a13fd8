"""Quality of the data engine on known ground truth: a `pixelground synth` GCG split annotated
with the `shapes` preset (levels 1-3), exported, and scored with pixelground's metrics.

    python benchmarks/engine_quality.py [--n 20] [--seed 11] [--work DIR]

Prints a table: class-agnostic mask AP of the level-1 objects against every object of the
scenes (COCO segm AP), and GCG mask recall / AP50 (GLaMM's GCG metric) of the level-3 dense
captions and of the level-1 grounded caption they were built from.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pixelground.core.masks import decode_rle
from pixelground.engine import Dataset, annotate, export
from pixelground.eval.metrics.entity import evaluate_entity
from pixelground.eval.run import score
from pixelground.synth.writer import write_split


def scene_gt(split: Path) -> dict:
    """COCO instances of every object of every scene (visible masks), ids by file name."""
    images, annotations = [], []
    for number, line in enumerate((split / "scenes.jsonl").read_text().splitlines(), 1):
        scene = json.loads(line)
        height, width = decode_rle(scene["objects"][0]["mask"]).shape[-2:]
        images.append({"id": number, "file_name": Path(scene["image"]).name,
                       "height": int(height), "width": int(width)})  # fmt: skip
        for obj in scene["objects"]:
            area = int(decode_rle(obj["mask"]).sum())
            if area:
                annotations.append({"id": len(annotations) + 1, "image_id": number,
                                    "category_id": 1, "segmentation": obj["mask"], "area": area,
                                    "iscrowd": 0, "bbox": [0, 0, 1, 1]})  # fmt: skip
    return {"images": images, "annotations": annotations, "categories": [{"id": 1}]}


def object_predictions(coco: dict, gt: dict) -> list[dict]:
    """The exported objects as COCO results on the GT's image ids (matched by file name)."""
    by_name = {img["file_name"]: img["id"] for img in gt["images"]}
    names = {img["id"]: Path(img["file_name"]).name for img in coco["images"]}
    return [{"image_id": by_name[names[a["image_id"]]], "segmentation": a["segmentation"],
             "score": a["score"], "category_id": 1} for a in coco["annotations"]]  # fmt: skip


def gcg_predictions(dataset: Dataset, dense: bool) -> list[dict]:
    """pixelground results per image: the dense caption (level 3) or the level-1 caption."""
    out = []
    for record in dataset.records():
        objects = {o["id"]: o for o in record["objects"]}
        if dense:
            text, phrases = record["dense_caption"]["text"], record["dense_caption"]["phrases"]
        else:
            text = record["caption"]
            phrases = [p for p in record["phrases"] if p.get("object") is not None]
        regions = [{"phrase": p["text"], "span": p["span"], "score": 1.0,
                    "mask": objects[p["object"]]["mask"]} for p in phrases]  # fmt: skip
        result = {"version": 1, "task": "caption", "text": text, "regions": regions,
                  "image": {"path": record["image"], "width": record["width"],
                            "height": record["height"]}}  # fmt: skip
        out.append({"id": Path(record["id"]).stem, "result": result})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--work", default=None, help="keep files here (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="engine-quality-"))
    write_split(work / "synth", "gcg", "test", n=args.n, seed=args.seed, overwrite=True)
    split = work / "synth" / "gcg" / "test"
    started = time.perf_counter()
    stats = annotate(split / "images", work / "dataset", preset="shapes", levels=(1, 2, 3))
    seconds = time.perf_counter() - started
    export(work / "dataset", "coco", work / "objects.json")
    export(work / "dataset", "gcg", work / "gcg.jsonl")
    gt = scene_gt(split)
    coco = json.loads((work / "objects.json").read_text())
    ap = evaluate_entity(gt, object_predictions(coco, gt))
    rows = [("level-1 objects, class-agnostic mask AP", ap["AP"]),
            ("level-1 objects, mask AP50", ap["AP50"]),
            ("level-1 objects, AR100", ap["AR100"])]  # fmt: skip
    dataset = Dataset(work / "dataset")
    for dense, name in ((False, "level-1 grounded caption"), (True, "level-3 dense caption")):
        path = work / f"gcg_pred_{int(dense)}.jsonl"
        path.write_text("".join(json.dumps(p) + "\n" for p in gcg_predictions(dataset, dense)))
        gcg = score("gcg", path, f"synth:{split}", captions=False)
        rows += [(f"{name}, GCG mask recall", gcg["recall"]), (f"{name}, GCG AP50", gcg["AP50"])]
    kept, dropped = stats["phrases_verified"], stats["phrases_dropped"]
    print(f"{args.n} synth GCG test scenes (seed {args.seed}), shapes preset, levels 1-3, "
          f"{seconds:.0f} s; {stats['objects_per_image']} objects/image, "
          f"{kept} phrases verified, {dropped} dropped")  # fmt: skip
    print(f"GT objects: {len(gt['annotations'])}; predicted objects: {len(coco['annotations'])}")
    print("| metric | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.3f} |")


if __name__ == "__main__":
    main()
