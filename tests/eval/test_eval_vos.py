"""VOS metrics: parity with davis2017-evaluation golden outputs, protocols, DAVIS readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from davis_reference import reference_f, reference_j
from PIL import Image
from scipy import ndimage

from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle, encode_rle
from pixelground.eval.datasets.davis import (
    find_sequence_dirs,
    read_davis_frame,
    read_davis_ground_truth,
    read_davis_sequence,
    write_davis_frame,
)
from pixelground.eval.metrics.vos import (
    bound_radius,
    boundary_f_measure,
    boundary_map,
    db_statistics,
    evaluate_vos,
    pairwise_scores,
    region_similarity,
)
from pixelground.eval.metrics.vos_protocols import semi_supervised_scores, unsupervised_scores

ATOL = 1e-6


@pytest.fixture(scope="module")
def golden(shared_data: Path) -> dict:
    return json.loads((shared_data / "golden" / "davis_blackswan_osvos.json").read_text())


@pytest.fixture(scope="module")
def swan(shared_data: Path) -> dict:
    gt_root = shared_data / "davis2016_blackswan" / "Annotations" / "480p"
    preds = shared_data / "davis2017eval_predictions"
    gt = read_davis_ground_truth(gt_root / "blackswan")
    osvos = read_davis_sequence(preds / "semi-supervised" / "osvos" / "blackswan", void_label=None)
    return {"gt_root": gt_root, "preds": preds, "gt": gt, "osvos": osvos}


def test_davis2016_and_osvos_are_read_as_one_object(swan):
    gt, osvos = swan["gt"], swan["osvos"]
    assert gt.labels.shape == (50, 480, 854) and gt.num_objects == 1
    assert gt.frame_ids[0] == "00000" and gt.frame_ids[-1] == "00049"
    assert not gt.void.any()
    assert osvos.num_objects == 1
    assert gt.masks.shape == (1, 50, 480, 854) and gt.masks.dtype == bool


def test_per_frame_j_and_f_match_official(swan, golden):
    gt, pred = swan["gt"].masks[0], swan["osvos"].masks[0]
    expected = golden["osvos_all_frames"]
    j = region_similarity(gt, pred)
    f = boundary_f_measure(gt, pred)
    np.testing.assert_allclose(j, expected["J_per_frame"], rtol=0, atol=ATOL)
    # Same boundary pixels counted as the official dilation: bit-identical, not just close.
    assert f.tolist() == expected["F_per_frame"]
    assert abs(j.mean() - expected["J_mean"]) < ATOL
    assert abs(f.mean() - expected["F_mean"]) < ATOL
    assert abs((j.mean() + f.mean()) / 2 - expected["JF"]) < ATOL


def test_semi_supervised_protocol_matches_official(swan, golden):
    result = evaluate_vos(
        swan["gt_root"], swan["preds"] / "semi-supervised" / "osvos", protocol="semi"
    )
    expected = golden["osvos_semi_supervised_protocol"]
    for ours, theirs in [("J", "J_M"), ("J_recall", "J_R"), ("J_decay", "J_D"), ("F", "F_M")]:
        assert abs(result[ours] - expected[theirs]) < ATOL, ours
    for ours, theirs in [("F_recall", "F_R"), ("F_decay", "F_D"), ("JF", "JF_mean")]:
        assert abs(result[ours] - expected[theirs]) < ATOL, ours
    entry = result["per_object"]["blackswan_1"]
    assert entry["frames"] == golden["frames"][1:-1]
    np.testing.assert_allclose(
        entry["J_per_frame"], golden["osvos_all_frames"]["J_per_frame"][1:-1], atol=ATOL
    )
    json.dumps(result, allow_nan=False)  # JSON-ready


@pytest.mark.parametrize(
    "case", ["both_empty", "gt_empty_pred_nonempty", "gt_nonempty_pred_empty", "identical",
             "shift_right_5px", "shift_down_20px"],
)  # fmt: skip
def test_edge_cases_match_official(swan, golden, case):
    gt = swan["gt"].masks[0, 10]
    empty = np.zeros_like(gt)
    annotation, segmentation = {
        "both_empty": (empty, empty),
        "gt_empty_pred_nonempty": (empty, gt),
        "gt_nonempty_pred_empty": (gt, empty),
        "identical": (gt, gt),
        "shift_right_5px": (gt, np.roll(gt, 5, axis=1)),
        "shift_down_20px": (gt, np.roll(gt, 20, axis=0)),
    }[case]
    expected = golden["edge_cases"][case]
    assert region_similarity(annotation, segmentation) == pytest.approx(expected["J"], abs=ATOL)
    assert boundary_f_measure(annotation, segmentation) == pytest.approx(expected["F"], abs=ATOL)


def test_bound_radius_is_eight_pixels_at_480p():
    assert bound_radius(480, 854) == 8
    assert bound_radius(480, 854, 3) == 3
    with pytest.raises(InputError):
        bound_radius(480, 854, 2.5)


def test_boundary_map_matches_seg2bmap_at_image_borders():
    rng = np.random.default_rng(0)
    masks = rng.random((4, 9, 13)) > 0.5
    from davis_reference import seg2bmap

    expected = np.stack([seg2bmap(m) for m in masks])
    np.testing.assert_array_equal(boundary_map(masks), expected)


@pytest.mark.parametrize(
    ("shape", "bound_th"),
    [((12, 48, 64), 0.008), ((12, 48, 64), 0.05), ((12, 48, 64), 3), ((6, 17, 63), 0.1),
     ((6, 9, 129), 2), ((4, 3, 1), 1), ((4, 1, 5), 1), ((5, 50, 100), 20)],
)  # fmt: skip
def test_fast_f_equals_per_frame_dilation_on_random_masks(shape, bound_th):
    # Widths around the 64-pixel word size, one-row and one-column frames, masks touching the
    # borders, empty frames, void pixels, radii from 1 to 20: always the official numbers.
    rng = np.random.default_rng(sum(shape))
    base = ndimage.binary_opening(rng.random(shape) > 0.45, np.ones((1, 2, 2)))
    pred = np.roll(base, 2, axis=2) ^ (rng.random(shape) > 0.97)
    pred[1] = False  # empty prediction frame
    base[2] = False  # empty GT frame
    base[3] = pred[3] = False  # both empty
    void = rng.random(shape) > 0.9
    for v in (None, void):
        j, f = pairwise_scores([base], [pred], v, bound_th, pairs="diagonal")
        for t in range(shape[0]):
            vt = None if v is None else v[t]
            assert f[0, t] == reference_f(base[t], pred[t], vt, bound_th)
            assert j[0, t] == reference_j(base[t], pred[t], vt)


def test_db_statistics_bins_and_recall():
    values = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    mean, recall, decay = db_statistics(values)
    assert mean == pytest.approx(0.55)
    assert recall == pytest.approx(0.5)  # 5 of 10 frames; the frame at exactly 0.5 is not > 0.5
    # bins at round(linspace(1, 10, 5)) - 1 = [0, 2, 5, 7, 9]: [0:3] and [7:10]
    assert decay == pytest.approx(values[0:3].mean() - values[7:10].mean())
    with pytest.raises(InputError):
        db_statistics([])


@pytest.mark.slow
def test_unsupervised_rvos_matches_straightforward_matching(swan):
    gt = swan["gt"]
    rvos = read_davis_sequence(
        swan["preds"] / "unsupervised" / "rvos" / "blackswan", void_label=None
    )
    assert rvos.num_objects == 20  # ids 7 and 11 never occur but still count as proposals
    gt_mask = gt.masks[0]
    inter = np.array([(gt_mask & (rvos.labels == k)).sum((1, 2)) for k in range(1, 21)])
    union = np.array([(gt_mask | (rvos.labels == k)).sum((1, 2)) for k in range(1, 21)])
    ious = np.where(union == 0, 1.0, inter / np.maximum(union, 1))  # (20 proposals, 50 frames)
    j_all, f_all = pairwise_scores(gt.objects, rvos.objects, pairs="all")
    np.testing.assert_allclose(j_all[:, 0], ious, rtol=0, atol=ATOL)
    best = int(np.argmax((j_all[:, 0].mean(1) + f_all[:, 0].mean(1)) / 2))  # 1 object: argmax
    result = evaluate_vos(swan["gt_root"], swan["preds"] / "unsupervised" / "rvos", "unsupervised")
    entry = result["per_object"]["blackswan_1"]
    assert entry["proposal_id"] == best + 1
    np.testing.assert_allclose(entry["J_per_frame"], ious[best], rtol=0, atol=ATOL)
    for t in (0, 17, 49):  # spot-check F of the matched proposal with the slow reference
        assert entry["F_per_frame"][t] == reference_f(gt_mask[t], rvos.labels[t] == best + 1)
    assert result["J"] == pytest.approx(ious[best].mean(), abs=ATOL)
    assert result["JF"] == pytest.approx((result["J"] + result["F"]) / 2)


def test_unsupervised_recovers_permuted_proposals_and_pads():
    rng = np.random.default_rng(2)
    gt = np.zeros((3, 5, 30, 40), dtype=bool)
    for k in range(3):
        gt[k, :, 2 + 9 * k : 9 + 9 * k, 5 : 10 + 8 * k] = True
    proposals = np.concatenate([gt[[2, 0]], rng.random((2, 5, 30, 40)) > 0.98])
    scores = unsupervised_scores(gt, proposals)
    pairs = dict(zip(scores.gt_index.tolist(), scores.proposal_index.tolist(), strict=True))
    assert pairs[0] == 1 and pairs[2] == 0 and pairs[1] in (2, 3)
    few = unsupervised_scores(gt, gt[:1])  # fewer proposals than objects: padded with empties
    assert sorted(few.gt_index.tolist()) == [0, 1, 2]
    assert np.sort(few.j.mean(1)).tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(InputError):
        unsupervised_scores(gt, np.zeros((21, 5, 30, 40), bool))
    with pytest.raises(InputError, match="no object"):
        unsupervised_scores(gt[:0], gt)


@pytest.fixture(scope="module")
def sav(shared_data: Path) -> np.ndarray:
    data = json.loads((shared_data / "sav_example" / "sav_000001_manual.json").read_text())
    frames = [0, 6, 8, 113]  # objects 0, 2 and 3 are absent on some of these
    return np.stack([decode_rle(data["masklet"][t]) for t in frames], axis=1)  # (5, T, H, W)


def test_multi_object_semi_supervised_on_sav_masklets(sav):
    eroded = ndimage.binary_erosion(sav, np.ones((1, 1, 7, 7)))
    shifted = np.roll(sav, (6, -4), axis=(2, 3))
    pred = np.where(np.arange(5)[:, None, None, None] % 2 == 0, eroded, shifted)
    j, f = semi_supervised_scores(sav, pred)
    assert j.shape == f.shape == (5, 4)
    for k in range(5):
        for t in range(4):
            assert j[k, t] == pytest.approx(reference_j(sav[k, t], pred[k, t]), abs=1e-12)
            assert f[k, t] == reference_f(sav[k, t], pred[k, t])
    assert j[3, 0] == f[3, 0] == 1.0  # object 3 absent in GT and prediction on frame 0
    with pytest.raises(InputError):
        semi_supervised_scores(sav[:2], sav)  # more predicted objects than GT objects
    padded_j, _ = semi_supervised_scores(sav, sav[:4])
    assert padded_j[4].tolist() == [0.0] * 4  # missing object 5 scores as an empty prediction


def test_palette_reader_void_and_exclude_void(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt" / "seq", tmp_path / "pred" / "seq"
    frame = np.zeros((20, 30), np.uint8)
    frame[2:10, 2:10] = 1
    frame[12:18, 15:25] = 2
    frame[10, :] = 255  # void line
    for t in range(4):
        write_davis_frame(gt_dir / f"{t:05d}.png", frame)
        pred = frame.copy()
        pred[frame == 255] = 1  # predicting object 1 on the void line
        write_davis_frame(pred_dir / f"{t:05d}.png", pred)
    labels, void = read_davis_frame(gt_dir / "00000.png")
    assert void.sum() == 30 and labels.max() == 2 and labels[10].max() == 0
    official = evaluate_vos(tmp_path / "gt", tmp_path / "pred", "semi")
    excluded = evaluate_vos(tmp_path / "gt", tmp_path / "pred", "semi", exclude_void=True)
    assert excluded["J"] == 1.0 and excluded["F"] == 1.0
    assert official["per_object"]["seq_1"]["J"] == pytest.approx(64 / (64 + 30))
    assert official["per_object"]["seq_2"]["J"] == 1.0
    assert set(official["per_object"]) == {"seq_1", "seq_2"}
    assert len(official["per_object"]["seq_1"]["frames"]) == 2  # frames 1..-2 of 4


def test_folder_layouts_and_errors(tmp_path, swan):
    assert set(find_sequence_dirs(swan["gt_root"].parent.parent)) == {"blackswan"}
    single = find_sequence_dirs(swan["gt_root"] / "blackswan")
    assert single == {"blackswan": swan["gt_root"] / "blackswan"}
    (tmp_path / "seq").mkdir()
    write_davis_frame(tmp_path / "seq" / "00000.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="frame"):
        read_davis_sequence(tmp_path / "seq", frame_ids=["00000", "00001"])
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "seq" / "00001.png")
    with pytest.raises(InputError, match="palette or grayscale"):
        read_davis_frame(tmp_path / "seq" / "00001.png")
    with pytest.raises(InputError, match="protocol"):
        evaluate_vos(tmp_path, tmp_path, protocol="nope")
    with pytest.raises(InputError, match="no predictions"):
        evaluate_vos(swan["gt_root"], tmp_path, "semi")


def _write_mevis_fixture(root: Path, sav: np.ndarray) -> dict:
    """MeViS layout from SA-V masklets: 2 videos, 3 expressions; returns the GT unions."""
    frames = [f"{t:05d}" for t in range(sav.shape[1])]
    mask_dict = {
        str(k): [None if not m.any() else encode_rle(m)[0] for m in sav[k]] for k in range(5)
    }
    videos = {
        "vidA": {"frames": frames, "expressions": {
            "0": {"exp": "the two people", "obj_id": [0, 1], "anno_id": [0, 1]},
            "1": {"exp": "the late arrival", "obj_id": [3], "anno_id": [3]}}},
        "vidB": {"frames": frames, "expressions": {
            "0": {"exp": "anything", "obj_id": [2], "anno_id": [2]}}},
    }  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (root / "mask_dict.json").write_text(json.dumps(mask_dict))
    return {"vidA/0": sav[0] | sav[1], "vidA/1": sav[3], "vidB/0": sav[2]}


def test_mevis_protocol_per_expression(tmp_path, sav):
    truth = _write_mevis_fixture(tmp_path / "gt", sav)
    preds = {
        "vidA/0": ndimage.binary_erosion(truth["vidA/0"], np.ones((1, 5, 5))),
        "vidA/1": np.zeros_like(truth["vidA/1"]),  # never predicted
    }
    for key, masks in preds.items():
        for t, mask in enumerate(masks):
            path = tmp_path / "pred" / key / f"{t:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    result = evaluate_vos(tmp_path / "gt", tmp_path / "pred", "mevis")  # vidB has no folder
    per = result["per_expression"]
    assert set(per) == {"vidA_0", "vidA_1", "vidB_0"} and result["missing_videos"] == ["vidB"]
    gt, pred = truth["vidA/0"], preds["vidA/0"]
    j_ref = [reference_j(gt[t], pred[t]) for t in range(4)]
    assert per["vidA_0"]["J"] == pytest.approx(np.mean(j_ref), abs=ATOL)
    assert per["vidA_0"]["F_per_frame"][0] == reference_f(gt[0], pred[0])
    # object 3 only appears on the last frame: empty/empty frames score 1, the last 0
    assert per["vidA_1"]["J_per_frame"] == [1.0, 1.0, 1.0, 0.0]
    assert per["vidB_0"]["J"] == per["vidB_0"]["F"] == 0.0 and per["vidB_0"]["missing"]
    js = [per[k]["J"] for k in ("vidA_0", "vidA_1", "vidB_0")]
    assert result["J"] == pytest.approx(np.mean(js))
    assert result["JF"] == pytest.approx((result["J"] + result["F"]) / 2)
    assert result["num_expressions"] == 3


def test_mevis_protocol_reads_ref_youtube_vos_annotations(tmp_path, sav):
    root = tmp_path / "gt"
    frames = [f"{t:05d}" for t in range(3)]
    for t, name in enumerate(frames):
        labels = np.zeros(sav.shape[2:], np.uint8)
        for k in range(5):
            labels[sav[k, t]] = k + 1
        write_davis_frame(root / "Annotations" / "vid" / f"{name}.png", labels)
    exps = {"0": {"exp": "two objects", "obj_id": ["2", "3"]}}
    meta = {"videos": {"vid": {"frames": frames, "expressions": exps}}}
    (root / "meta_expressions.json").write_text(json.dumps(meta))
    labels = [read_davis_frame(root / "Annotations" / "vid" / f"{n}.png")[0] for n in frames]
    union = np.isin(np.stack(labels), [2, 3])
    for t, name in enumerate(frames):
        write_davis_frame(
            tmp_path / "pred" / "vid" / "0" / f"{name}.png", union[t].astype(np.uint8)
        )
    result = evaluate_vos(root, tmp_path / "pred", "mevis")
    assert result["J"] == 1.0 and result["F"] == 1.0
