"""Referring video segmentation over a dataset: predict, stream to disk, score (MeViS protocol).

``evaluate_video(dataset, pipeline, out_dir)`` (what ``pixelground eval rvos`` runs):

1. loads the expressions of a MeViS-layout split (``mevis:``, ``synth:`` video splits) or of
   Ref-YouTube-VOS (``refytvos:``);
2. segments every expression whose id (``"<video>/<exp_id>"``) is not yet in
   ``OUT/predictions.jsonl``, over exactly the frames the dataset lists, with
   ``Pipeline.segment_video``. The union of the predicted tracks on each frame is written as a
   0/255 grayscale PNG to ``OUT/Annotations/<video>/<exp_id>/<frame>.png`` — the layout the
   MeViS and Ref-YouTube-VOS servers take (zip ``Annotations``) and ``pixelground score vos
   --protocol mevis`` reads — and then one line ``{"id", "result": <VideoResult JSON v1>}`` is
   appended to predictions.jsonl and flushed. An interrupted run loses at most the expression
   in flight; a re-run skips what is done. An expression whose input is bad (a
   PixelgroundError) gets ``{"id", "error"}``, is scored as an empty prediction and is tried
   again by the next run;
3. scores with the MeViS / Ref-YouTube-VOS per-expression protocol (as ``tools/eval_mevis.py``):
   per frame, J (region IoU) and F (boundary F-measure, bound_th 0.008 of the diagonal) of the
   predicted union against the union of the expression's GT objects, every listed frame
   counting and empty-vs-empty frames scoring 1; an expression scores the means over its
   frames; the report gives ``J`` and ``F`` = means over expressions and ``JF`` = (J + F) / 2.
   Splits without ground truth (MeViS ``valid``, Ref-YouTube-VOS ``valid``) are predicted
   only: the report says so and names the folder to submit.

Outputs: ``report.json`` (without per-expression rows), ``per_sample.csv`` (one row per
expression: id, video, expression, text, J, F, JF, frames, tracks, missing, error, type), and
``run.json`` (the settings; a re-run with other settings into the same folder is refused).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelground.backends.base import DETECTION_THRESHOLD
from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle
from pixelground.core.media import load_image
from pixelground.eval.metrics.jf import BOUND_TH
from pixelground.eval.metrics.vos_protocols import expression_scores
from pixelground.eval.run import load_dataset
from pixelground.eval.run_folder import (
    PREDICTIONS_FILE,
    check_limit,
    predict_resumable,
    read_progress,
    run_head,
    write_manifest,
    write_report,
)
from pixelground.eval.scoring import add_types
from pixelground.video.frames import FrameSource, VideoMetadata

log = logging.getLogger(__name__)

TASK = "rvos"
PROTOCOL = "mevis"
MASKS_DIR = "Annotations"
#: segment_video options ``pixelground eval rvos`` passes, with their defaults.
VIDEO_OPTIONS = {
    "key_frames": 5,
    "redetect_every": None,
    "threshold": DETECTION_THRESHOLD,
    "strategy": "auto",
}

StepCallback = Callable[[str, int, int], None]


class ListedFrames(FrameSource):
    """The frames a dataset lists for a video, in its order (one image file each).

    Unlike a folder, only the listed files are frames (MeViS and Ref-YouTube-VOS list them in
    meta_expressions.json); sampled index k is the k-th listed file.
    """

    def __init__(self, paths: Sequence[Path], folder: Path | None = None) -> None:
        super().__init__(None)
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError(f"no frames are listed for {folder}")
        missing = [p for p in self.paths if not p.is_file()]
        if missing:
            raise InputError(f"frame missing: {missing[0]} ({len(missing)} of the listed frames)")
        first = load_image(self.paths[0]).pixels
        self._metadata = VideoMetadata(
            path=str(folder or self.paths[0].parent),
            width=first.shape[1],
            height=first.shape[0],
            fps=None,
            num_frames=len(self.paths),
        )

    @property
    def metadata(self) -> VideoMetadata:
        return self._metadata

    def _source_count(self) -> int:
        return len(self.paths)

    def _decode(self, wanted: Iterator[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in wanted:
            if index >= len(self.paths):
                return
            pixels = load_image(self.paths[index]).pixels
            if pixels.shape[:2] != (self.height, self.width):
                raise InputError(
                    f"{self.paths[index]} is {pixels.shape[1]}x{pixels.shape[0]} but the first "
                    f"frame is {self.width}x{self.height}; all frames must be the same size"
                )
            yield index, pixels


def video_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The segment_video options of a run: :data:`VIDEO_OPTIONS` updated with given values."""
    out = dict(VIDEO_OPTIONS)
    for key, value in (options or {}).items():
        if value is None:  # not given (the CLI passes every option of every task)
            continue
        if key not in VIDEO_OPTIONS:
            raise InputError(f"unknown rvos option {key!r}; use {', '.join(VIDEO_OPTIONS)}")
        out[key] = value
    return out


