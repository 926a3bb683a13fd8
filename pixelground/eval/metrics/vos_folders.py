"""VOS protocols over folders of PNGs, streamed: frames are decoded in a thread pool and scored
chunk by chunk as they arrive (:class:`~pixelground.eval.metrics.jf.PairCounts` keeps only
integer counts), so memory stays bounded on long sequences and the numbers are those of the
in-memory protocols (:mod:`pixelground.eval.metrics.vos_protocols`), bit for bit.

``run_davis`` (semi-supervised, unsupervised) reads DAVIS layouts; ``run_mevis`` the MeViS /
Ref-YouTube-VOS layout. A prediction pixel of the MeViS protocol is foreground when its
grayscale value is nonzero (the official code reads PNGs with ``cv2.IMREAD_GRAYSCALE``); a
video folder missing from the predictions scores J = F = 0 for its expressions, as officially.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.eval.datasets.davis import find_sequence_dirs
from pixelground.eval.datasets.mask_png import (
    DEFAULT_WORKERS,
    VOID_LABEL,
    LabelFrame,
    check_paths,
    chunked,
    ordered_map,
    read_binary_png,
    read_label_frame,
)
from pixelground.eval.datasets.rle_bits import rle_row_bits
from pixelground.eval.metrics.jf import (
    MAX_PROPOSALS,
    Geometry,
    PairCounts,
    Track,
    db_statistics,
    track,
    track_rows,
)
from pixelground.eval.metrics.vos_protocols import (
    UnsupervisedScores,
    check_proposal_count,
    check_semi_counts,
    match_proposals,
)
from pixelground.eval.processes import process_map, usable_processes

logger = logging.getLogger(__name__)

STAT_KEYS = ("J", "J_recall", "J_decay", "F", "F_recall", "F_decay")


@dataclass(frozen=True)
class DavisOptions:
    """How a DAVIS folder is scored (see :func:`run_davis`)."""

    task: str
    bound_th: float
    exclude_void: bool = False
    max_proposals: int = MAX_PROPOSALS
    workers: int | None = None


def select(available: Sequence[str], wanted: Sequence[str] | None, what: str) -> list[str]:
    """``wanted`` (all of ``available`` when None); InputError naming unknown names."""
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
    entry: dict[str, Any] = {"sequence": sequence, "J": j_m, "J_recall": j_r, "J_decay": j_d}
    entry.update(F=f_m, F_recall=f_r, F_decay=f_d, JF=(j_m + f_m) / 2)
    if per_frame:
        entry.update(frames=list(frames), J_per_frame=j.tolist(), F_per_frame=f.tolist())
    return entry


def _check_shapes(frames: Sequence[LabelFrame], shape: tuple[int, ...], what: str) -> None:
    for frame in frames:
        if frame.labels.shape != shape:
            raise InputError(
                f"{what} are {frame.labels.shape} but the GT is {shape} (H, W): write results "
                "at the annotation resolution"
            )


def _compare(frames: Sequence[LabelFrame], value: int, equal: bool = True) -> np.ndarray:
    """(C, H, W) bool ``labels == value`` (or ``!=``) of each frame, written straight into one
    buffer: no stacked copy of the labels is made."""
    out = np.empty((len(frames), *frames[0].labels.shape), dtype=bool)
    for index, frame in enumerate(frames):
        if equal and value > frame.max_id and value != frame.void_label:
            out[index] = False
        else:
            (np.equal if equal else np.not_equal)(frame.labels, value, out=out[index])
    return out


def _tracks(
    frames: Sequence[LabelFrame], ids: range, geometry: Geometry, keep: np.ndarray | None
) -> dict[int, Track]:
    """0-based index -> track of each object id of ``ids`` present in the frames."""
    out = {}
    for k in ids:
        mask = _compare(frames, k)
        if mask.any():
            out[k - 1] = track(mask, geometry, keep)
    return out


def _davis_chunk(
    counts: PairCounts,
    start: int,
    batch: Sequence[tuple[LabelFrame, LabelFrame]],
    geometry: Geometry,
    options: DavisOptions,
) -> None:
    """Count one chunk of (GT frame, result frame) pairs into ``counts``."""
    gt_frames, pred_frames = [b[0] for b in batch], [b[1] for b in batch]
    shape = (geometry.height, geometry.width)
    _check_shapes(gt_frames, shape, "GT frames")
    _check_shapes(pred_frames, shape, "predictions")
    keep = None
    if options.exclude_void and any(frame.has_void for frame in gt_frames):
        keep = _compare(gt_frames, VOID_LABEL, equal=False)
    top = max(frame.max_id for frame in pred_frames)
    num_gt = counts.num_gt
    if options.task == "semi":
        check_semi_counts(num_gt, top)
        pairs: list[tuple[int, int]] | None = [(k, k) for k in range(num_gt)]
    else:
        check_proposal_count(top, options.max_proposals)
        counts.grow(top)
        pairs = None
    present = _tracks(gt_frames, range(1, num_gt + 1), geometry, keep)
    gts = [present.get(k, Track.empty(len(batch))) for k in range(num_gt)]
    preds = _tracks(pred_frames, range(1, top + 1), geometry, keep)
    counts.add(start, gts, preds, geometry, pairs)


def davis_counts(
    gt_paths: Sequence[Path],
    pred_paths: Sequence[Path],
    num_gt: int,
    shape: tuple[int, int],
    options: DavisOptions,
) -> PairCounts:
    """Decode GT and result frames in a thread pool and count them chunk by chunk."""
    geometry = Geometry.of(*shape, options.bound_th)

    def read(index: int) -> tuple[LabelFrame, LabelFrame]:
        return (
            read_label_frame(gt_paths[index], "auto", VOID_LABEL),
            read_label_frame(pred_paths[index], "auto", None),
        )

    semi = options.task == "semi"
    counts = PairCounts(num_gt if semi else 0, num_gt, len(gt_paths))
    frames = ordered_map(read, range(len(gt_paths)), options.workers)
    for index, batch in enumerate(chunked(frames, geometry.chunk)):
        _davis_chunk(counts, index * geometry.chunk, batch, geometry, options)
    return counts


@dataclass
class SequenceScores:
    """What one DAVIS sequence scored.

    Attributes:
        frames: the scored frame ids.
        pairs: (GT id, proposal id or None, J (T,), F (T,)) per GT object, by GT id.
        matching: the unsupervised assignment (None for semi-supervised).
        num_proposals: the largest proposal id of the result (unsupervised).
    """

    frames: list[str]
    pairs: list[tuple[int, int | None, np.ndarray, np.ndarray]]
    matching: UnsupervisedScores | None = None
    num_proposals: int = 0


def score_davis_sequence(
    name: str, gt_dir: Path, pred_dir: Path, options: DavisOptions
) -> SequenceScores:
    """Score one sequence folder against its result folder (streamed)."""
    gt_paths = sorted(gt_dir.glob("*.png"))
    if not gt_paths:
        raise InputError(f"no PNG masks in {gt_dir}")
    first = read_label_frame(gt_paths[0], "auto", VOID_LABEL)
    num_gt = first.max_id
    if num_gt == 0:
        raise InputError(f"the first GT frame of {name} has no object; nothing to evaluate")
    frames = [p.stem for p in gt_paths]
    if options.task == "semi":
        if len(frames) < 3:
            raise InputError(
                f"sequence {name} has {len(frames)} frames; the semi-supervised "
                "protocol drops the first and last frame and needs at least 3"
            )
        frames, gt_paths = frames[1:-1], gt_paths[1:-1]
    pred_paths = check_paths(pred_dir, frames)
    counts = davis_counts(gt_paths, pred_paths, num_gt, first.labels.shape, options)
    num_proposals = counts.num_pred
    counts.grow(max(num_proposals, num_gt))  # fewer proposals than objects: empty ones
    j_all, f_all = counts.scores()
    if options.task == "semi":
        pairs = [(k + 1, None, j_all[k, k], f_all[k, k]) for k in range(num_gt)]
        return SequenceScores(frames, pairs)
    scores = match_proposals(j_all, f_all)
    pairs = [
        (int(g) + 1, int(p) + 1, scores.j[i], scores.f[i])
        for i, (g, p) in enumerate(zip(scores.gt_index, scores.proposal_index, strict=True))
    ]
    pairs.sort(key=lambda pair: pair[0])
    return SequenceScores(frames, pairs, scores, num_proposals)


def _proposal_entries(
    name: str, scores: UnsupervisedScores, num_proposals: int
) -> dict[str, dict[str, Any]]:
    """Each real proposal's J mean and F mean against every GT object, and its match."""
    matched = dict(zip(scores.proposal_index.tolist(), scores.gt_index.tolist(), strict=True))
    out = {}
    for p in range(num_proposals):
        g = matched.get(p)
        entry: dict[str, Any] = {"sequence": name, "proposal_id": p + 1}
        entry["matched_object"] = None if g is None else g + 1
        for key, means in (("J", scores.j_mean), ("F", scores.f_mean), ("JF", scores.jf_matrix)):
            entry[key] = None if g is None else float(means[p, g])
            entry[f"{key}_per_object"] = {str(k + 1): float(v) for k, v in enumerate(means[p])}
        out[f"{name}_{p + 1}"] = entry
    return out


