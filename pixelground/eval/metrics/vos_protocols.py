"""VOS protocols on arrays: ``semi_supervised_scores``, ``unsupervised_scores`` (with
:func:`match_proposals`), ``expression_scores``. The same protocols over folders of PNGs are in
:mod:`pixelground.eval.metrics.vos_folders` (behind :func:`pixelground.eval.metrics.evaluate_vos`).

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
    unaffected. Each proposal's J mean and F mean against every GT object (the matrix the
    assignment maximises is their average) are kept as well.

MeViS (``tools/eval_mevis.py``) and Ref-YouTube-VOS: per expression, the GT is the union of the
    expression's objects, every listed frame counts, no void; the expression scores the means
    over frames of J and F; J = mean over expressions, F likewise, J&F = (J + F) / 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pixelground.core.errors import InputError, require
from pixelground.eval.metrics.jf import BOUND_TH, MAX_PROPOSALS, as_video_masks, pairwise_scores


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
    check_semi_counts(num_gt, num_pred)
    preds = Padded(pred_masks, num_gt, as_video_masks(gt_masks[0], "gt").shape)
    return pairwise_scores(gt_masks, preds, void, bound_th, pairs="diagonal")


def check_semi_counts(num_gt: int, num_pred: int) -> None:
    """InputError when the GT has no object or the prediction has more objects than it."""
    if num_gt == 0:
        raise InputError("the ground truth has no object to score")
    if num_pred > num_gt:
        raise InputError(
            f"the prediction has object ids up to {num_pred} but the GT has {num_gt} objects; "
            "semi-supervised predictions must use the GT object ids"
        )


@dataclass
class UnsupervisedScores:
    """Scores of the unsupervised task: the matched (proposal, GT object) pairs and every
    proposal's means.

    Attributes:
        j: (N, T) J of each matched pair, pairs listed in ascending proposal order as the
            official ``_evaluate_unsupervised`` returns them.
        f: (N, T) F of each matched pair.
        gt_index: (N,) 0-based GT object of each pair.
        proposal_index: (N,) 0-based proposal of each pair (>= the number of proposals for
            the empty masks added when there are fewer proposals than GT objects).
        jf_matrix: (M, N) mean-over-frames (J + F) / 2 the assignment maximised.
        j_mean: (M, N) each proposal's J mean (over frames) against each GT object.
        f_mean: (M, N) each proposal's F mean against each GT object; ``jf_matrix`` is
            ``(j_mean + f_mean) / 2``.
    """

    j: np.ndarray
    f: np.ndarray
    gt_index: np.ndarray
    proposal_index: np.ndarray
    jf_matrix: np.ndarray
    j_mean: np.ndarray
    f_mean: np.ndarray


def match_proposals(j_all: np.ndarray, f_all: np.ndarray) -> UnsupervisedScores:
    """The official assignment: maximise the sum of mean (J + F) / 2 over one-to-one pairs.

    Args:
        j_all: (M, N, T) J of every proposal (padded with empties to M >= N) vs every object.
        f_all: (M, N, T) F likewise.
    """
    optimize = require("scipy.optimize", "eval")
    j_mean, f_mean = np.mean(j_all, axis=2), np.mean(f_all, axis=2)
    jf_matrix = (j_mean + f_mean) / 2
    rows, cols = optimize.linear_sum_assignment(-jf_matrix)
    return UnsupervisedScores(
        j_all[rows, cols], f_all[rows, cols], cols, rows, jf_matrix, j_mean, f_mean
    )


def check_proposal_count(num_prop: int, max_proposals: int = MAX_PROPOSALS) -> None:
    """InputError when there are more proposal ids than allowed."""
    if num_prop > max_proposals:
        raise InputError(
            f"the prediction has {num_prop} proposal ids, more than the {max_proposals} allowed"
        )


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
        The matched pairs' scores and every proposal's J and F means.
    """
    num_gt, num_prop = len(gt_masks), len(proposals)
    if num_gt == 0:
        raise InputError("the ground truth has no object to score")
    check_proposal_count(num_prop, max_proposals)
    padded = Padded(proposals, max(num_prop, num_gt), as_video_masks(gt_masks[0], "gt").shape)
    j_all, f_all = pairwise_scores(gt_masks, padded, void, bound_th, pairs="all")
    return match_proposals(j_all, f_all)


class Padded:
    """A sequence of (T, H, W) masks extended with empty masks up to ``length``."""

    def __init__(self, masks: Sequence[np.ndarray] | np.ndarray, length: int, shape: tuple):
        self._masks, self._length, self._shape = masks, length, shape

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self._length:
            raise IndexError(index)
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
