"""VOS protocols: on arrays (``semi_supervised_scores``, ``unsupervised_scores``,
``expression_scores``) and on folders (``run_davis``, ``run_mevis``, behind
:func:`pixelground.eval.metrics.vos.evaluate_vos`).

DAVIS semi-supervised (davis2017-evaluation ``evaluation.py``, task ``semi-supervised``):
    GT objects = ids 1..N with N the largest id of the first GT frame; frames 1..-2 (first and
    last excluded); result PNGs are read for those frames and their object count is the largest
    id found there; object k is scored against GT object k; per object M/R/D of J and of F
    (``db_statistics``); the table reports J-Mean = mean of the objects' J M, likewise recall and
    decay, and J&F-Mean = (J-Mean + F-Mean) / 2.

DAVIS unsupervised (task ``unsupervised``): all frames; up to 20 proposal ids; every proposal is
    scored against every GT object, the one-to-one assignment maximising mean (J + F) / 2 is
    found with ``linear_sum_assignment``; M/R/D and means as above. The official code lists the
    matched pairs in proposal order under the names ``<seq>_1..N``; here each pair is named by
    the GT object it matched (``<seq>_<gt id>``) and carries its ``proposal_id``. Means are
    unaffected.

MeViS (``tools/eval_mevis.py``) and Ref-YouTube-VOS: per expression, the GT is the union of the
    expression's objects (``anno_id`` in ``mask_dict.json``, or ``obj_id`` in
    ``Annotations/<video>/`` label PNGs), every listed frame counts, no void; a prediction pixel
    is foreground when its grayscale value is nonzero (the official code reads PNGs with
    ``cv2.IMREAD_GRAYSCALE``); the expression scores the means over frames of J and F; the
    report gives J = mean over expressions, F likewise, J&F = (J + F) / 2. A video folder
    missing from the predictions scores J = F = 0 for its expressions, as officially.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelground.core.errors import InputError, require
from pixelground.core.masks import decode_rle
from pixelground.eval.datasets.davis import (
    VideoMasks,
    find_sequence_dirs,
    read_davis_ground_truth,
    read_davis_sequence,
)
from pixelground.eval.metrics.vos import (
    BOUND_TH,
    MAX_PROPOSALS,
    as_video_masks,
    db_statistics,
    pairwise_scores,
)

logger = logging.getLogger(__name__)

_STAT_KEYS = ("J", "J_recall", "J_decay", "F", "F_recall", "F_decay")


def semi_supervised_scores(
    gt_masks: Sequence[np.ndarray] | np.ndarray,
    pred_masks: Sequence[np.ndarray] | np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-object, per-frame J and F of the DAVIS semi-supervised task.

    Prediction object k is scored against GT object k. More predicted objects than GT objects
    is an error. Fewer (the largest id found in the prediction is below N: the last objects were
    never predicted) are scored as empty predictions; the official code refuses to evaluate any
    count mismatch, so this only differs where it gives no number. Select the frames (1..-2 for
    DAVIS) before calling.

    Args:
        gt_masks: (N, T, H, W) GT objects (or a sequence of N (T, H, W) masks).
        pred_masks: (M, T, H, W) predicted objects, M <= N.
        void: Optional (T, H, W) void pixels.
        bound_th: Boundary tolerance.

    Returns:
        ``(J, F)``, each (N, T) float64.
    """
    num_gt, num_pred = len(gt_masks), len(pred_masks)
    if num_gt == 0:
        raise InputError("the ground truth has no object to score")
    if num_pred > num_gt:
        raise InputError(
            f"the prediction has object ids up to {num_pred} but the GT has {num_gt} objects; "
            "semi-supervised predictions must use the GT object ids"
        )
    preds = _Padded(pred_masks, num_gt, as_video_masks(gt_masks[0], "gt").shape)
    return pairwise_scores(gt_masks, preds, void, bound_th, pairs="diagonal")


@dataclass
class UnsupervisedScores:
    """Scores of the matched (proposal, GT object) pairs of the unsupervised task.

    Attributes:
        j: (N, T) J of each matched pair, pairs listed in ascending proposal order as the
            official ``_evaluate_unsupervised`` returns them.
        f: (N, T) F of each matched pair.
        gt_index: (N,) 0-based GT object of each pair.
        proposal_index: (N,) 0-based proposal of each pair (>= the number of proposals for
            the empty masks added when there are fewer proposals than GT objects).
        jf_matrix: (M, N) mean-over-frames (J + F) / 2 the assignment maximised.
    """

    j: np.ndarray
    f: np.ndarray
    gt_index: np.ndarray
    proposal_index: np.ndarray
    jf_matrix: np.ndarray


