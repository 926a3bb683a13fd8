"""Dataset loaders on fixtures written in the official formats from the real shared data."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from eval_fixtures import (
    GCG,
    build_gcg,
    build_mevis,
    build_png,
    build_reasonseg,
    build_refer,
    instance_masks,
    voc_image_dir,
)
from PIL import Image

from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle
from pixelground.eval.datasets.glamm_gcg import load_gcg
from pixelground.eval.datasets.mevis import load_mevis, load_refytvos
from pixelground.eval.datasets.png_narratives import load_png, rgb2id
from pixelground.eval.datasets.reasonseg import load_reasonseg
from pixelground.eval.datasets.refcoco import load_grefer, load_refer, read_refs


def test_refcoco_pickle_gives_one_sample_per_sentence(tmp_path, shared_data):
    root = build_refer(tmp_path / "refer", shared_data)
    masks = instance_masks(shared_data)
    val = load_refer(root, "refcoco", "val", image_dir=voc_image_dir(shared_data))
    assert [s.id for s in val] == ["0-0", "0-1", "1-2", "3-4"]
    first = val[0]
    assert first.text == "man in the middle" and first.ann_ids == [0]
    assert first.image_path.is_file() and first.image_path.name == "2011_000003.jpg"
    assert (first.height, first.width) == (338, 500) and first.category == "person"
    np.testing.assert_array_equal(first.gt_mask(), masks[0])
    assert first.gt_mask().sum() == pytest.approx(15689, rel=0.02)  # COCO area of ann 0
    assert [s.id for s in load_refer(root, "refcoco", "testA")] == ["2-3"]
    assert len(load_refer(root / "refcoco", "refcoco", None)) == 5


def test_refs_pickle_is_read_without_running_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(InputError, match="only plain data"):
        read_refs(path)


def test_grefcoco_multi_and_no_target(tmp_path, shared_data):
    root = build_refer(tmp_path / "refer", shared_data)
    masks = instance_masks(shared_data)
    samples = {s.id: s for s in load_grefer(root, "val", image_dir=voc_image_dir(shared_data))}
    people = samples["10-10"]
    assert people.ann_ids == [6, 7, 8] and not people.no_target
    assert people.gt_masks().shape == (3, 375, 500)
    np.testing.assert_array_equal(people.gt_mask(), masks[6] | masks[7] | masks[8])
    empty = samples["11-11"]
    assert empty.no_target and empty.ann_ids == [] and not empty.gt_mask().any()
    assert empty.gt_mask().shape == (375, 500)


def test_refer_errors(tmp_path, shared_data):
    with pytest.raises(InputError, match="neither"):
        load_refer(tmp_path, "refcoco")
    root = build_refer(tmp_path / "refer", shared_data)
    with pytest.raises(InputError, match="no refcoco expressions"):
        load_refer(root, "refcoco", "testB")


def test_reasonseg_mask_matches_labelme_rasterisation(tmp_path, shared_data):
    folder = build_reasonseg(tmp_path / "ReasonSeg" / "val", shared_data)
    samples = load_reasonseg(tmp_path / "ReasonSeg", "val")
    assert len(samples) == 1 and samples[0].text == "what can hold water?"
    assert samples[0].is_sentence and samples[0].id == "2011_000003"
    mask = samples[0].gt_mask()
    assert set(np.unique(mask)) <= {0, 1, 255}
    voc = np.asarray(
        Image.open(voc_image_dir(shared_data) / "SegmentationClass" / "2011_000003.png")
    )
    bottle = voc == 5  # labelme's own rasterisation of the same polygon
    target = mask == 1
    assert (target & bottle).sum() / (target | bottle).sum() > 0.9
    ignore_voc, ignore = voc == 255, mask == 255
    assert (ignore & ignore_voc).sum() / (ignore | ignore_voc).sum() > 0.5
    assert not (mask[voc == 15] == 1).any()  # persons were "flag" shapes: dropped
    every = load_reasonseg(folder, all_texts=True)
    assert [s.id for s in every] == ["2011_000003#0", "2011_000003#1"]


def test_reasonseg_missing_folder(tmp_path):
    with pytest.raises(InputError, match="no ReasonSeg"):
        load_reasonseg(tmp_path, "val")


def test_gcg_eval_pair_and_train_list(tmp_path, shared_data):
    val = build_gcg(tmp_path / "GranDf", shared_data)
    masks = instance_masks(shared_data)
    samples = load_gcg(val, "val")
    assert [s.id for s in samples] == list(GCG)
    first = samples[0]
    assert first.phrases == ["A man", "a woman", "a bottle"]
    assert first.image_path.is_file()  # GranDf_HA_images/val_test found next to annotations/
    gt = first.gt_masks()
    assert gt.shape == (3, 338, 500)
    np.testing.assert_array_equal(gt[1], masks[1])
    train = load_gcg(tmp_path / "GranDf" / "annotations" / "GranDf_HA_GCG_train.json")
    assert train[2].phrases == ["People", "a sofa", "a chair"]
    start, end = train[2].spans[1]
    assert train[2].caption[start:end] == "a sofa"
    np.testing.assert_array_equal(train[2].gt_masks()[1], masks[11])
    with pytest.raises(InputError, match="lacks"):
        load_gcg(tmp_path, "val")


def test_png_narratives_over_coco_panoptic(tmp_path, shared_data):
    ann = build_png(tmp_path / "png", shared_data)
    narratives = load_png(ann)
    assert [n.id for n in narratives] == ["142238-0", "439180-0"]
    first = narratives[0]
    assert first.image_path.is_file()
    assert [p.text for p in first.phrases] == ["some objects", "this object", "the background"]
    assert [p.plural for p in first.phrases] == [True, False, False]
    assert [p.thing for p in first.phrases] == [True, True, False]
    start, end = first.phrases[2].span
    assert first.caption[start:end] == "the background"
    ids = rgb2id(np.asarray(Image.open(first.panoptic_png).convert("RGB")))
    seg = first.phrases[0].segment_ids
    np.testing.assert_array_equal(first.gt_mask(0), np.isin(ids, seg))
    assert first.gt_mask(0).sum() > first.gt_mask(1).sum() > 0


def test_mevis_union_of_annotations(tmp_path, shared_data):
    folder = build_mevis(tmp_path / "mevis" / "valid_u", shared_data)
    expressions = load_mevis(tmp_path / "mevis", "valid_u")
    assert [e.id for e in expressions] == ["sav_000001/0", "sav_000001/1"]
    assert expressions[0].text == "the first object"  # whitespace normalised
    gt = expressions[1].gt_masks()
    assert gt.shape == (4, 848, 480)
    mask_dict = json.loads((folder / "mask_dict.json").read_text())
    for t in range(4):
        expected = np.zeros((848, 480), bool)
        for k in ("1", "2"):
            if mask_dict[k][t]:
                expected |= decode_rle(mask_dict[k][t])
        np.testing.assert_array_equal(gt[t], expected)


def test_refytvos_reads_palette_annotations(tmp_path, shared_data):
    src = shared_data / "davis2016_blackswan" / "Annotations" / "480p" / "blackswan"
    root = tmp_path / "ytvos"
    (root / "meta_expressions" / "valid").mkdir(parents=True)
    ann = root / "valid" / "Annotations" / "blackswan"
    ann.mkdir(parents=True)
    for name in ("00000", "00001"):
        ids = (np.asarray(Image.open(src / f"{name}.png")) > 127).astype(np.uint8) * 2
        image = Image.fromarray(ids, mode="P")
        image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
        image.save(ann / f"{name}.png")
    meta = {
        "videos": {
            "blackswan": {
                "frames": ["00001", "00000"],
                "expressions": {"0": {"exp": "a black swan", "obj_id": "2"}},
            }
        }
    }
    (root / "meta_expressions" / "valid" / "meta_expressions.json").write_text(json.dumps(meta))
    [expression] = load_refytvos(root, "valid")
    assert expression.frames == ["00000", "00001"] and expression.obj_ids == [2]
    gt = expression.gt_masks()
    davis = np.asarray(Image.open(src / "00000.png")) > 127
    np.testing.assert_array_equal(gt[0], davis)
