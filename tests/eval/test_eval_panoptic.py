"""Panoptic quality: parity with panopticapi pq_compute golden outputs, hand cases, I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pixelground.core.errors import InputError
from pixelground.eval.datasets.coco_panoptic import (
    id2rgb,
    load_coco_panoptic,
    read_panoptic_png,
    rgb2id,
    write_panoptic_png,
)
from pixelground.eval.metrics.panoptic import PQStat, evaluate_panoptic

ATOL = 1e-6
CATEGORIES = {
    1: {"id": 1, "name": "person", "isthing": 1},
    2: {"id": 2, "name": "sky", "isthing": 0},
}


@pytest.fixture(scope="module")
def sample(shared_data: Path) -> dict[str, Path]:
    root = shared_data / "panopticapi_sample"
    pred = shared_data / "golden" / "pq_pred"
    return {
        "gt_json": root / "panoptic_examples.json",
        "gt_dir": root / "panoptic_examples",
        "pred_json": pred / "panoptic_pred.json",
        "pred_dir": pred / "panoptic_pred",
        "golden": shared_data / "golden" / "pq_official.json",
    }


def _assert_matches(result: dict, expected: dict) -> None:
    for name in ("All", "Things", "Stuff"):
        for key in ("pq", "sq", "rq"):
            assert result[name][key] == pytest.approx(expected[name][key], abs=ATOL), (name, key)
        assert result[name]["n"] == expected[name]["n"]
    assert set(result["per_class"]) == set(expected["per_class"])
    for label, scores in expected["per_class"].items():
        for key in ("pq", "sq", "rq"):
            assert result["per_class"][label][key] == pytest.approx(scores[key], abs=ATOL)


def test_perturbed_prediction_matches_panopticapi(sample):
    golden = json.loads(sample["golden"].read_text())
    result = evaluate_panoptic(
        sample["gt_json"], sample["gt_dir"], sample["pred_json"], sample["pred_dir"]
    )
    _assert_matches(result, golden["result_pred_vs_gt"])
    assert len(result["per_class"]) == 133 and result["num_images"] == 2
    person = result["per_class"]["1"]
    assert person["name"] == "person" and person["isthing"] == 1
    assert person["tp"] > 0 and person["fp"] > 0 and person["fn"] > 0
    json.dumps(result, allow_nan=False)


def test_ground_truth_against_itself_matches_panopticapi(sample):
    golden = json.loads(sample["golden"].read_text())
    result = evaluate_panoptic(sample["gt_json"], None, sample["gt_json"], sample["gt_dir"])
    _assert_matches(result, golden["result_gt_vs_gt"])


def _stat(gt_ids, gt_segments, pred_ids, pred_segments) -> PQStat:
    stat = PQStat()
    stat.add_image(np.array(gt_ids), gt_segments, np.array(pred_ids), pred_segments, CATEGORIES)
    return stat


def test_void_pixels_do_not_count_against_a_match():
    gt = np.zeros((10, 20), np.uint32)
    gt[:, :10] = 5  # 100 px person
    pred = np.zeros_like(gt)
    pred[:6, :10] = 7  # 60 px on the person
    pred[:2, 10:20] = 7  # 20 px on VOID (gt 0)
    stat = _stat(gt, [{"id": 5, "category_id": 1, "iscrowd": 0, "area": 100}], pred,
                 [{"id": 7, "category_id": 1}])  # fmt: skip
    summary = stat.summary(CATEGORIES)
    # IoU = 60 / (80 + 100 - 60 - 20) = 0.6 > 0.5: one TP
    assert summary["per_class"]["1"] == pytest.approx(
        {"pq": 0.6, "sq": 0.6, "rq": 1.0, "tp": 1, "fp": 0, "fn": 0, "name": "person", "isthing": 1}
    )
    assert summary["All"]["n"] == 1 and summary["Stuff"] == {"pq": 0, "sq": 0, "rq": 0, "n": 0}


def test_iou_of_exactly_one_half_is_not_a_match():
    gt = np.zeros((10, 10), np.uint32)
    gt[:, :5] = 1  # 50 px person
    gt[:, 5:] = 3  # 50 px sky (not VOID, so it counts in the union)
    pred = np.full_like(gt, 2)  # 100 px person: IoU = 50 / (100 + 50 - 50) = 0.5
    segments = [{"id": 1, "category_id": 1, "area": 50}, {"id": 3, "category_id": 2, "area": 50}]
    stat = _stat(gt, segments, pred, [{"id": 2, "category_id": 1}])
    assert (stat[1].tp, stat[1].fp, stat[1].fn) == (0, 1, 1)
    assert (stat[2].tp, stat[2].fp, stat[2].fn) == (0, 0, 1)
    assert stat.summary(CATEGORIES)["All"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 2}


def test_crowd_and_void_dominated_false_positives_are_ignored():
    gt = np.zeros((10, 30), np.uint32)
    gt[:, :10] = 3  # crowd person region
    gt[:, 20:] = 4  # sky
    segments = [
        {"id": 3, "category_id": 1, "iscrowd": 1, "area": 100},
        {"id": 4, "category_id": 2, "iscrowd": 0, "area": 100},
    ]
    pred = np.zeros_like(gt)
    pred[:, 20:] = 9  # sky, exact
    pred[:4, :10] = 10  # person inside the crowd: ignored
    pred[:4, 10:20] = 11  # person on VOID: ignored
    pred[6:, :10] = 12  # sky inside the person crowd: other category, a false positive
    preds = [{"id": i, "category_id": c} for i, c in ((9, 2), (10, 1), (11, 1), (12, 2))]
    stat = _stat(gt, segments, pred, preds)
    assert (stat[1].tp, stat[1].fp, stat[1].fn) == (0, 0, 0)  # crowd GT is never a FN
    assert (stat[2].tp, stat[2].fp, stat[2].fn) == (1, 1, 0)
    summary = stat.summary(CATEGORIES)
    assert summary["per_class"]["2"]["pq"] == pytest.approx(1.0 / 1.5)
    assert summary["Things"]["n"] == 0 and summary["per_class"]["1"]["pq"] == 0.0


def test_prediction_errors_are_reported():
    gt = np.ones((4, 4), np.uint32)
    seg = [{"id": 1, "category_id": 1, "area": 16}]
    with pytest.raises(InputError, match="not in its JSON"):
        _stat(gt, seg, np.full((4, 4), 2), [])
    with pytest.raises(InputError, match="not in its PNG"):
        extra = [{"id": 2, "category_id": 1}, {"id": 3, "category_id": 1}]
        _stat(gt, seg, np.full((4, 4), 2), extra)
    with pytest.raises(InputError, match="unknown category_id"):
        _stat(gt, seg, np.full((4, 4), 2), [{"id": 2, "category_id": 77}])
    with pytest.raises(InputError, match="differ|prediction is"):
        _stat(gt, seg, np.full((4, 5), 2), [{"id": 2, "category_id": 1}])


def test_missing_image_prediction_is_an_error(sample, tmp_path):
    pred = json.loads(sample["pred_json"].read_text())
    pred["annotations"] = pred["annotations"][:1]
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    with pytest.raises(InputError, match="no prediction"):
        evaluate_panoptic(sample["gt_json"], None, tmp_path / "pred.json", sample["pred_dir"])


def test_reader_areas_match_the_json_and_ids_round_trip(sample, tmp_path):
    dataset = load_coco_panoptic(sample["gt_json"])
    assert dataset.png_dir == sample["gt_dir"] and len(dataset.categories) == 133
    for image_id in dataset.annotations:
        masks, infos = dataset.masks(image_id)
        assert masks.shape[0] == len(infos) and masks.dtype == bool
        assert [int(m.sum()) for m in masks] == [s["area"] for s in infos]
        assert not (masks.sum(0) > 1).any()  # panoptic segments never overlap
    ids = dataset.read_ids(142238)
    assert ids.dtype == np.uint32 and ids.shape == (427, 640)
    np.testing.assert_array_equal(rgb2id(id2rgb(ids)), ids)
    write_panoptic_png(tmp_path / "x.png", ids)
    np.testing.assert_array_equal(read_panoptic_png(tmp_path / "x.png"), ids)
    assert rgb2id(np.array([[[1, 2, 3]]], np.uint8))[0, 0] == 1 + 2 * 256 + 3 * 65536
    with pytest.raises(InputError):
        load_coco_panoptic(sample["gt_json"], tmp_path / "missing")


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_rgb_id_png_reader_equals_pillow(tmp_path, mode):
    """The fast path (RGB, RGBA; Pillow writes their rows with mixed filters, Paeth among
    them), into a new array or this thread's reused buffer, and the Pillow fallback (palette)
    give panopticapi's ids."""
    from PIL import Image

    from pixelground.eval.datasets.png_decode import decode_rgb_words

    rng = np.random.default_rng(5)
    ids = np.zeros((70, 90), dtype=np.uint32)
    for _ in range(8):
        y, x = rng.integers(0, 60), rng.integers(0, 80)
        ids[y : y + rng.integers(4, 30), x : x + rng.integers(4, 40)] = rng.integers(1, 2**24)
    ids[::7, ::5] = rng.integers(0, 2**24, ids[::7, ::5].shape)  # busy rows too
    image = Image.fromarray(id2rgb(ids))
    if mode == "RGBA":
        image.putalpha(Image.fromarray(rng.integers(0, 256, (70, 90)).astype(np.uint8)))
    elif mode == "P":
        ids = ids * 0 + (ids % 3) * 0x010101  # three gray ids: an exact palette
        image = Image.fromarray(id2rgb(ids)).convert("P", palette=Image.Palette.ADAPTIVE)
    image.save(tmp_path / "ids.png")
    with Image.open(tmp_path / "ids.png") as reference:
        expected = rgb2id(np.asarray(reference.convert("RGB")))
        pixels = np.asarray(reference)
    assert np.array_equal(read_panoptic_png(tmp_path / "ids.png"), expected)
    assert np.array_equal(expected, ids)
    data = (tmp_path / "ids.png").read_bytes()
    if mode == "P":
        assert decode_rgb_words(data) is None
        return
    fast, reused = decode_rgb_words(data), decode_rgb_words(data, reuse="test ids")
    assert np.array_equal(fast, rgb2id(pixels)) and np.array_equal(reused, fast)
    assert np.shares_memory(reused, decode_rgb_words(data, reuse="test ids"))
    assert np.array_equal(read_panoptic_png(tmp_path / "ids.png", reuse="test ids"), expected)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (37, 53), (3, 70000)])