def unsupervised_scores(
    gt_masks: Sequence[np.ndarray] | np.ndarray,
    proposals: Sequence[np.ndarray] | np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
    max_proposals: int = MAX_PROPOSALS,
) -> UnsupervisedScores:
    """Per-frame J and F of the DAVIS unsupervised task: Hungarian matching on mean J&F.

    Every proposal is scored against every GT object over all frames; proposals are padded with
    empty masks up to the number of GT objects; ``scipy.optimize.linear_sum_assignment``
    maximises the sum of (mean J + mean F) / 2 over a one-to-one assignment.

    Args:
        gt_masks: (N, T, H, W) GT objects.
        proposals: (M, T, H, W) proposals, M <= ``max_proposals``.
        void: Optional (T, H, W) void pixels.
        bound_th: Boundary tolerance.
        max_proposals: Limit on M (20 in the DAVIS challenge).

    Returns:
        The matched pairs' scores.
    """
    optimize = require("scipy.optimize", "eval")
    num_gt, num_prop = len(gt_masks), len(proposals)
    if num_gt == 0:
        raise InputError("the ground truth has no object to score")
    if num_prop > max_proposals:
        raise InputError(
            f"the prediction has {num_prop} proposal ids, more than the {max_proposals} allowed"
        )
    padded = _Padded(proposals, max(num_prop, num_gt), as_video_masks(gt_masks[0], "gt").shape)
    j_all, f_all = pairwise_scores(gt_masks, padded, void, bound_th, pairs="all")
    jf_matrix = (np.mean(j_all, axis=2) + np.mean(f_all, axis=2)) / 2
    rows, cols = optimize.linear_sum_assignment(-jf_matrix)
    return UnsupervisedScores(j_all[rows, cols], f_all[rows, cols], cols, rows, jf_matrix)


class _Padded:
    """A sequence of (T, H, W) masks extended with empty masks up to ``length``."""

    def __init__(self, masks: Sequence[np.ndarray] | np.ndarray, length: int, shape: tuple):
        self._masks, self._length, self._shape = masks, length, shape

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> np.ndarray:
        if index < len(self._masks):
            return self._masks[index]
        return np.zeros(self._shape, dtype=bool)


