"""Faithful re-implementations of the official evaluation code, for benchmarks/eval_speed.py.

Kept here, not in the package: they exist only to time the official method and to check that
pixelground gives the same numbers. Each function follows its source step by step (reading
PNGs with PIL into float arrays, separating objects by comparing with each label, per-frame
metrics) so that its cost is the official cost:

* davis2017-evaluation (davisvideochallenge/davis2017-evaluation): ``DAVIS._get_all_elements``
  / ``get_all_masks``, ``Results.read_masks``, ``DAVISEvaluation._evaluate_semisupervised`` /
  ``_evaluate_unsupervised`` / ``evaluate``, ``metrics.db_eval_iou`` / ``db_eval_boundary`` /
  ``f_measure`` / ``_seg2bmap`` (``cv2.dilate`` with ``skimage.morphology.disk``; without
  OpenCV, scipy's ``binary_dilation`` does the same dilation, slower), ``utils.db_statistics``.
* MeViS ``tools/eval_mevis.py`` ``eval_queue``, which reads predictions with
  ``cv2.imread(..., GRAYSCALE)`` (PIL's ``convert("L")`` without OpenCV) and uses the same
  metrics: in one process, and as shipped, over a pool of processes.
* panopticapi ``pq_compute_single_core`` (one core), and ``pq_compute`` as shipped (the images
  split over a pool of one process per CPU).
"""

from __future__ import annotations

import json
import multiprocessing
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as cocomask
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

try:
    import cv2

    cv2.setNumThreads(1)
    DILATION = f"cv2.dilate {cv2.__version__}"
except ImportError:  # pragma: no cover - depends on the machine
    cv2 = None
    DILATION = "scipy binary_dilation (no OpenCV)"


def disk(radius: int) -> np.ndarray:
    """``skimage.morphology.disk``: (2r + 1, 2r + 1) uint8, x^2 + y^2 <= r^2."""
    grid = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(grid, grid)
    return (xx**2 + yy**2 <= radius**2).astype(np.uint8)


def dilate(image: np.ndarray, structure: np.ndarray) -> np.ndarray:
    if cv2 is not None:
        return cv2.dilate(image, structure)
    return ndimage.binary_dilation(image, structure.astype(bool)).astype(np.uint8)


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    seg = seg.astype(bool)
    seg[seg > 0] = 1
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def db_eval_iou(annotation, segmentation, void_pixels=None):
    annotation, segmentation = annotation.astype(bool), segmentation.astype(bool)
    void = np.zeros_like(segmentation) if void_pixels is None else void_pixels.astype(bool)
    inters = np.sum((segmentation & annotation) & np.logical_not(void), axis=(-2, -1))
    union = np.sum((segmentation | annotation) & np.logical_not(void), axis=(-2, -1))
    j = inters / union
    if j.ndim == 0:
        return 1 if np.isclose(union, 0) else j
    j[np.isclose(union, 0)] = 1
    return j