def _workers(workers: int | None) -> int:
    return DEFAULT_WORKERS if workers is None else workers


def _score_job(options: DavisOptions, job: tuple[str, Path, Path]) -> SequenceScores:
    return score_davis_sequence(*job, options)


def run_davis(
    gt: str | Path,
    pred: str | Path,
    options: DavisOptions,
    sequences: Sequence[str] | None = None,
    per_frame: bool = True,
) -> dict[str, Any]:
    """DAVIS semi-supervised (``task="semi"``) or unsupervised protocol over folders.

    Returns:
        ``{"protocol", "J", "J_recall", "J_decay", "F", "F_recall", "F_decay", "JF",
        "num_objects", "sequences", "per_object": {"<seq>_<id>": {...}}}``; each object entry
        holds its M/R/D, JF and (with ``per_frame``) ``frames``, ``J_per_frame``,
        ``F_per_frame``; unsupervised entries also ``proposal_id``, and the unsupervised result
        ``per_proposal``: ``{"<seq>_<proposal id>": {"proposal_id", "matched_object", "J",
        "F", "JF" (means against the matched object, null when unmatched), "J_per_object",
        "F_per_object", "JF_per_object" (means against each GT object)}}``.
    """
    gt_dirs = find_sequence_dirs(gt, "unsupervised" if options.task == "unsupervised" else "semi")
    names = select(sorted(gt_dirs), sequences, "sequence")
    pred = Path(pred)
    if not pred.is_dir():
        raise InputError(f"prediction folder {pred} does not exist")
    jobs = [
        (name, gt_dirs[name], _pred_sequence_dir(pred, name, len(names) == 1)) for name in names
    ]
    processes = usable_processes(_workers(options.workers), len(jobs))
    inner = replace(options, workers=1) if processes > 1 else options
    per_object: dict[str, dict[str, Any]] = {}
    per_proposal: dict[str, dict[str, Any]] = {}
    for name, scored in zip(names, process_map(_score_job, inner, jobs, processes), strict=True):
        for gt_id, proposal_id, j, f in scored.pairs:
            entry = _object_entry(name, scored.frames, j, f, per_frame)
            entry["object_id"] = gt_id
            if proposal_id is not None:
                entry["proposal_id"] = proposal_id
            per_object[f"{name}_{gt_id}"] = entry
        if scored.matching is not None:
            per_proposal.update(_proposal_entries(name, scored.matching, scored.num_proposals))
    summary: dict[str, Any] = {"protocol": options.task}
    for key in STAT_KEYS:
        summary[key] = float(np.mean([entry[key] for entry in per_object.values()]))
    summary["JF"] = (summary["J"] + summary["F"]) / 2
    summary.update(num_objects=len(per_object), sequences=names, bound_th=options.bound_th)
    summary.update(exclude_void=options.exclude_void, per_object=per_object)
    if options.task == "unsupervised":
        summary["per_proposal"] = per_proposal
    return summary


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