def predict_expression(pipeline: Any, sample: Any, options: Mapping[str, Any]) -> Any:
    """The VideoResult of one expression over the frames its dataset lists."""
    frames = ListedFrames(sample.frame_paths, sample.frame_dir)
    return pipeline.segment_video(frames, sample.text, **options)


def union_masks(result: Mapping[str, Any], num_frames: int, sample_id: str) -> np.ndarray:
    """(T, H, W) bool union of a VideoResult dict's tracks on each of its frames."""
    video = result.get("video") or {}
    if int(video.get("num_frames", -1)) != num_frames:
        raise InputError(
            f"the prediction of {sample_id} has {video.get('num_frames')} frames but the "
            f"dataset lists {num_frames}; predict on exactly the listed frames"
        )
    out = np.zeros((num_frames, int(video["height"]), int(video["width"])), dtype=bool)
    for track in result.get("tracks", []):
        for entry in track.get("frames", []):
            frame = int(entry["frame"])
            if not 0 <= frame < num_frames:
                raise InputError(f"the prediction of {sample_id} has a mask on frame {frame}")
            mask = decode_rle(entry["mask"])
            if mask.shape != out.shape[1:]:
                raise InputError(
                    f"the prediction of {sample_id} has a {mask.shape} mask on frame {frame} "
                    f"of a {out.shape[1:]} video"
                )
            out[frame] |= mask
    return out


def mask_folder(out_dir: str | Path, sample: Any) -> Path:
    """``OUT/Annotations/<video>/<exp_id>``: where an expression's PNGs go."""
    return Path(out_dir) / MASKS_DIR / str(sample.video) / str(sample.exp_id)


def write_pngs(masks: np.ndarray, folder: Path, frames: Sequence[str]) -> None:
    """One 0/255 grayscale PNG per frame, named ``<frame>.png``: (T, H, W) bool masks."""
    folder.mkdir(parents=True, exist_ok=True)
    for mask, name in zip(masks, frames, strict=True):
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(folder / f"{name}.png")


def _pngs_complete(folder: Path, frames: Sequence[str]) -> bool:
    return all((folder / f"{name}.png").is_file() for name in frames)


def run_video_predictions(
    pipeline: Any,
    samples: Sequence[Any],
    out_dir: str | Path,
    options: Mapping[str, Any],
    on_step: StepCallback | None = None,
) -> dict[str, int]:
    """Predict every expression not yet in ``out_dir/predictions.jsonl``; returns counts."""

    def predict_one(sample: Any) -> dict[str, Any]:
        result = predict_expression(pipeline, sample, options).to_dict()
        masks = union_masks(result, len(sample.frames), str(sample.id))
        write_pngs(masks, mask_folder(out_dir, sample), sample.frames)
        return result

    return predict_resumable(samples, out_dir, predict_one, on_step, parse=_result_of)


def _result_of(record: dict[str, Any]) -> dict[str, Any]:
    result = record["result"]
    if not isinstance(result, dict) or "tracks" not in result:
        raise InputError(f"prediction {record.get('id')} is not a VideoResult")
    return result


