"""gIoU / cIoU (LISA, GLaMM, Sa2VA) and ReLA's gRefCOCO metrics: hand-computed and cross-checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelground.core.errors import InputError
from pixelground.eval.metrics.grefer import grefer_scores
from pixelground.eval.metrics.refer import (
    ReferAccumulator,
    expression_iou,
    intersection_union,
    refer_scores,
)


def box(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


# --- an independent transcription of the official LISA/GLaMM loop (torch.histc), for parity ---
def _official_intersection_union(output, target, k=2, ignore_index=255):
    output = output.view(-1).clone()
    target = target.view(-1)
    output[target == ignore_index] = ignore_index
    intersection = output[output == target]
    area_i = torch.histc(intersection.float(), bins=k, min=0, max=k - 1)
    area_o = torch.histc(output.float(), bins=k, min=0, max=k - 1)
    area_t = torch.histc(target.float(), bins=k, min=0, max=k - 1)
    return area_i, area_o + area_t - area_i


def _official_lisa(preds, gts):
    inter_sum = union_sum = 0.0
    iou_sum = 0.0
    for pred, gt in zip(preds, gts, strict=True):
        i, u = _official_intersection_union(
            torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(gt.astype(np.int64))
        )
        acc = i / (u + 1e-5)
        acc[u == 0] += 1.0
        inter_sum += float(i[1])
        union_sum += float(u[1])
        iou_sum += float(acc[1])
    return iou_sum / (len(gts) + 1e-5), inter_sum / (union_sum + 1e-10)


def test_hand_computed_lisa():
    gt = box(10, 10, 0, 4, 0, 5)  # 20 px
    pred = box(10, 10, 0, 4, 0, 10)  # 40 px, I = 20, U = 40
    empty = np.zeros((10, 10), bool)
    result = refer_scores([pred, empty, empty], [gt, gt, empty])
    # IoUs 20/(40+1e-5), 0, 1 (both empty); cIoU = (20 + 0 + 0) / (40 + 20 + 0)
    expected_giou = (20 / (40 + 1e-5) + 0.0 + 1.0) / (3 + 1e-5)
    assert result["gIoU"] == pytest.approx(expected_giou, abs=1e-12)
    assert result["cIoU"] == pytest.approx(20 / (60 + 1e-10), abs=1e-12)
    assert [r["IoU"] for r in result["per_sample"]][2] == 1.0
    assert result["count"] == 3


def test_glamm_is_lisa():
    rng = np.random.default_rng(0)
    preds = [rng.random((9, 7)) > 0.5 for _ in range(5)]
    gts = [rng.random((9, 7)) > 0.5 for _ in range(5)]
    lisa = refer_scores(preds, gts, variant="lisa")
    glamm = refer_scores(preds, gts, variant="glamm")
    assert lisa["gIoU"] == glamm["gIoU"] and lisa["cIoU"] == glamm["cIoU"]


def test_matches_official_torch_loop_on_random_masks():
    rng = np.random.default_rng(1)
    for trial in range(20):
        n = int(rng.integers(1, 6))
        preds = [rng.random((13, 11)) > rng.random() for _ in range(n)]
        gts = [rng.random((13, 11)) > rng.random() for _ in range(n)]
        if trial % 5 == 0:  # both empty sometimes
            preds[0][:] = False
            gts[0][:] = False
        ours = refer_scores(preds, gts)
        giou, ciou = _official_lisa(preds, gts)
        assert ours["gIoU"] == pytest.approx(giou, abs=1e-6)
        assert ours["cIoU"] == pytest.approx(ciou, abs=1e-6)
        assert 0.0 <= ours["gIoU"] <= 1.0 and 0.0 <= ours["cIoU"] <= 1.0


def test_ignore_pixels_255_are_excluded_like_intersection_and_union_gpu():
    gt = np.zeros((6, 6), np.uint8)
    gt[:3, :3] = 1
    gt[3:, :] = 255  # ignore region
    pred = np.zeros((6, 6), bool)
    pred[:, :3] = True  # 9 px on target + 9 px in the ignore region
    assert intersection_union(pred, gt) == (9, 9)
    i, u = _official_intersection_union(
        torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(gt.astype(np.int64))
    )
    assert (float(i[1]), float(u[1])) == (9.0, 9.0)
    separate = intersection_union(pred, gt == 1, ignore=gt == 255)
    assert separate == (9, 9)


def test_sa2va_skips_missing_predictions_in_ciou_only():
    gt = box(8, 8, 0, 4, 0, 4)  # 16 px
    pred = box(8, 8, 0, 4, 0, 2)  # I = 8, U = 16
    lisa = refer_scores([pred, None], [gt, gt], variant="lisa")
    sa2va = refer_scores([pred, None], [gt, gt], variant="sa2va")
    # LISA: the missing prediction is an empty mask: cIoU = 8 / (16 + 16)
    assert lisa["cIoU"] == pytest.approx(8 / 32, abs=1e-9)
    # Sa2VA: skipped in cIoU (8 / 16), counted as 0 in gIoU with no count epsilon
    assert sa2va["cIoU"] == pytest.approx(8 / 16, abs=1e-9)
    assert sa2va["gIoU"] == pytest.approx((8 / (16 + 1e-5)) / 2, abs=1e-12)
    assert lisa["gIoU"] == pytest.approx((8 / (16 + 1e-5)) / (2 + 1e-5), abs=1e-12)
    # an existing but empty prediction is scored normally by Sa2VA too
    empty = refer_scores([pred, np.zeros((8, 8), bool)], [gt, gt], variant="sa2va")
    assert empty["cIoU"] == pytest.approx(8 / 32, abs=1e-9)


def test_expression_iou_and_errors():
    assert expression_iou(0, 0) == 1.0
    assert expression_iou(5, 10) == pytest.approx(5 / (10 + 1e-5))
    with pytest.raises(InputError, match="differ in size"):
        intersection_union(np.zeros((3, 3)), np.zeros((4, 4)))
    with pytest.raises(InputError, match="no expressions"):
        ReferAccumulator().result()
    with pytest.raises(InputError, match="unknown refer variant"):
        ReferAccumulator(variant="other")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="2 predictions for 1"):
        refer_scores([None, None], [np.zeros((2, 2))])


def test_permutation_invariance_and_perfect_predictions():
    rng = np.random.default_rng(2)
    gts = [rng.random((10, 10)) > 0.6 for _ in range(6)]
    perfect = refer_scores(gts, gts)
    assert perfect["cIoU"] == pytest.approx(1.0, abs=1e-9)
    assert perfect["gIoU"] == pytest.approx(1.0, abs=1e-5)
    preds = [rng.random((10, 10)) > 0.5 for _ in range(6)]
    order = rng.permutation(6)
    a = refer_scores(preds, gts)
    b = refer_scores([preds[i] for i in order], [gts[i] for i in order])
    assert a["gIoU"] == pytest.approx(b["gIoU"]) and a["cIoU"] == pytest.approx(b["cIoU"])


# ------------------------------------ ReLA / gRefCOCO ------------------------------------------
def _official_rela(samples):
    """Transcription of ReLA's ReferEvaluator.evaluate for one source (fractions)."""
    acc_i = acc_u = 0
    acc_iou = 0.0
    pr = {0.7: 0, 0.8: 0, 0.9: 0}
    nt = {"TP": 0, "TN": 0, "FP": 0, "FN": 0}
    total = not_empty = empty = 0
    for pred, gt, gt_nt, pred_nt in samples:
        i = int(np.logical_and(pred, gt).sum())
        u = int(np.logical_or(pred, gt).sum())
        if gt_nt:
            empty += 1
            if pred_nt:
                nt["TP"] += 1
                acc_iou += 1
            else:
                nt["FN"] += 1
                acc_u += u
        else:
            if pred_nt:
                nt["FP"] += 1
                i = 0
            else:
                nt["TN"] += 1
            this = 0.0 if u == 0 else i / u
            acc_iou += this
            acc_i += i
            acc_u += u
            not_empty += 1
            for t in pr:
                pr[t] += this >= t
        total += 1
    out = {"gIoU": acc_iou / total, "cIoU": acc_i / acc_u}
    out["T-acc"] = nt["TN"] / (nt["TN"] + nt["FP"]) if empty else 0
    out["N-acc"] = nt["TP"] / (nt["TP"] + nt["FN"]) if empty else 0
    for t in pr:
        out[f"Pr@{t:.1f}"] = pr[t] / not_empty
    return out