def expression_scores(
    gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of one referring expression (MeViS / Ref-YouTube-VOS protocol).

    As MeViS ``tools/eval_mevis.py``: the GT is the union of the expression's objects, every
    frame counts, no void; the expression scores ``J.mean()`` and ``F.mean()``.

    Args:
        gt: (T, H, W) union of the expression's GT objects.
        pred: (T, H, W) predicted mask.

    Returns:
        ``(J, F)``, each (T,) float64.
    """
    j, f = pairwise_scores(
        [as_video_masks(gt, "gt")], [as_video_masks(pred, "pred")], None, bound_th, "diagonal"
    )
    return j[0], f[0]


def _select(available: Sequence[str], wanted: Sequence[str] | None, what: str) -> list[str]:
    if wanted is None:
        return list(available)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise InputError(f"unknown {what}(s) {', '.join(unknown)}; available: {len(available)}")
    return list(wanted)


def _pred_sequence_dir(pred: Path, name: str, only_one: bool) -> Path:
    if (pred / name).is_dir():
        return pred / name
    if only_one and any(pred.glob("*.png")):
        return pred
    raise InputError(f"no predictions for sequence {name!r}: expected a folder {pred / name}")


def _object_entry(
    sequence: str, frames: list[str], j: np.ndarray, f: np.ndarray, per_frame: bool
) -> dict[str, Any]:
    j_m, j_r, j_d = db_statistics(j)
    f_m, f_r, f_d = db_statistics(f)
    entry: dict[str, Any] = {
        "sequence": sequence,
        "J": j_m,
        "J_recall": j_r,
        "J_decay": j_d,
        "F": f_m,
        "F_recall": f_r,
        "F_decay": f_d,
        "JF": (j_m + f_m) / 2,
    }
    if per_frame:
        entry.update(frames=list(frames), J_per_frame=j.tolist(), F_per_frame=f.tolist())
    return entry


def _score_sequence(
    gt: VideoMasks, pred_dir: Path, task: str, void: bool, bound_th: float, max_proposals: int
) -> list[tuple[int, int | None, np.ndarray, np.ndarray]]:
    """Scores of one sequence as (gt object id, proposal id or None, J (T,), F (T,)) tuples."""
    if task == "semi":
        if len(gt.frame_ids) < 3:
            raise InputError(
                f"sequence {gt.name} has {len(gt.frame_ids)} frames; the semi-supervised "
                "protocol drops the first and last frame and needs at least 3"
            )
        gt = gt.frames(slice(1, -1))
    pred = read_davis_sequence(pred_dir, frame_ids=gt.frame_ids, void_label=None)
    if pred.labels.shape[1:] != gt.labels.shape[1:]:
        raise InputError(
            f"predictions of {gt.name} are {pred.labels.shape[1:]} but the GT is "
            f"{gt.labels.shape[1:]} (H, W): write results at the annotation resolution"
        )
    void_mask = gt.void if void else None
    if task == "semi":
        j, f = semi_supervised_scores(gt.objects, pred.objects, void_mask, bound_th)
        return [(k + 1, None, j[k], f[k]) for k in range(gt.num_objects)]
    scores = unsupervised_scores(gt.objects, pred.objects, void_mask, bound_th, max_proposals)
    pairs = [
        (int(g) + 1, int(p) + 1, scores.j[i], scores.f[i])
        for i, (g, p) in enumerate(zip(scores.gt_index, scores.proposal_index, strict=True))
    ]
    return sorted(pairs, key=lambda pair: pair[0])


def run_davis(
    gt: str | Path,
    pred: str | Path,
    task: str,
    *,
    sequences: Sequence[str] | None = None,
    bound_th: float,
    exclude_void: bool = False,
    max_proposals: int = MAX_PROPOSALS,
    per_frame: bool = True,
) -> dict[str, Any]:
    """DAVIS semi-supervised (``task="semi"``) or unsupervised protocol over folders.

    Returns:
        ``{"protocol", "J", "J_recall", "J_decay", "F", "F_recall", "F_decay", "JF",
        "num_objects", "sequences", "per_object": {"<seq>_<id>": {...}}}``; each object entry
        holds its M/R/D, JF and (with ``per_frame``) ``frames``, ``J_per_frame``,
        ``F_per_frame``; unsupervised entries also ``proposal_id``.
    """
    gt_dirs = find_sequence_dirs(gt, "unsupervised" if task == "unsupervised" else task)
    names = _select(sorted(gt_dirs), sequences, "sequence")
    pred = Path(pred)
    if not pred.is_dir():
        raise InputError(f"prediction folder {pred} does not exist")
    per_object: dict[str, dict[str, Any]] = {}
    for name in names:
        truth = read_davis_ground_truth(gt_dirs[name])
        truth.name = name
        if truth.num_objects == 0:
            raise InputError(f"the first GT frame of {name} has no object; nothing to evaluate")
        pred_dir = _pred_sequence_dir(pred, name, len(names) == 1)
        scored = _score_sequence(truth, pred_dir, task, exclude_void, bound_th, max_proposals)
        frames = truth.frame_ids[1:-1] if task == "semi" else truth.frame_ids
        for gt_id, proposal_id, j, f in scored:
            entry = _object_entry(name, frames, j, f, per_frame)
            entry["object_id"] = gt_id
            if proposal_id is not None:
                entry["proposal_id"] = proposal_id
            per_object[f"{name}_{gt_id}"] = entry
    summary: dict[str, Any] = {"protocol": task}
    for key in _STAT_KEYS:
        summary[key] = float(np.mean([entry[key] for entry in per_object.values()]))
    summary["JF"] = (summary["J"] + summary["F"]) / 2
    summary.update(
        num_objects=len(per_object),
        sequences=names,
        bound_th=bound_th,
        exclude_void=exclude_void,
        per_object=per_object,
    )
    return summary


def read_binary_png(path: Path) -> np.ndarray:
    """(H, W) bool: grayscale value != 0, as ``cv2.imread(path, IMREAD_GRAYSCALE) != 0``."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L")) != 0
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read prediction PNG {path}: {error}") from error