#: Summarised GT chunks kept for the other expressions of a video that name the same objects
#: (MeViS expressions share them): at most this many frames, and only within one video.
TRUTH_CACHE_FRAMES = 1024


class ExpressionTruth:
    """GT masks of expressions, from ``mask_dict.json`` (MeViS) or label PNGs (Ref-YTVOS),
    produced a window of frames at a time; summarised chunks (:meth:`tracked`) are reused by
    the other expressions of the same video that refer to the same objects."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[tuple, Track] = {}
        self._cached_frames = 0
        mask_dict = root / "mask_dict.json"
        self.mask_dict = json.loads(mask_dict.read_text()) if mask_dict.is_file() else None
        if self.mask_dict is None and not (root / "Annotations").is_dir():
            raise InputError(
                f"{root} has neither mask_dict.json (MeViS) nor Annotations/ (Ref-YouTube-VOS)"
            )

    def union(
        self, video: str, frames: Sequence[str], expression: dict, geometry: Geometry, start: int
    ) -> Track:
        """The track of the union of the expression's objects on ``frames`` (the listed frames
        ``start..start + C`` of the video)."""
        if self.mask_dict is None:
            return track(self._label_union(video, frames, expression, geometry), geometry)
        rows = np.zeros((len(frames), geometry.height, geometry.words), dtype=np.uint64)
        shape = [geometry.height, geometry.width]
        for anno_id in _as_list(expression.get("anno_id")):
            rles = self.mask_dict.get(str(anno_id))
            if rles is None:
                raise InputError(f"anno_id {anno_id} of video {video} is not in mask_dict")
            if len(rles) < start + len(frames):
                raise InputError(f"mask_dict has {len(rles)} frames for anno_id {anno_id}")
            for index, rle in enumerate(rles[start : start + len(frames)]):
                if rle:
                    if [int(v) for v in rle["size"]] != shape:
                        raise InputError(
                            f"GT masks of {video} are {tuple(rle['size'])}, predictions are "
                            f"{tuple(shape)}"
                        )
                    rows[index] |= rle_row_bits(rle, geometry.words)
        return track_rows(rows, geometry)

    def _label_union(
        self, video: str, frames: Sequence[str], expression: dict, geometry: Geometry
    ) -> np.ndarray:
        """(C, H, W) bool union of the expression's objects from Ref-YouTube-VOS label PNGs."""
        shape = (geometry.height, geometry.width)
        out = np.zeros((len(frames), *shape), dtype=bool)
        paths = check_paths(self.root / "Annotations" / video, frames)
        ids = [int(obj_id) for obj_id in _as_list(expression.get("obj_id"))]
        for index, frame in enumerate(ordered_map(_ytvos_label, paths)):
            if frame.shape != shape:
                raise InputError(f"GT of {video} is {frame.shape}, predictions are {shape}")
            if ids:
                out[index] = np.isin(frame, ids) if len(ids) > 1 else frame == ids[0]
        return out

    def tracked(
        self,
        video: str,
        frames: Sequence[str],
        expression: dict,
        geometry: Geometry,
        start: int = 0,
    ) -> Track:
        """:meth:`union` on a chunk, reused for an expression of the same
        video naming the same objects (the cache holds one video's chunks, bounded)."""
        ids = ("anno", *sorted(map(str, _as_list(expression.get("anno_id")))))
        if self.mask_dict is None:
            ids = ("obj", *sorted(int(i) for i in _as_list(expression.get("obj_id"))))
        shape = (geometry.height, geometry.width)
        key = (video, ids, start, len(frames), shape, geometry.radius)
        if key in self._cache:
            return self._cache[key]
        if any(cached[0] != video for cached in self._cache):
            self._cache.clear()
            self._cached_frames = 0
        result = self.union(video, frames, expression, geometry, start)
        if self._cached_frames + len(frames) <= TRUTH_CACHE_FRAMES:
            self._cache[key] = result
            self._cached_frames += len(frames)
        return result