def f_measure(foreground_mask, gt_mask, void_pixels=None, bound_th=0.008):
    if void_pixels is not None:
        void_pixels = void_pixels.astype(bool)
    else:
        void_pixels = np.zeros_like(foreground_mask).astype(bool)
    bound_pix = (
        bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))
    )
    fg_boundary = seg2bmap(foreground_mask * np.logical_not(void_pixels))
    gt_boundary = seg2bmap(gt_mask * np.logical_not(void_pixels))
    structure = disk(int(bound_pix))
    fg_dil = dilate(fg_boundary.astype(np.uint8), structure)
    gt_dil = dilate(gt_boundary.astype(np.uint8), structure)
    gt_match, fg_match = gt_boundary * fg_dil, fg_boundary * gt_dil
    n_fg, n_gt = np.sum(fg_boundary), np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision, recall = np.sum(fg_match) / float(n_fg), np.sum(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0
    return 2 * precision * recall / (precision + recall)


def db_eval_boundary(annotation, segmentation, void_pixels=None, bound_th=0.008):
    f_res = np.zeros(annotation.shape[0])
    for t in range(annotation.shape[0]):
        void = None if void_pixels is None else void_pixels[t]
        f_res[t] = f_measure(segmentation[t], annotation[t], void, bound_th=bound_th)
    return f_res


def db_statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    m = np.nanmean(per_frame)
    r = np.nanmean(per_frame > 0.5)
    ids = np.round(np.linspace(1, len(per_frame), 5) + 1e-10) - 1
    d_bins = [per_frame[int(ids[i]) : int(ids[i + 1]) + 1] for i in range(4)]
    return m, r, np.nanmean(d_bins[0]) - np.nanmean(d_bins[3])


def _separate(masks: np.ndarray, num_objects: int) -> np.ndarray:
    tmp = np.ones((num_objects, *masks.shape))
    tmp = tmp * np.arange(1, num_objects + 1)[:, None, None, None]
    return tmp == masks[None, ...]


def read_gt_masks(folder: Path) -> tuple[np.ndarray, list[str]]:
    """``DAVIS.get_all_masks(seq, separate_objects_masks=True)``."""
    paths = sorted(folder.glob("*.png"))
    first = np.array(Image.open(paths[0]))
    all_objs = np.zeros((len(paths), *first.shape))
    for i, path in enumerate(paths):
        all_objs[i, ...] = np.array(Image.open(path))
        all_objs[i, all_objs[i, ...] == 255] = 0
    masks = _separate(all_objs, int(np.max(all_objs[0, ...])))
    return masks > 0, [p.stem for p in paths]


def read_result_masks(folder: Path, masks_id: list[str]) -> np.ndarray:
    """``Results.read_masks``."""
    mask_0 = np.array(Image.open(folder / f"{masks_id[0]}.png"))
    masks = np.zeros((len(masks_id), *mask_0.shape))
    for i, frame in enumerate(masks_id):
        masks[i, ...] = np.array(Image.open(folder / f"{frame}.png"))
    return _separate(masks, int(np.max(masks))) > 0


def evaluate_semisupervised(gt, res) -> tuple[np.ndarray, np.ndarray]:
    if res.shape[0] != gt.shape[0]:
        raise ValueError("object count mismatch")
    j, f = np.zeros(gt.shape[:2]), np.zeros(gt.shape[:2])
    for ii in range(gt.shape[0]):
        void = gt[ii, ...] == 255
        j[ii, :] = db_eval_iou(gt[ii, ...], res[ii, ...], void)
        f[ii, :] = db_eval_boundary(gt[ii, ...], res[ii, ...], void)
    return j, f


def evaluate_unsupervised(gt, res, max_n_proposals=20) -> tuple[np.ndarray, np.ndarray]:
    if res.shape[0] > max_n_proposals:
        raise ValueError("too many proposals")
    if res.shape[0] < gt.shape[0]:
        res = np.concatenate([res, np.zeros((gt.shape[0] - res.shape[0], *res.shape[1:]))])
    j = np.zeros((res.shape[0], gt.shape[0], gt.shape[1]))
    f = np.zeros((res.shape[0], gt.shape[0], gt.shape[1]))
    for ii in range(gt.shape[0]):
        for jj in range(res.shape[0]):
            void = gt[ii, ...] == 255
            j[jj, ii, :] = db_eval_iou(gt[ii, ...], res[jj, ...], void)
            f[jj, ii, :] = db_eval_boundary(gt[ii, ...], res[jj, ...], void)
    all_metrics = (np.mean(j, axis=2) + np.mean(f, axis=2)) / 2
    rows, cols = linear_sum_assignment(-all_metrics)
    return j[rows, cols, :], f[rows, cols, :]


def evaluate_davis(gt_root: Path, results: Path, task: str, sequences: list[str]) -> dict:
    """``DAVISEvaluation(root, task, "val").evaluate(results)``: per-object M/R/D and the
    per-frame J and F of each object."""
    folder = "Annotations" if task == "semi-supervised" else "Annotations_unsupervised"
    out: dict = {"J": {"M": [], "R": [], "D": []}, "F": {"M": [], "R": [], "D": []}, "frames": {}}
    for seq in sequences:
        gt, ids = read_gt_masks(gt_root / folder / "480p" / seq)
        if task == "semi-supervised":
            gt, ids = gt[:, 1:-1], ids[1:-1]
        res = read_result_masks(results / seq, ids)
        score = evaluate_unsupervised if task == "unsupervised" else evaluate_semisupervised
        j, f = score(gt, res)
        for ii in range(gt.shape[0]):
            for name, values in (("J", j[ii]), ("F", f[ii])):
                m, r, d = db_statistics(values)
                out[name]["M"].append(m)
                out[name]["R"].append(r)
                out[name]["D"].append(d)
            out["frames"][f"{seq}_{ii + 1}"] = (j[ii].tolist(), f[ii].tolist())
    return out


def _gray(path: Path) -> np.ndarray:
    if cv2 is not None:
        return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return np.asarray(Image.open(path).convert("L"))


def _mevis_expression(exp_dict: dict, mask_dict: dict, pred: Path, item: tuple) -> tuple:
    """``eval_queue``'s body for one (video, expression): (J, F, J/F per frame)."""
    vid_name, exp = item
    vid = exp_dict[vid_name]
    pred_0 = _gray(pred / vid_name / exp / f"{vid['frames'][0]}.png")
    h, w = pred_0.shape
    gt_masks = np.zeros((len(vid["frames"]), h, w), dtype=np.uint8)
    pred_masks = np.zeros((len(vid["frames"]), h, w), dtype=np.uint8)
    for frame_idx, frame_name in enumerate(vid["frames"]):
        for anno_id in vid["expressions"][exp]["anno_id"]:
            rle = mask_dict[str(anno_id)][frame_idx]
            if rle:
                gt_masks[frame_idx] += cocomask.decode(rle)
        pred_masks[frame_idx] = _gray(pred / vid_name / exp / f"{frame_name}.png")
    j, f = db_eval_iou(gt_masks, pred_masks), db_eval_boundary(gt_masks, pred_masks)
    return j.mean(), f.mean(), j.tolist(), f.tolist()


def _mevis_inputs(root: Path) -> tuple[dict, dict, list[tuple[str, str]]]:
    exp_dict = json.loads((root / "meta_expressions.json").read_text())["videos"]
    mask_dict = json.loads((root / "mask_dict.json").read_text())
    return exp_dict, mask_dict, [(v, e) for v in exp_dict for e in exp_dict[v]["expressions"]]


def evaluate_mevis(root: Path, pred: Path) -> dict[str, tuple[float, float, list, list]]:
    """MeViS ``eval_queue`` over every expression (one worker): name -> (J, F, J/F per frame)."""
    exp_dict, mask_dict, items = _mevis_inputs(root)
    return {f"{v}_{e}": _mevis_expression(exp_dict, mask_dict, pred, (v, e)) for v, e in items}


_POOL_STATE: dict = {}


def _pool_call(item: tuple) -> tuple:
    return _POOL_STATE["function"](*_POOL_STATE["args"], item)


def _fork_pool_map(function: Callable, args: tuple, items: list, processes: int) -> list:
    """``function(*args, item)`` over a fork pool of ``processes`` (the state reaches the
    workers by fork, as the official scripts' module globals do)."""
    _POOL_STATE.update(function=function, args=args)
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return pool.map(_pool_call, items, chunksize=1)


def evaluate_mevis_pool(root: Path, pred: Path, processes: int) -> dict[str, tuple]:
    """``eval_mevis.py`` as shipped shares the expressions out over ``NUM_WOEKERS`` processes
    (64 or 128); here a fork pool of ``processes`` (one per CPU: more only add start-up)."""
    exp_dict, mask_dict, items = _mevis_inputs(root)
    results = _fork_pool_map(_mevis_expression, (exp_dict, mask_dict, pred), items, processes)
    return {f"{v}_{e}": result for (v, e), result in zip(items, results, strict=True)}


def rgb2id(color: np.ndarray) -> np.ndarray:
    color = color.astype(np.int32) if color.dtype == np.uint8 else color
    return color[:, :, 0] + 256 * color[:, :, 1] + 256 * 256 * color[:, :, 2]


def pq_image(pan_gt, gt_ann, pan_pred, pred_ann, categories, pq_stat) -> None:
    """The body of ``pq_compute_single_core`` for one image (arrays already read)."""
    offset, void = 256 * 256 * 256, 0
    gt_segms = {el["id"]: dict(el) for el in gt_ann["segments_info"]}
    pred_segms = {el["id"]: dict(el) for el in pred_ann["segments_info"]}
    labels, labels_cnt = np.unique(pan_pred, return_counts=True)
    for label, label_cnt in zip(labels, labels_cnt, strict=True):
        if label in pred_segms:
            pred_segms[label]["area"] = label_cnt
    pan_gt_pred = pan_gt.astype(np.uint64) * offset + pan_pred.astype(np.uint64)
    gt_pred_map = {}
    labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
    for label, intersection in zip(labels, labels_cnt, strict=True):
        gt_pred_map[(label // offset, label % offset)] = intersection
    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        gt_info, pred_info = gt_segms[gt_label], pred_segms[pred_label]
        if gt_info["iscrowd"] == 1 or gt_info["category_id"] != pred_info["category_id"]:
            continue
        union = pred_info["area"] + gt_info["area"] - intersection
        iou = intersection / (union - gt_pred_map.get((void, pred_label), 0))
        if iou > 0.5:
            pq_stat[gt_info["category_id"]]["tp"] += 1
            pq_stat[gt_info["category_id"]]["iou"] += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)
    crowd = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if gt_info["iscrowd"] == 1:
            crowd[gt_info["category_id"]] = gt_label
            continue
        pq_stat[gt_info["category_id"]]["fn"] += 1
    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = gt_pred_map.get((void, pred_label), 0)
        if pred_info["category_id"] in crowd:
            intersection += gt_pred_map.get((crowd[pred_info["category_id"]], pred_label), 0)
        if intersection / pred_info["area"] > 0.5:
            continue
        pq_stat[pred_info["category_id"]]["fp"] += 1


def _pq_stat() -> dict:
    return defaultdict(lambda: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0})


def _pq_inputs(gt_json: Path, pred_json: Path) -> tuple[dict, list[tuple[dict, dict]]]:
    gt, pred = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
    categories = {el["id"]: el for el in gt["categories"]}
    pred_annotations = {el["image_id"]: el for el in pred["annotations"]}
    return categories, [(a, pred_annotations[a["image_id"]]) for a in gt["annotations"]]


def _pq_single_core(categories: dict, gt_dir: Path, pred_dir: Path, pairs: list) -> dict:
    """``pq_compute_single_core``: read both PNGs of each image, ``pq_image``."""
    pq_stat = _pq_stat()
    for gt_ann, pred_ann in pairs:
        read: Callable = lambda folder, ann: rgb2id(  # noqa: E731
            np.array(Image.open(folder / ann["file_name"]), dtype=np.uint32)
        )
        pan_gt, pan_pred = read(gt_dir, gt_ann), read(pred_dir, pred_ann)
        pq_image(pan_gt, gt_ann, pan_pred, pred_ann, categories, pq_stat)
    return dict(pq_stat)


def _pq_average(categories: dict, pq_stat: dict) -> dict:
    pq, n = 0.0, 0
    for label in categories:
        s = pq_stat.get(label, {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0})
        if s["tp"] + s["fp"] + s["fn"] == 0:
            continue
        n += 1
        pq += s["iou"] / (s["tp"] + 0.5 * s["fp"] + 0.5 * s["fn"])
    return {"pq": pq / n, "n": n}


def pq_compute(gt_json: Path, gt_dir: Path, pred_json: Path, pred_dir: Path) -> dict:
    """``pq_compute`` on one core: PQ All."""
    categories, pairs = _pq_inputs(gt_json, pred_json)
    return _pq_average(categories, _pq_single_core(categories, gt_dir, pred_dir, pairs))


def pq_compute_multi_core(
    gt_json: Path, gt_dir: Path, pred_json: Path, pred_dir: Path, processes: int
) -> dict:
    """``pq_compute`` as shipped: the images split into one chunk per CPU
    (``np.array_split``), ``pq_compute_single_core`` on each in a process pool, the chunks'
    statistics summed in order (so the last bits of PQ may differ from one core's)."""
    categories, pairs = _pq_inputs(gt_json, pred_json)
    chunks = [[pairs[i] for i in c] for c in np.array_split(np.arange(len(pairs)), processes)]
    args = (categories, gt_dir, pred_dir)
    total = _pq_stat()
    for stat in _fork_pool_map(_pq_single_core, args, chunks, processes):
        for label, values in stat.items():
            for key in ("iou", "tp", "fp", "fn"):
                total[label][key] += values[key]
    return _pq_average(categories, total)
