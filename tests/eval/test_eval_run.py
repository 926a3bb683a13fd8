"""score(task, pred, gt) on every task, with predictions in each accepted format."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from eval_fixtures import (
    build_gcg,
    build_mevis,
    build_png,
    build_refer,
    instance_masks,
    labelme_coco,
    voc_image_dir,
)
from PIL import Image

from pixelground.core.errors import InputError, UnknownNameError
from pixelground.core.masks import decode_rle, encode_rle
from pixelground.core.result import GroundedResult, ImageInfo, Region
from pixelground.eval.datasets.glamm_gcg import load_gcg
from pixelground.eval.datasets.refcoco import load_grefer, load_refer
from pixelground.eval.metrics.caption import java_available
from pixelground.eval.metrics.refer import refer_scores
from pixelground.eval.predictions import read_predictions
from pixelground.eval.run import TASKS, parse_dataset_spec, score, score_loaded
from pixelground.eval.tasks import TASK_TABLE


def result_for(sample, masks, text=None) -> dict:
    """A pixelground result dict for a refer sample with the given (H, W) masks."""
    regions = [Region(mask=m, phrase=sample.text) for m in masks]
    info = ImageInfo(width=sample.width, height=sample.height, path=str(sample.image_path))
    return GroundedResult("segment", info, text or sample.text, regions).to_dict()


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def refer_root(tmp_path, shared_data):
    return build_refer(tmp_path / "refer", shared_data)


def test_refer_jsonl_predictions_pair_by_id_and_by_image_text(tmp_path, refer_root, shared_data):
    images = voc_image_dir(shared_data)
    samples = load_refer(refer_root, "refcoco", "val", image_dir=images)
    masks = [s.gt_mask() for s in samples]
    shifted = np.roll(masks[2], 15, axis=1)
    records = [
        {"id": samples[0].id, "result": result_for(samples[0], [masks[0]])},
        {"id": samples[1].id, "result": result_for(samples[1], [])},  # no target answered
        result_for(samples[2], [shifted]),  # bare result: matched by image file name + text
        {
            "id": samples[3].id,
            "result": result_for(samples[3], [masks[3], np.zeros_like(masks[3])]),
        },
    ]
    pred = write_jsonl(tmp_path / "pred.jsonl", records)
    result = score("refer", pred, f"refcoco:{refer_root}", image_dir=images)
    empty = np.zeros_like(masks[1])
    expected = refer_scores([masks[0], empty, shifted, masks[3]], masks)
    assert result["gIoU"] == pytest.approx(expected["gIoU"]) and result["task"] == "refer"
    assert result["cIoU"] == pytest.approx(expected["cIoU"]) and result["protocol"] == "lisa"
    assert result["count"] == 4 and result["unscored_predictions"] == 0
    # one sample without prediction: an error, unless allowed
    write_jsonl(pred, records[:3])
    with pytest.raises(InputError, match="1 refer samples have no prediction"):
        score("refer", pred, f"refcoco:{refer_root}", image_dir=images)
    partial = score("refer", pred, refer_root / "refcoco", image_dir=images, allow_missing=True)
    assert partial["samples_without_prediction"] == 1


def test_refer_sa2va_records(tmp_path, refer_root, shared_data):
    images = voc_image_dir(shared_data)
    samples = load_refer(refer_root, "refcoco", "val", image_dir=images)
    masks = [s.gt_mask() for s in samples]
    records = [
        {"id": samples[0].id, "prediction_masks": [[encode_rle(masks[0])[0]]]},
        {"id": samples[1].id, "prediction_masks": None},  # Sa2VA: no [SEG] -> None
        {"id": samples[2].id, "prediction_masks": [encode_rle(masks[2])[0]]},
        {"id": samples[3].id, "pred_mask": encode_rle(masks[3] & False)[0]},
    ]
    pred = tmp_path / "sa2va.json"
    pred.write_text(json.dumps(records))
    sa2va = score("refer", pred, f"refcoco:{refer_root}", protocol="sa2va", image_dir=images)
    lisa = score("refer", pred, f"refcoco:{refer_root}", protocol="lisa", image_dir=images)
    inter = sum(int(m.sum()) for m in (masks[0], masks[2]))
    assert sa2va["cIoU"] == pytest.approx(inter / (inter + masks[3].sum()), abs=1e-9)
    assert lisa["cIoU"] == pytest.approx(inter / (inter + masks[1].sum() + masks[3].sum()))
    assert sa2va["missing_predictions"] == 1
    with pytest.raises(InputError, match="unknown refer protocol"):
        score("refer", pred, f"refcoco:{refer_root}", protocol="relA")


def test_grefer_no_target_from_empty_results(tmp_path, refer_root, shared_data):
    images = voc_image_dir(shared_data)
    samples = {s.id: s for s in load_grefer(refer_root, "val", image_dir=images)}
    people = samples["10-10"].gt_mask()
    records = [
        {"id": "10-10", "result": result_for(samples["10-10"], [people])},
        {"id": "11-11", "result": result_for(samples["11-11"], [])},  # correct no-target
        {"id": "12-12", "result": result_for(samples["12-12"], [])},  # missed two people
    ]
    pred = write_jsonl(tmp_path / "g.jsonl", records)
    result = score("grefer", pred, refer_root / "grefcoco", image_dir=images)
    assert result["confusion"] == {"TP": 1, "TN": 1, "FP": 1, "FN": 0}
    assert result["N-acc"] == 1.0 and result["T-acc"] == 0.5
    assert result["gIoU"] == pytest.approx(2 / 3) and result["Pr@0.9"] == 0.5


def test_gcg_glamm_prediction_folder(tmp_path, shared_data):
    val = build_gcg(tmp_path / "GranDf", shared_data)
    out = tmp_path / "glamm_preds"
    out.mkdir()
    for k, sample in enumerate(load_gcg(val, "val")):
        gt = sample.gt_masks()
        record = {"image_id": sample.id, "caption": sample.caption, "phrases": sample.phrases,
                  "pred_masks": encode_rle(gt)}  # fmt: skip
        if k == 1:  # GLaMM's evaluate.py also accepts a result nested under one key
            record = {sample.id: record}
        (out / f"{sample.id}.json").write_text(json.dumps(record))
    result = score("gcg", out, val, phrase_encoder="lexical", captions=False)
    assert result["AP50"] == pytest.approx(1.0) and result["mIoU"] == pytest.approx(1.0)
    assert result["recall"] == pytest.approx(1.0) and result["count"] == 3
    assert "lexical" in result["phrase_encoder"] and result["protocol"] == "glamm"


@pytest.mark.skipif(not java_available(), reason="needs Java")
def test_caption_coco_files(tmp_path):
    pytest.importorskip("pycocoevalcap")
    gt = tmp_path / "captions.json"
    gt.write_text(json.dumps({"images": [{"id": 1}, {"id": 2}], "annotations": [
        {"image_id": 1, "id": 1, "caption": "A dog runs on the grass."},
        {"image_id": 1, "id": 2, "caption": "A brown dog running."},
        {"image_id": 2, "id": 3, "caption": "A plate of food on a table."},
    ]}))  # fmt: skip
    pred = tmp_path / "results.json"
    pred.write_text(json.dumps([{"image_id": 1, "caption": "a dog runs on the grass"},
                                {"image_id": 2, "caption": "a plate of food"}]))  # fmt: skip
    result = score("caption", pred, gt, caption_metrics=["BLEU", "CIDEr"])
    assert result["count"] == 2 and result["Bleu_1"] > 0.5 and result["CIDEr"] > 0
    assert "METEOR" not in result and result["protocol"] == "coco-caption"


def test_png_from_ground_results(tmp_path, shared_data):
    ann = build_png(tmp_path / "png", shared_data)
    from pixelground.eval.datasets.png_narratives import load_png

    records = []
    for k, narrative in enumerate(load_png(ann)):
        h, w = narrative.segment_map().shape
        regions = []
        for i, phrase in enumerate(narrative.phrases):
            mask = narrative.gt_mask(i)
            if k == 1 and i == 0:
                mask = np.zeros_like(mask)
                mask[:10, :10] = True  # a wrong mask for one phrase
            span = phrase.span if k == 0 else None  # second narrative: match by phrase text
            regions.append(Region(mask=mask, phrase=phrase.text, span=span))
        info = ImageInfo(width=w, height=h, path=str(narrative.image_path))
        result = GroundedResult("ground", info, narrative.caption, regions).to_dict()
        records.append({"id": narrative.id, "result": result})
    pred = write_jsonl(tmp_path / "png.jsonl", records)
    result = score("png", pred, f"png:{ann}")
    assert result["count"]["All"] == 6
    # five phrases perfect (IoU 1 -> AR 0.99999), one with IoU 0 (-> 1e-5)
    assert result["AR"]["All"] == pytest.approx((5 * 0.99999 + 1e-5) / 6, abs=1e-9)
    assert result["AR"]["Stuff"] == pytest.approx(0.99999, abs=1e-9)


def test_entity_and_semseg(tmp_path, shared_data):
    coco = labelme_coco(shared_data)
    masks = instance_masks(shared_data)
    gt = tmp_path / "instances.json"
    gt.write_text(json.dumps(coco))
    records = []
    for image in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        regions = [Region(mask=masks[a["id"]], score=0.9) for a in anns]
        info = ImageInfo(image["width"], image["height"], path=image["file_name"])
        result = GroundedResult("entities", info, "", regions).to_dict()
        records.append({"id": Path(image["file_name"]).stem, "result": result})
    pred = write_jsonl(tmp_path / "entities.jsonl", records)
    result = score("entity", pred, gt)
    assert result["AP"] == pytest.approx(1.0) and result["num_predictions"] == 12
    voc = voc_image_dir(shared_data) / "SegmentationClass"
    sem = score("semseg", voc, voc, num_classes=21)
    assert sem["task"] == "semseg"
    with pytest.raises(InputError, match="--num-classes"):
        score("semseg", voc, voc)


def test_vos_mevis_through_score(tmp_path, shared_data):
    gt = build_mevis(tmp_path / "mevis", shared_data)
    from pixelground.eval.datasets.mevis import load_mevis

    for expression in load_mevis(gt):
        for t, mask in enumerate(expression.gt_masks()):
            path = tmp_path / "pred" / expression.video / expression.exp_id / f"{t:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    result = score("vos", tmp_path / "pred", gt, protocol="mevis")
    assert result["J"] == pytest.approx(1.0) and result["F"] == pytest.approx(1.0)
    assert result["protocol"] == "mevis" and result["num_expressions"] == 2


def test_prediction_readers(tmp_path):
    rle = encode_rle(np.eye(4, dtype=bool))[0]
    lines = tmp_path / "preds.json"  # JSON lines in a .json file
    lines.write_text(json.dumps({"id": "a", "mask": rle}) + "\n" + json.dumps({"id": "b"}) + "\n")
    preds = read_predictions(lines)
    np.testing.assert_array_equal(decode_rle(preds["a"].rles[0]), np.eye(4, dtype=bool))
    assert preds["b"].missing and preds["b"].union(4, 4) is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not JSON"):
        read_predictions(bad)
    with pytest.raises(InputError, match="none of the id keys"):
        lines.write_text(json.dumps({"mask": rle}))
        read_predictions(lines)
    with pytest.raises(InputError, match="not found"):
        read_predictions(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="are .4, 4. but the image"):
        preds["a"].masks(5, 5)


def test_specs_and_task_errors(tmp_path):
    assert parse_dataset_spec("refcoco+:/data/x") == ("refcoco+", Path("/data/x"))
    assert parse_dataset_spec("/data/x") == (None, Path("/data/x"))
    with pytest.raises(UnknownNameError, match="unknown dataset format"):
        parse_dataset_spec("cocoa:/data/x")
    with pytest.raises(UnknownNameError, match="unknown task"):
        score("detect", tmp_path, tmp_path)
    with pytest.raises(InputError, match="single protocol"):
        score("png", tmp_path, tmp_path, protocol="x")
    with pytest.raises(InputError, match="cannot tell the dataset format"):
        score("refer", tmp_path, tmp_path)


def test_scoring_goes_through_the_task_table(tmp_path, monkeypatch):
    calls = []

    def record(*args):
        calls.append(args)
        return {"metric": 1.0}

    table = dict(TASK_TABLE)
    table["semseg"] = replace(TASK_TABLE["semseg"], score=record)
    table["refer"] = replace(TASK_TABLE["refer"], score_samples=record)
    monkeypatch.setattr("pixelground.eval.run.TASK_TABLE", table)
    out = score("semseg", tmp_path / "pred", tmp_path / "gt", num_classes=3)
    assert out == {"task": "semseg", "protocol": "mmseg", "metric": 1.0}
    assert calls.pop() == (tmp_path / "pred", tmp_path / "gt", None, {"num_classes": 3})
    out = score_loaded("refer", ["s"], {"s": None}, "sa2va", allow_missing=True)
    assert out == {"metric": 1.0}
    assert calls.pop() == (["s"], {"s": None}, "sa2va", {"allow_missing": True})
    with pytest.raises(InputError, match="vos is not scored from dataset samples"):
        score_loaded("vos", [], {})
    # every task `score` takes has a scorer in its row: files it reads, or dataset samples
    for name in TASKS:
        row = TASK_TABLE[name]
        assert row.score is not None or (row.formats and row.score_samples is not None), name