def test_rela_hand_computed():
    h = w = 10
    gt = box(h, w, 0, 5, 0, 10)  # 50 px
    good = box(h, w, 0, 5, 0, 9)  # IoU 45/50 = 0.9
    empty = np.zeros((h, w), bool)
    stray = box(h, w, 8, 10, 0, 10)  # 20 px
    result = grefer_scores(
        [good, empty, empty, stray, empty],
        [gt, gt, empty, empty, empty],
    )
    # 0: TN IoU .9 ; 1: FP (pred empty -> no-target) IoU 0 ; 2: TP IoU 1 ; 3: FN IoU 0, U=20
    # 4: TP IoU 1
    assert result["confusion"] == {"TP": 2, "TN": 1, "FP": 1, "FN": 1}
    assert result["gIoU"] == pytest.approx((0.9 + 0 + 1 + 0 + 1) / 5)
    assert result["cIoU"] == pytest.approx(45 / (50 + 50 + 20))
    assert result["N-acc"] == pytest.approx(2 / 3)
    assert result["T-acc"] == pytest.approx(1 / 2)
    assert result["Pr@0.9"] == pytest.approx(1 / 2)  # 0.9 >= 0.9 on 1 of 2 targeted samples
    assert result["Pr@0.7"] == pytest.approx(1 / 2)


def test_rela_explicit_no_target_flags_and_parity_with_transcription():
    rng = np.random.default_rng(3)
    samples = []
    for k in range(40):
        gt_nt = k % 4 == 0
        gt = np.zeros((8, 8), bool) if gt_nt else rng.random((8, 8)) > 0.5
        pred = rng.random((8, 8)) > rng.random()
        pred_nt = bool(rng.random() < 0.3)
        samples.append((pred, gt, gt_nt, pred_nt))
    ours = grefer_scores(
        [s[0] for s in samples],
        [s[1] for s in samples],
        gt_no_target=[s[2] for s in samples],
        pred_no_target=[s[3] for s in samples],
    )
    official = _official_rela(samples)
    for key, value in official.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


def test_rela_accuracies_are_none_when_undefined():
    gt = box(4, 4, 0, 2, 0, 2)
    result = grefer_scores([gt], [gt])  # no no-target sample: N-acc undefined, T-acc defined
    assert result["N-acc"] is None and result["T-acc"] == 1.0
    empty = np.zeros_like(gt)
    only_nt = grefer_scores([empty], [empty], gt_no_target=[True], pred_no_target=[True])
    assert only_nt["N-acc"] == 1.0 and only_nt["T-acc"] is None
    from pixelground.eval.report import format_value, to_json

    assert format_value("N-acc", result["N-acc"]) == "n/a"
    assert '"N-acc": null' in to_json(result)
    assert result["gIoU"] == 1.0 and result["Pr@0.9"] == 1.0
