"""Speed of the evaluation metrics on the real samples in ../shared/data.

J&F: DAVIS blackswan, OSVOS against the GT (50 frames, 480x854). pixelground's J and F against
a faithful re-implementation of davis2017-evaluation's per-frame method, kept here and not in
the package: ``db_eval_iou`` plus ``f_measure`` (``seg2bmap`` of both masks, a ``disk(r)``
dilation of both boundary maps, then the matched counts), one frame at a time. The official
code dilates with ``cv2.dilate``; that row is measured when OpenCV is importable. The
``scipy.ndimage.binary_dilation`` row (same result, slower) always runs. Both must give the
same per-frame numbers as pixelground, bit for bit.

PQ: ``evaluate_panoptic`` on the panopticapi sample (2 COCO images), files read each time.

Times are CPU seconds of this process (``time.process_time``, best of ``--repeats`` runs), so a
busy shared machine does not distort the ratios; OpenCV is limited to one thread so its CPU
time is not inflated by its thread pool (all code here is single-threaded).

Run from the repository root:

    python benchmarks/eval_speed.py [--repeats 5] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from pixelground.eval.datasets.davis import read_davis_ground_truth, read_davis_sequence
from pixelground.eval.metrics.panoptic import evaluate_panoptic
from pixelground.eval.metrics.vos import evaluate_vos, pairwise_scores

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ---- the official per-frame method (davis2017-evaluation metrics.py), re-implemented ----


def _disk(radius: int) -> np.ndarray:
    grid = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(grid, grid)
    return (xx**2 + yy**2 <= radius**2).astype(np.uint8)


def _seg2bmap(seg: np.ndarray) -> np.ndarray:
    seg = seg.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def _official_j(annotation: np.ndarray, segmentation: np.ndarray) -> float:
    void = np.zeros_like(segmentation)
    inters = np.sum((segmentation & annotation) & np.logical_not(void))
    union = np.sum((segmentation | annotation) & np.logical_not(void))
    return 1.0 if np.isclose(union, 0) else inters / union


def _official_f(fg: np.ndarray, gt: np.ndarray, dilate: Callable, bound_th=0.008) -> float:
    void = np.zeros_like(fg).astype(bool)
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(fg.shape))
    fg_boundary = _seg2bmap(fg * np.logical_not(void))
    gt_boundary = _seg2bmap(gt * np.logical_not(void))
    structure = _disk(int(bound_pix))
    fg_dil = dilate(fg_boundary.astype(np.uint8), structure)
    gt_dil = dilate(gt_boundary.astype(np.uint8), structure)
    gt_match = gt_boundary * fg_dil
    fg_match = fg_boundary * gt_dil
    n_fg, n_gt = np.sum(fg_boundary), np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _scipy_dilate(image: np.ndarray, structure: np.ndarray) -> np.ndarray:
    return ndimage.binary_dilation(image, structure.astype(bool)).astype(np.uint8)


def _official_jf(gt: np.ndarray, pred: np.ndarray, dilate: Callable) -> tuple[list, list]:
    j = [_official_j(gt[t], pred[t]) for t in range(len(gt))]
    f = [_official_f(pred[t], gt[t], dilate) for t in range(len(gt))]
    return j, f


# ---- harness ----


def _best_time(function: Callable, repeats: int) -> tuple[float, object]:
    result = function()  # warm-up (imports, caches)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        result = function()
        times.append(time.process_time() - start)
    return min(times), result


def _jf_rows(data: Path, repeats: int) -> list[tuple[str, str, float, str]]:
    gt_dir = data / "davis2016_blackswan" / "Annotations" / "480p" / "blackswan"
    pred_dir = data / "davis2017eval_predictions" / "semi-supervised" / "osvos" / "blackswan"
    gt = read_davis_ground_truth(gt_dir).masks[0]
    pred = read_davis_sequence(pred_dir, void_label=None).masks[0]
    frames = len(gt)
    ours_time, (j_ours, f_ours) = _best_time(
        lambda: pairwise_scores([gt], [pred], pairs="diagonal"), repeats
    )
    rows = [("J&F, pixelground (bit-packed boundaries)", "frames/s", frames / ours_time, "")]
    dilations = [("scipy binary_dilation", _scipy_dilate)]
    try:
        import cv2

        cv2.setNumThreads(1)
        dilations.insert(0, (f"cv2.dilate {cv2.__version__}, as official", cv2.dilate))
    except ImportError:
        rows.append(("J&F, official per-frame with cv2.dilate", "frames/s", float("nan"), "no cv2"))
    for name, dilate in dilations:
        ref_time, (j_ref, f_ref) = _best_time(
            lambda dilate=dilate: _official_jf(gt, pred, dilate), max(1, repeats // 2)
        )
        same = j_ours[0].tolist() == j_ref and f_ours[0].tolist() == f_ref
        note = f"ours {ref_time / ours_time:.1f}x faster; per-frame J,F identical: {same}"
        rows.append((f"J&F, official per-frame with {name}", "frames/s", frames / ref_time, note))
    root = data / "davis2016_blackswan" / "Annotations" / "480p"
    results = data / "davis2017eval_predictions" / "semi-supervised" / "osvos"
    e2e_time, _ = _best_time(lambda: evaluate_vos(root, results, "semi"), repeats)
    rows.append(("evaluate_vos semi, PNG reading included", "frames/s", 48 / e2e_time, ""))
    return rows


def _pq_row(data: Path, repeats: int) -> tuple[str, str, float, str]:
    sample = data / "panopticapi_sample"
    pred = data / "golden" / "pq_pred"
    elapsed, result = _best_time(
        lambda: evaluate_panoptic(
            sample / "panoptic_examples.json",
            sample / "panoptic_examples",
            pred / "panoptic_pred.json",
            pred / "panoptic_pred",
        ),
        repeats,
    )
    note = f"PQ All = {result['All']['pq']:.4f}"
    return ("PQ, evaluate_panoptic (PNG + JSON reading included)", "images/s", 2 / elapsed, note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    rows = [*_jf_rows(args.data, args.repeats), _pq_row(args.data, args.repeats)]
    print("| measurement | unit | rate | note |")
    print("|---|---|---:|---|")
    for name, unit, rate, note in rows:
        print(f"| {name} | {unit} | {rate:.1f} | {note} |")


if __name__ == "__main__":
    main()