class _ExpressionTruth:
    """GT masks of expressions, from ``mask_dict.json`` (MeViS) or label PNGs (Ref-YTVOS)."""

    def __init__(self, root: Path):
        self.root = root
        mask_dict = root / "mask_dict.json"
        self.mask_dict = json.loads(mask_dict.read_text()) if mask_dict.is_file() else None
        if self.mask_dict is None and not (root / "Annotations").is_dir():
            raise InputError(
                f"{root} has neither mask_dict.json (MeViS) nor Annotations/ (Ref-YouTube-VOS)"
            )
        self._labels: dict[str, np.ndarray] = {}

    def union(self, video: str, frames: list[str], expression: dict, shape: tuple) -> np.ndarray:
        """(T, H, W) bool union of the expression's objects over the listed frames."""
        out = np.zeros((len(frames), *shape), dtype=bool)
        if self.mask_dict is not None:
            for anno_id in _as_list(expression.get("anno_id")):
                rles = self.mask_dict.get(str(anno_id))
                if rles is None:
                    raise InputError(f"anno_id {anno_id} of video {video} is not in mask_dict")
                if len(rles) < len(frames):
                    raise InputError(f"mask_dict has {len(rles)} frames for anno_id {anno_id}")
                for index, rle in enumerate(rles[: len(frames)]):
                    if rle:
                        out[index] |= self._decode(rle, shape, video)
            return out
        labels = self._video_labels(video, frames)
        if labels.shape[1:] != shape:
            raise InputError(f"GT of {video} is {labels.shape[1:]}, predictions are {shape}")
        for obj_id in _as_list(expression.get("obj_id")):
            out |= labels == int(obj_id)
        return out

    @staticmethod
    def _decode(rle: dict, shape: tuple, video: str) -> np.ndarray:
        mask = decode_rle(rle)
        if mask.shape != shape:
            raise InputError(f"GT masks of {video} are {mask.shape}, predictions are {shape}")
        return mask

    def _video_labels(self, video: str, frames: list[str]) -> np.ndarray:
        if video not in self._labels:
            folder = self.root / "Annotations" / video
            sequence = read_davis_sequence(folder, frame_ids=frames, kind="davis2017")
            self._labels = {video: sequence.labels}  # keep one video in memory
        return self._labels[video]


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _score_expression(
    truth: _ExpressionTruth,
    pred: Path,
    video: str,
    frames: list[str],
    exp_id: str,
    info: dict,
    bound_th: float,
) -> tuple[np.ndarray, np.ndarray]:
    folder = pred / video / exp_id
    paths = [folder / f"{frame}.png" for frame in frames]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"missing prediction {missing[0]} (and {len(missing) - 1} more)")
    masks = np.stack([read_binary_png(p) for p in paths])
    gt = truth.union(video, frames, info, masks.shape[1:])
    return expression_scores(gt, masks, bound_th)


def run_mevis(
    gt: str | Path,
    pred: str | Path,
    *,
    sequences: Sequence[str] | None = None,
    bound_th: float,
    per_frame: bool = True,
) -> dict[str, Any]:
    """MeViS / Ref-YouTube-VOS per-expression protocol over folders.

    Returns:
        ``{"protocol": "mevis", "J", "F", "JF", "num_expressions", "missing_videos",
        "per_expression": {"<video>_<exp id>": {"video", "expression", "text", "J", "F", "JF",
        "missing", ...per-frame lists}}}``.
    """
    root, pred = Path(gt), Path(pred)
    meta_path = root / "meta_expressions.json"
    if not meta_path.is_file():
        raise InputError(f"{meta_path} not found: the MeViS protocol needs meta_expressions.json")
    videos = json.loads(meta_path.read_text())["videos"]
    truth = _ExpressionTruth(root)
    per_expression: dict[str, dict[str, Any]] = {}
    missing_videos = []
    for video in _select(list(videos), sequences, "video"):
        info = videos[video]
        frames = [str(frame) for frame in info["frames"]]
        if not (pred / video).is_dir():
            logger.warning("no predictions for video %s: its expressions score 0", video)
            missing_videos.append(video)
        for exp_id, expression in info["expressions"].items():
            entry: dict[str, Any] = {"video": video, "expression": exp_id}
            entry["text"] = expression.get("exp", "")
            if video in missing_videos:
                entry.update(J=0.0, F=0.0, JF=0.0, missing=True)
            else:
                j, f = _score_expression(truth, pred, video, frames, exp_id, expression, bound_th)
                j_mean, f_mean = float(j.mean()), float(f.mean())
                entry.update(J=j_mean, F=f_mean, JF=(j_mean + f_mean) / 2, missing=False)
                if per_frame:
                    entry.update(frames=frames, J_per_frame=j.tolist(), F_per_frame=f.tolist())
            per_expression[f"{video}_{exp_id}"] = entry
    if not per_expression:
        raise InputError(f"{meta_path} lists no expressions to evaluate")
    j_all = float(np.mean([e["J"] for e in per_expression.values()]))
    f_all = float(np.mean([e["F"] for e in per_expression.values()]))
    return {
        "protocol": "mevis",
        "J": j_all,
        "F": f_all,
        "JF": (j_all + f_all) / 2,
        "num_expressions": len(per_expression),
        "missing_videos": missing_videos,
        "bound_th": bound_th,
        "per_expression": per_expression,
    }
