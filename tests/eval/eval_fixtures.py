"""Small datasets in the exact official formats, built from the real samples in ../shared/data.

- refer: ``refcoco/refs(unc).p`` (a protocol-2 pickle as the original Python 2 files) and
  ``grefcoco/grefs(unc).json`` over the labelme VOC COCO instances (real polygons, real photos).
- ReasonSeg: labelme polygon JSONs turned into ReasonSeg's ``{"text", "is_sentence", "shapes"}``.
- GranD-f GCG: the ``val_gcg_coco_caption_gt.json`` / ``val_gcg_coco_mask_gt.json`` pair and a
  ``GranDf_HA_GCG_train.json``-style list, masks from the same instances.
- PNG: ``png_coco_val2017.json`` narratives over the two panopticapi COCO val2017 images.
- MeViS: ``meta_expressions.json`` + ``mask_dict.json`` from SA-V masklets (first frames).
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.masks import decode_rle, encode_rle

LABELME = "labelme_voc_instances"
COCO_JSON = Path(LABELME) / "data_dataset_coco" / "annotations.json"
VOC_DIR = Path(LABELME) / "data_dataset_voc"


def labelme_coco(shared: Path) -> dict[str, Any]:
    return json.loads((shared / COCO_JSON).read_text())


def _sentence(sent_id: int, text: str) -> dict[str, Any]:
    return {"sent_id": sent_id, "sent": text, "raw": text.capitalize(), "tokens": text.split()}


REFS = [
    # ref_id, ann_id, image_id, category, split, sentences
    (0, 0, 0, 15, "val", [(0, "man in the middle"), (1, "person on the left")]),
    (1, 2, 0, 5, "val", [(2, "the bottle")]),
    (2, 3, 1, 6, "testA", [(3, "big bus")]),
    (3, 9, 2, 9, "val", [(4, "the chair")]),
]


def build_refer(root: Path, shared: Path) -> Path:
    """``root/refcoco`` and ``root/grefcoco`` over the labelme instances; returns ``root``."""
    coco = labelme_coco(shared)
    for name in ("refcoco", "grefcoco"):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "instances.json").write_text(json.dumps(coco))
    refs = [
        {
            "ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "category_id": cat,
            "split": split, "file_name": f"img_{image_id}_{ann_id}.jpg",
            "sent_ids": [s for s, _ in sents],
            "sentences": [_sentence(s, t) for s, t in sents],
        }
        for ref_id, ann_id, image_id, cat, split, sents in REFS
    ]  # fmt: skip
    with (root / "refcoco" / "refs(unc).p").open("wb") as handle:
        pickle.dump(refs, handle, protocol=2)
    grefs = [
        {"ref_id": 10, "ann_id": [6, 7, 8], "image_id": 2, "category_id": [15], "split": "val",
         "sentences": [_sentence(10, "all the people")]},
        {"ref_id": 11, "ann_id": [-1], "image_id": 2, "category_id": [-1], "split": "val",
         "sentences": [_sentence(11, "the dog on the sofa")]},
        {"ref_id": 12, "ann_id": [0, 1], "image_id": 0, "category_id": [15], "split": "val",
         "sentences": [_sentence(12, "two people")]},
    ]  # fmt: skip
    (root / "grefcoco" / "grefs(unc).json").write_text(json.dumps(grefs))
    return root


def voc_image_dir(shared: Path) -> Path:
    """Folder that ``file_name`` (``JPEGImages/x.jpg``) of the labelme instances is relative to."""
    return shared / VOC_DIR


def build_reasonseg(folder: Path, shared: Path) -> Path:
    """A ReasonSeg split folder: 2011_000003 with the bottle as target and labelme's ignore."""
    folder.mkdir(parents=True, exist_ok=True)
    src = shared / LABELME / "data_annotated"
    labelme = json.loads((src / "2011_000003.json").read_text())
    shapes = []
    for shape in labelme["shapes"]:
        label = {"bottle": "target", "__ignore__": "ignore"}.get(shape["label"], "flag")
        shapes.append({"label": label, "labeling_type": "polygon", "points": shape["points"]})
    data = {"text": ["what can hold water?", "the bottle"], "is_sentence": True, "shapes": shapes}
    (folder / "2011_000003.json").write_text(json.dumps(data))
    shutil.copyfile(src / "2011_000003.jpg", folder / "2011_000003.jpg")
    return folder


GCG = {
    # image stem: (caption, [(phrase, ann_id)])
    "2011_000003": ("A man and a woman stand near a bottle.",
                    [("A man", 0), ("a woman", 1), ("a bottle", 2)]),
    "2011_000025": ("Two buses and a car on the street.", [("Two buses", 3), ("a car", 5)]),
    "2011_000006": ("People sit on a sofa next to a chair.",
                    [("People", 6), ("a sofa", 11), ("a chair", 9)]),
}  # fmt: skip


def instance_masks(shared: Path) -> dict[int, np.ndarray]:
    """ann id -> (H, W) bool mask of every labelme instance."""
    from pixelground.eval.datasets.refcoco import CocoIndex

    index = CocoIndex.read(shared / COCO_JSON)
    return {ann_id: index.mask(ann_id) for ann_id in index.annotations}