def test_pair_counts_equal_panopticapi_unique(shape):
    """Counting over runs gives panopticapi's ``np.unique(gt * OFFSET + pred)`` counts, on
    busy ids (every pixel a run), constant rows, ids up to 2**24 - 1 (lengths packed below
    the keys) and beyond, and rows of 2**16 pixels or more (an argsort of the keys)."""
    from pixelground.eval.metrics.panoptic_pairs import pair_counts

    rng = np.random.default_rng(sum(shape))
    for high in (2, 5, 2**24, 2**30):
        gt = rng.integers(0, high, shape).astype(np.uint32)
        pred = rng.integers(0, high, shape).astype(np.uint32)
        gt[: shape[0] // 2] = high - 1
        joint = gt.astype(np.uint64) * 256**3 + pred.astype(np.uint64)
        labels, counts = np.unique(joint, return_counts=True)
        expected = {
            (int(label) // 256**3, int(label) % 256**3): int(count)
            for label, count in zip(labels, counts, strict=True)
        }
        assert pair_counts(gt, pred) == expected
    empty = np.zeros((300, 300), dtype=np.uint32)  # one run of 90,000 pixels without row ends
    assert pair_counts(empty, empty) == {(0, 0): 90000}


def test_truncated_rgb_id_png_is_a_clear_error(tmp_path):
    """A cut RGB-id PNG fails in the fast decoder, goes to Pillow and ends as an InputError."""
    from PIL import Image

    from pixelground.core.errors import InputError

    ids = np.arange(40 * 30, dtype=np.uint32).reshape(40, 30) * 977
    Image.fromarray(id2rgb(ids)).save(tmp_path / "ids.png")
    data = (tmp_path / "ids.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read panoptic PNG"):
        read_panoptic_png(tmp_path / "cut.png")


def _id_map(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    ids = np.zeros(shape, dtype=np.uint32)
    for _ in range(10):
        y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        ids[y : y + rng.integers(3, 30), x : x + rng.integers(3, 40)] = rng.integers(1, 2**24)
    ids[::9, ::4] = rng.integers(0, 2**24, ids[::9, ::4].shape)  # busy rows
    return ids


@pytest.mark.parametrize("modes", [("RGB", "RGB"), ("RGBA", "RGB"), ("RGB", "RGBA")])
def test_pair_counts_straight_from_the_pngs_equal_the_id_maps(tmp_path, modes):
    """The C path (rows of both PNGs unfiltered side by side, split into runs) gives the
    counts of the id maps; anything it cannot take is None (the caller reads the maps)."""
    from PIL import Image

    from pixelground.eval.metrics.panoptic_pairs import pair_counts, png_pair_counts

    rng = np.random.default_rng(len(modes[0]) + 2 * len(modes[1]))
    files = []
    for mode, name in zip(modes, ("gt", "pred"), strict=True):
        ids = _id_map(rng, (57, 83))
        image = Image.fromarray(id2rgb(ids))
        if mode == "RGBA":
            image.putalpha(Image.fromarray(rng.integers(0, 256, (57, 83)).astype(np.uint8)))
        image.save(tmp_path / f"{name}.png")
        files.append((tmp_path / f"{name}.png").read_bytes())
        assert np.array_equal(read_panoptic_png(tmp_path / f"{name}.png"), ids)
    expected = pair_counts(*(read_panoptic_png(tmp_path / f"{n}.png") for n in ("gt", "pred")))
    assert png_pair_counts(*files) == expected and len(expected) > 40
    Image.fromarray(id2rgb(_id_map(rng, (57, 84)))).save(tmp_path / "wider.png")
    Image.fromarray(np.zeros((57, 83), np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(np.zeros((1, 70000, 3), np.uint8)).save(tmp_path / "wide.png")
    wide = (tmp_path / "wide.png").read_bytes()
    for other in ("wider", "gray"):
        assert png_pair_counts(files[0], (tmp_path / f"{other}.png").read_bytes()) is None
    assert png_pair_counts(wide, wide) is None  # runs of 2^16 pixels: the id-map path
    assert png_pair_counts(files[0], files[1][: len(files[1]) // 2]) is None


def test_damaged_or_misfit_prediction_pngs_are_clear_errors(sample, tmp_path):
    """Through evaluate_panoptic: a cut prediction PNG and one of another size."""
    from PIL import Image

    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    names = sorted(p.name for p in sample["pred_dir"].glob("*.png"))
    for name in names:
        (pred_dir / name).write_bytes((sample["pred_dir"] / name).read_bytes())
    data = (pred_dir / names[0]).read_bytes()
    (pred_dir / names[0]).write_bytes(data[: len(data) // 2])
    args = (sample["gt_json"], sample["gt_dir"], sample["pred_json"], pred_dir)
    with pytest.raises(InputError, match="cannot read panoptic PNG"):
        evaluate_panoptic(*args)
    ids = read_panoptic_png(sample["pred_dir"] / names[0])
    Image.fromarray(id2rgb(ids[:, :-1])).save(pred_dir / names[0])
    with pytest.raises(InputError, match="prediction is"):
        evaluate_panoptic(*args)


def test_threads_on_many_images_give_the_one_thread_figures(sample, tmp_path):
    """12 images (the sample 6 times under new ids): enough for decoding threads."""
    from pixelground.eval.metrics.panoptic import IMAGES_PER_THREAD

    paths = []
    for key, name in (("gt", "gt"), ("pred", "pred")):
        data = json.loads(sample[f"{key}_json"].read_text())
        (tmp_path / name).mkdir()
        copies = []
        for k in range(6):
            for annotation in data["annotations"]:
                copy = {**annotation, "image_id": f"{k}_{annotation['image_id']}"}
                copy["file_name"] = f"{k}_{annotation['file_name']}"
                (tmp_path / name / copy["file_name"]).symlink_to(
                    sample[f"{key}_dir"] / annotation["file_name"]
                )
                copies.append(copy)
        data["annotations"] = copies
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        paths += [tmp_path / f"{name}.json", tmp_path / name]
    assert 12 // IMAGES_PER_THREAD >= 3
    one, three = evaluate_panoptic(*paths, workers=1), evaluate_panoptic(*paths, workers=3)
    assert one == three and one["num_images"] == 12
    golden = json.loads(sample["golden"].read_text())
    _assert_matches(one, golden["result_pred_vs_gt"])