def score_expressions(
    samples: Sequence[Any],
    results: Mapping[str, Mapping[str, Any]],
    errors: Mapping[str, str] | None = None,
    bound_th: float | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """MeViS per-expression J, F, J&F of predicted VideoResult dicts (see the module docstring).

    Args:
        samples: expressions with ground truth (``gt_masks()`` (T, H, W), ``frames``, ``id``).
        results: sample id -> VideoResult dict; a sample without one scores an empty prediction.
        errors: sample id -> error message of failed predictions (kept in the rows).
        bound_th: boundary tolerance of F (default 0.008 of the diagonal).
        out_dir: when given, PNGs missing under ``out_dir/Annotations`` are written.

    Returns:
        ``{"J", "F", "JF", "num_expressions", "missing_predictions", "bound_th",
        "per_sample": [{"id", "video", "expression", "text", "J", "F", "JF", "frames",
        "tracks", "missing", ("error")}]}``, plus ``by_type`` when expressions have types.
    """
    if not samples:
        raise InputError("no expressions to score")
    bound_th = BOUND_TH if bound_th is None else bound_th
    rows = [
        _score_row(sample, results.get(str(sample.id)), errors or {}, bound_th, out_dir)
        for sample in samples
    ]
    j_all = float(np.mean([r["J"] for r in rows]))
    f_all = float(np.mean([r["F"] for r in rows]))
    out: dict[str, Any] = {
        "J": j_all,
        "F": f_all,
        "JF": (j_all + f_all) / 2,
        "num_expressions": len(rows),
        "missing_predictions": sum(r["missing"] for r in rows),
        "bound_th": bound_th,
        "per_sample": rows,
    }
    add_types(out, samples, {"J": "J", "F": "F", "JF": "JF"})
    return out


def _score_row(
    sample: Any,
    result: Mapping[str, Any] | None,
    errors: Mapping[str, str],
    bound_th: float,
    out_dir: str | Path | None,
) -> dict[str, Any]:
    """One expression's per-sample row: J and F means over its frames (MeViS protocol)."""
    sid = str(sample.id)
    gt = sample.gt_masks()
    pred = np.zeros_like(gt) if result is None else union_masks(result, len(gt), sid)
    if pred.shape != gt.shape:
        raise InputError(
            f"the prediction of {sid} is {pred.shape[1:]} (H, W) but its ground truth is "
            f"{gt.shape[1:]}: predict at the frames' size"
        )
    if result is not None and out_dir is not None:
        folder = mask_folder(out_dir, sample)
        if not _pngs_complete(folder, sample.frames):
            write_pngs(pred, folder, sample.frames)
    j, f = expression_scores(gt, pred, bound_th)
    j_mean, f_mean = float(j.mean()), float(f.mean())
    row: dict[str, Any] = {"id": sid, "video": sample.video, "expression": sample.exp_id}
    row.update(text=sample.text, J=j_mean, F=f_mean, JF=(j_mean + f_mean) / 2)
    row.update(frames=len(gt), tracks=len(result["tracks"]) if result else 0)
    row["missing"] = result is None
    if result is None and sid in errors:
        row["error"] = errors[sid]
    return row


def check_protocol(protocol: str | None) -> str:
    """The protocol of ``eval rvos``: the MeViS per-expression protocol (also Ref-YouTube-VOS's)."""
    if protocol in (None, PROTOCOL, "refytvos"):
        return PROTOCOL
    if protocol in ("semi", "semi-supervised", "unsupervised"):
        raise InputError(
            f"`pixelground eval` runs referring video segmentation, scored with the MeViS "
            f"per-expression protocol; the DAVIS {protocol} protocol scores a tracker's masks: "
            "write them in DAVIS layout and use `pixelground score vos --protocol " + protocol + "`"
        )
    raise InputError(f"unknown referring video protocol {protocol!r}; use mevis")


def evaluate_video(
    dataset: str | Path,
    pipeline: Any,
    out_dir: str | Path,
    limit: int | None = None,
    split: str | None = None,
    protocol: str | None = None,
    options: Mapping[str, Any] | None = None,
    on_step: StepCallback | None = None,
    on_samples: Callable[[int], None] | None = None,
    bound_th: float | None = None,
) -> dict[str, Any]:
    """Predict and score referring video segmentation on a dataset (see the module docstring).

    Args:
        dataset: ``mevis:PATH``, ``refytvos:PATH`` or ``synth:PATH`` (format inferred when
            omitted).
        pipeline: a ``pixelground.load(...)`` Pipeline (needs a video segmenter and a detector or
            Sa2VA), or any object with ``segment_video(frames, text, **options)``.
        out_dir: output folder (created).
        limit: only the first N expressions.
        split: dataset split (MeViS ``valid_u``, Ref-YouTube-VOS ``valid``, synth ``test``).
        protocol: "mevis" (the only one; "refytvos" is the same).
        options: segment_video options (:data:`VIDEO_OPTIONS`).
        on_step: called after each expression with (id, done, total).
        on_samples: called once with the number of expressions to run.
        bound_th: boundary tolerance of F (default 0.008).

    Returns:
        The full result (with per-expression rows); report.json holds it without them.
    """
    protocol = check_protocol(protocol)
    settings = video_options(options)
    fmt, samples = load_dataset(dataset, TASK, split)
    samples = check_limit(samples, limit)
    out = Path(out_dir)
    write_manifest(out, TASK, dataset, fmt, split, pipeline, settings)
    if on_samples is not None:
        on_samples(len(samples))
    counts = run_video_predictions(pipeline, samples, out, settings, on_step)
    done, errors = read_progress(out / PREDICTIONS_FILE, parse=_result_of)
    wanted = {str(s.id) for s in samples}
    failed = len([e for e in errors if e in wanted])
    head = run_head(TASK, dataset, fmt, pipeline, len(samples), failed, counts)
    head.update(protocol=protocol, options=settings, masks_dir=str(out / MASKS_DIR))
    if not all(s.has_ground_truth for s in samples):
        rows = [_unscored_row(s, done.get(str(s.id)), errors) for s in samples]
        result = {**head, "scored": False, "note": _no_truth_note(out), "per_sample": rows}
    else:
        results = {k: v for k, v in done.items() if k in wanted}
        scores = score_expressions(samples, results, errors, bound_th, out_dir=out)
        result = {**head, **scores}
    write_report(out, result)
    return result


def _unscored_row(sample: Any, result: Any, errors: Mapping[str, str]) -> dict[str, Any]:
    row = {"id": str(sample.id), "video": sample.video, "expression": sample.exp_id}
    row.update(text=sample.text, frames=len(sample.frames), missing=result is None)
    row["tracks"] = len(result["tracks"]) if result else 0
    if result is None and str(sample.id) in errors:
        row["error"] = errors[str(sample.id)]
    return row


def _no_truth_note(out: Path) -> str:
    return (
        "this split has no ground truth (its answers are scored by the benchmark's server): "
        f"predictions only; zip {out / MASKS_DIR} and submit it"
    )