def build_gcg(folder: Path, shared: Path) -> Path:
    """GranD-f ``annotations/val_test`` pair + a train-format list; returns ``val_test``."""
    masks = instance_masks(shared)
    val = folder / "annotations" / "val_test"
    val.mkdir(parents=True, exist_ok=True)
    images, captions, mask_anns, train = [], [], [], []
    for stem, (caption, phrases) in GCG.items():
        h, w = masks[phrases[0][1]].shape
        images.append({"id": stem, "file_name": f"{stem}.jpg", "height": h, "width": w})
        captions.append({"id": len(captions), "image_id": stem, "caption": caption,
                         "labels": [p for p, _ in phrases]})  # fmt: skip
        groundings = {}
        for phrase, ann_id in phrases:
            rle = encode_rle(masks[ann_id])[0]
            mask_anns.append(
                {"id": len(mask_anns) + 1, "image_id": stem, "category_id": 1, "segmentation": rle,
                 "area": int(masks[ann_id].sum()), "bbox": [0, 0, w, h], "iscrowd": 0}
            )  # fmt: skip
            start = caption.index(phrase)
            groundings[phrase] = {
                "token_positives": [start, start + len(phrase)],
                "rle_masks": [rle],
            }
        train.append({"file_name": f"{stem}.jpg", "caption": caption, "groundings": groundings})
    cats = [{"id": 1, "name": "object"}]
    (val / "val_gcg_coco_caption_gt.json").write_text(
        json.dumps({"images": images, "annotations": captions})
    )
    (val / "val_gcg_coco_mask_gt.json").write_text(
        json.dumps({"images": images, "annotations": mask_anns, "categories": cats})
    )
    (folder / "annotations" / "GranDf_HA_GCG_train.json").write_text(json.dumps(train))
    image_dir = folder / "GranDf_HA_images" / "val_test"
    image_dir.mkdir(parents=True, exist_ok=True)
    for stem in GCG:
        shutil.copyfile(shared / VOC_DIR / "JPEGImages" / f"{stem}.jpg", image_dir / f"{stem}.jpg")
    return val


PANOPTIC = "panopticapi_sample"


def build_png(folder: Path, shared: Path) -> Path:
    """PNG ``annotations`` folder for the two panopticapi images; returns it."""
    src = shared / PANOPTIC
    panoptic = json.loads((src / "panoptic_examples.json").read_text())
    if not panoptic.get("categories"):
        panoptic["categories"] = json.loads((src / "panoptic_coco_categories.json").read_text())
    ann = folder / "annotations"
    (ann / "panoptic_segmentation" / "val2017").mkdir(parents=True, exist_ok=True)
    (ann / "panoptic_val2017.json").write_text(json.dumps(panoptic))
    for a in panoptic["annotations"]:
        shutil.copyfile(src / "panoptic_examples" / a["file_name"],
                        ann / "panoptic_segmentation" / "val2017" / a["file_name"])  # fmt: skip
    images = folder / "images" / "val2017"
    images.mkdir(parents=True, exist_ok=True)
    for img in panoptic["images"]:
        shutil.copyfile(src / "input_images" / img["file_name"], images / img["file_name"])
    narratives = [png_narrative(panoptic, a) for a in panoptic["annotations"]]
    (ann / "png_coco_val2017.json").write_text(json.dumps(narratives))
    return ann


def png_narrative(panoptic: dict[str, Any], annotation: dict[str, Any]) -> dict[str, Any]:
    """A narrative naming: the two largest thing segments together (plural), the largest thing
    alone, and the largest stuff segment; plus one ungrounded noun and filler words."""
    things = {c["id"] for c in panoptic["categories"] if c["isthing"]}
    segs = [s for s in annotation["segments_info"] if not s.get("iscrowd")]
    thing = sorted((s for s in segs if s["category_id"] in things), key=lambda s: -s["area"])
    stuff = sorted((s for s in segs if s["category_id"] not in things), key=lambda s: -s["area"])
    parts = [
        ("In this picture I can see", [], False),
        ("some objects", [thing[0]["id"], thing[1]["id"]], True),
        ("and", [], False),
        ("this object", [thing[0]["id"]], True),
        ("in front of", [], False),
        ("the background", [stuff[0]["id"]], True),
        ("and the sky", [], True),  # a noun with no segment: not evaluated
    ]
    return {
        "image_id": str(annotation["image_id"]),
        "caption": " ".join(p[0] for p in parts) + ".",
        "segments": [
            {
                "utterance": u,
                "segment_ids": [str(i) for i in ids],
                "noun": noun,
                "plural": len(ids) > 1,
            }
            for u, ids, noun in parts
        ],  # fmt: skip
        "annotator_id": 0,
    }


def build_mevis(folder: Path, shared: Path, frames: int = 4) -> Path:
    """MeViS split folder from the SA-V masklets; two videos share the same masklets."""
    data = json.loads((shared / "sav_example" / "sav_000001_manual.json").read_text())
    masklets = data["masklet"][:frames]
    mask_dict = {}
    for k in range(len(masklets[0])):
        entries = []
        for t in range(frames):
            rle = masklets[t][k]
            entries.append(rle if decode_rle(rle).any() else None)
        mask_dict[str(k)] = entries
    names = [f"{t:05d}" for t in range(frames)]
    meta = {"videos": {"sav_000001": {"frames": names, "expressions": {
        "0": {"exp": "the first  object", "obj_id": [0], "anno_id": [0]},
        "1": {"exp": "objects one and two", "obj_id": [1, 2], "anno_id": [1, 2]},
    }}}}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta_expressions.json").write_text(json.dumps(meta))
    (folder / "mask_dict.json").write_text(json.dumps(mask_dict))
    return folder
