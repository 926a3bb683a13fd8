"""Export an engine dataset: COCO instances, GCG fine-tuning JSONL, referring records, GranD.

=========  ===================================================================================
format     what is written to ``--out FILE``
=========  ===================================================================================
coco       COCO instances JSON: every level-1 object an annotation (RLE ``segmentation``,
           ``bbox`` xywh, ``score``), class-agnostic category 1, plus ``labels``/``label``/
           ``attribute``/``layer`` fields
gcg        JSONL in the fine-tuning format ``pixelground finetune --data`` reads: the verified
           dense caption as ``<p>phrase</p> [SEG]`` with one mask per phrase
refer      JSONL ground-truth records ``{"id", "image", "text", "mask"}`` (an object's attribute
           phrase as its referring expression) that ``pixelground eval refer --dataset
           records:FILE`` reads; expressions shared by two objects of an image are skipped
grand      JSON object per image id, GranD-like: objects (labels, attributes, depth layers),
           relationships, short caption, dense caption with grounding, extra context
=========  ===================================================================================

Every file is written under a temporary name and renamed when complete. Only ``done``
records are exported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError
from pixelground.core.files import atomic_open
from pixelground.core.masks import decode_rle
from pixelground.engine.dataset import Dataset
from pixelground.engine.objects import object_name
from pixelground.synth.finetune import gcg_record

FORMATS = ("coco", "gcg", "refer", "grand")


def coco_lines(dataset: Dataset) -> dict[str, Any]:
    """The COCO instances dict of a dataset (class-agnostic category 1)."""
    images, annotations = [], []
    for number, record in enumerate(dataset.records(), 1):
        images.append({"id": number, "file_name": record["image"], "pixelground_id": record["id"],
                       "width": record["width"], "height": record["height"]})  # fmt: skip
        for obj in record["objects"]:
            x0, y0, x1, y1 = obj["box"]
            annotations.append({
                "id": len(annotations) + 1, "image_id": number, "category_id": 1,
                "segmentation": obj["mask"], "area": int(decode_rle(obj["mask"]).sum()),
                "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0, "score": obj["score"],
                "labels": obj["labels"], "label": obj.get("label"),
                "attribute": obj.get("attribute"), "layer": obj.get("layer"),
            })  # fmt: skip
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "object"}]}  # fmt: skip


def gcg_lines(dataset: Dataset) -> Iterator[dict[str, Any]]:
    """Fine-tuning records of the verified dense captions (images without one are skipped)."""
    for record in dataset.records():
        caption = record.get("dense_caption") or {}
        phrases = caption.get("phrases") or []
        if not phrases:
            continue
        objects = {o["id"]: o for o in record["objects"]}
        masks = decode_rle([objects[p["object"]]["mask"] for p in phrases])
        image = str(Path(record["image"]).resolve())
        yield gcg_record(record["id"], image, caption["markup"], masks)


def refer_lines(dataset: Dataset) -> Iterator[dict[str, Any]]:
    """One referring record per object whose expression is unique in its image."""
    for record in dataset.records():
        texts = [(o, (o.get("attribute") or object_name(o)).strip()) for o in record["objects"]]
        counts: dict[str, int] = {}
        for _, text in texts:
            counts[text.lower()] = counts.get(text.lower(), 0) + 1
        for obj, text in texts:
            if text and counts[text.lower()] == 1 and text != "object":
                image = str(Path(record["image"]).resolve())
                yield {"id": f"{record['id']}#{obj['id']}", "image": image, "text": text,
                       "mask": obj["mask"]}  # fmt: skip


def grand_entry(record: dict[str, Any]) -> dict[str, Any]:
    """A GranD-like annotation of one image."""
    objects = [
        {"id": o["id"], "labels": o["labels"], "label": o.get("label"),
         "attributes": o.get("attribute"), "bbox": o["box"], "segmentation": o["mask"],
         "score": o["score"], "depth": o.get("depth"), "layer": o.get("layer"),
         "sources": o["sources"]}
        for o in record["objects"]
    ]  # fmt: skip
    return {
        "image": record["image"],
        "width": record["width"],
        "height": record["height"],
        "objects": objects,
        "relationships": record.get("relations", []),
        "short_captions": [record.get("caption", "")],
        "grounded_phrases": record.get("phrases", []),
        "dense_caption": record.get("dense_caption"),
        "additional_context": record.get("context"),
    }


def export(dataset_dir: str | Path, fmt: str, out: str | Path) -> int:
    """Export a dataset to ``out`` in ``fmt``; returns how many entries were written.

    Raises:
        InputError: unknown format, not a dataset, or an unwritable output.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    dataset = Dataset(dataset_dir)
    dataset.manifest()
    out = Path(out)
    if fmt == "coco":
        data = coco_lines(dataset)
        return _write(out, [json.dumps(data)], len(data["annotations"]))
    if fmt == "grand":
        entries = {r["id"]: grand_entry(r) for r in dataset.records()}
        return _write(out, [json.dumps(entries)], len(entries))
    lines = gcg_lines(dataset) if fmt == "gcg" else refer_lines(dataset)
    texts = [json.dumps(line, separators=(",", ":")) + "\n" for line in lines]
    return _write(out, texts, len(texts))


def _write(path: Path, chunks: list[str], count: int) -> int:
    try:
        with atomic_open(path) as handle:
            handle.writelines(chunks)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from error
    return count