def _ytvos_label(path: Path) -> np.ndarray:
    return read_label_frame(path, "davis2017", VOID_LABEL).cleared()


def expression_counts(
    truth: ExpressionTruth,
    folder: Path,
    video: str,
    frames: Sequence[str],
    expression: dict,
    bound_th: float,
    workers: int | None = None,
) -> PairCounts:
    """Counts of one expression's predicted PNGs against its GT union, chunk by chunk."""
    paths = [folder / f"{frame}.png" for frame in frames]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"missing prediction {missing[0]} (and {len(missing) - 1} more)")
    masks: Iterator[np.ndarray] = ordered_map(read_binary_png, paths, workers)
    first = next(masks)
    geometry = Geometry.of(*first.shape, bound_th)
    counts = PairCounts(1, 1, len(frames))
    batches = chunked(itertools.chain([first], masks), geometry.chunk)
    for index, batch in enumerate(batches):
        start = index * geometry.chunk
        for mask in batch:
            if mask.shape != first.shape:
                raise InputError(f"predictions of {video} have sizes {first.shape}, {mask.shape}")
        window = frames[start : start + len(batch)]
        gt = truth.tracked(video, window, expression, geometry, start)
        pred = track(np.stack(batch), geometry)
        counts.add(start, [gt], {0: pred}, geometry)
    return counts


@dataclass(frozen=True)
class MevisOptions:
    """How MeViS-layout folders are scored (see :func:`run_mevis`)."""

    bound_th: float
    per_frame: bool = True
    workers: int | None = None


def _expression_entry(
    truth: ExpressionTruth, pred: Path, video: str, info: dict, exp_id: str, options: MevisOptions
) -> dict[str, Any]:
    expression = info["expressions"][exp_id]
    frames = [str(frame) for frame in info["frames"]]
    entry: dict[str, Any] = {"video": video, "expression": exp_id}
    entry["text"] = expression.get("exp", "")
    if not (pred / video).is_dir():
        entry.update(J=0.0, F=0.0, JF=0.0, missing=True)
        return entry
    counts = expression_counts(
        truth, pred / video / exp_id, video, frames, expression, options.bound_th, options.workers
    )
    j, f = (scores[0, 0] for scores in counts.scores())
    j_mean, f_mean = float(j.mean()), float(f.mean())
    entry.update(J=j_mean, F=f_mean, JF=(j_mean + f_mean) / 2, missing=False)
    if options.per_frame:
        entry.update(frames=frames, J_per_frame=j.tolist(), F_per_frame=f.tolist())
    return entry


def _video_entries(
    shared: tuple[ExpressionTruth, Path, dict[str, Any], MevisOptions], video: str
) -> dict[str, dict[str, Any]]:
    """The entries of one video's expressions (one unit of :func:`process_map`)."""
    truth, pred, videos, options = shared
    return {
        f"{video}_{exp_id}": _expression_entry(truth, pred, video, videos[video], exp_id, options)
        for exp_id in videos[video]["expressions"]
    }


def run_mevis(
    gt: str | Path,
    pred: str | Path,
    *,
    sequences: Sequence[str] | None = None,
    bound_th: float,
    per_frame: bool = True,
    workers: int | None = None,
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
    names = select(list(videos), sequences, "video")
    missing_videos = [video for video in names if not (pred / video).is_dir()]
    for video in missing_videos:
        logger.warning("no predictions for video %s: its expressions score 0", video)
    processes = usable_processes(_workers(workers), len(names))
    options = MevisOptions(bound_th, per_frame, 1 if processes > 1 else workers)
    shared = (ExpressionTruth(root), pred, videos, options)
    per_expression: dict[str, dict[str, Any]] = {}
    for entries in process_map(_video_entries, shared, names, processes):
        per_expression.update(entries)
    if not per_expression:
        raise InputError(f"{meta_path} lists no expressions to evaluate")
    j_all = float(np.mean([e["J"] for e in per_expression.values()]))
    f_all = float(np.mean([e["F"] for e in per_expression.values()]))
    return {
        "protocol": "mevis", "J": j_all, "F": f_all, "JF": (j_all + f_all) / 2,
        "num_expressions": len(per_expression), "missing_videos": missing_videos,
        "bound_th": bound_th, "per_expression": per_expression,
    }  # fmt: skip
