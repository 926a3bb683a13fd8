"""The scorer of each evaluation task, in the two shapes the task table
(:mod:`pixelground.eval.tasks`) holds:

- ``score(pred, gt, protocol, options) -> dict`` for a task that reads its own files
  (vos, panoptic, entity, semseg, caption): ``pred`` and ``gt`` as given to
  :func:`pixelground.eval.run.score`;
- ``score_samples(samples, predictions, protocol, options) -> dict`` for a dataset task
  (refer, grefer, gcg, caption, png): the samples :func:`pixelground.eval.run.load_dataset`
  loaded and the predictions keyed by sample id.

``protocol`` is the checked protocol or None (the task's default); ``options`` are the keyword
options of :func:`pixelground.eval.run.score`. Each scorer returns the metric's JSON-ready
dict; :mod:`pixelground.eval.run` adds ``"task"`` and ``"protocol"``. This module sits below
the table and ``run``, so neither imports the other's callers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError
from pixelground.eval import scoring
from pixelground.eval.datasets.synth import find_split
from pixelground.eval.metrics.entity import evaluate_entity
from pixelground.eval.metrics.panoptic import evaluate_panoptic
from pixelground.eval.metrics.phrase_similarity import SimilarityTable
from pixelground.eval.metrics.semantic import evaluate_semantic_folders
from pixelground.eval.metrics.vos import evaluate_vos
from pixelground.eval.predictions import Prediction, read_predictions
from pixelground.eval.specs import infer_format, load_samples, parse_dataset_spec

#: ``score(pred, gt, protocol, options)`` -> the metric's dict (a task scored from files).
ScoreFiles = Callable[[Any, Any, str | None, Mapping[str, Any]], dict[str, Any]]
#: ``score_samples(samples, predictions, protocol, options)`` -> the metric's dict.
ScoreSamples = Callable[
    [Sequence[Any], Mapping[str, Prediction], str | None, Mapping[str, Any]], dict[str, Any]
]


def pick(options: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The options among ``names`` that are set (not None)."""
    return {k: options[k] for k in names if options.get(k) is not None}


def _allow(options: Mapping[str, Any]) -> bool:
    return bool(options.get("allow_missing", False))


# Dataset tasks: loaded samples and predictions by id.


def refer_samples(
    samples: Sequence[Any],
    predictions: Mapping[str, Prediction],
    protocol: str | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """Referring segmentation (LISA/GLaMM or Sa2VA cIoU, gIoU)."""
    return scoring.score_refer(samples, predictions, protocol or "lisa", _allow(options))


def grefer_samples(
    samples: Sequence[Any],
    predictions: Mapping[str, Prediction],
    protocol: str | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """Generalised referring segmentation (ReLA: gIoU, cIoU, N-acc, T-acc)."""
    return scoring.score_grefer(samples, predictions, _allow(options))


def gcg_samples(
    samples: Sequence[Any],
    predictions: Mapping[str, Prediction],
    protocol: str | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """GLaMM GCG metrics; options ``phrase_encoder``, ``captions``, ``similarity`` (a callable)
    or ``similarity_table`` (a JSON file, see :mod:`pixelground.eval.metrics.phrase_similarity`)
    instead of the encoder."""
    encoder = options.get("phrase_encoder") or "auto"
    captions = options.get("captions", True)
    similarity = options.get("similarity")
    if options.get("similarity_table") is not None:
        if similarity is not None or options.get("phrase_encoder"):
            raise InputError("give a similarity table or a phrase encoder, not both")
        similarity = SimilarityTable.from_json(options["similarity_table"])
    return scoring.score_gcg(samples, predictions, encoder, captions, _allow(options), similarity)


def caption_samples(
    samples: Sequence[Any],
    predictions: Mapping[str, Prediction],
    protocol: str | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """Caption metrics against each sample's caption; option ``caption_metrics``."""
    refs = {str(s.id): [s.caption] for s in samples}
    return scoring.score_captions(
        refs, predictions, _allow(options), options.get("caption_metrics")
    )


def png_samples(
    samples: Sequence[Any],
    predictions: Mapping[str, Prediction],
    protocol: str | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """Panoptic narrative grounding average recall."""
    return scoring.score_png(samples, predictions, _allow(options))


# Tasks scored from files they read themselves.


def caption_files(pred: Any, gt: Any, protocol: str | None, options: Mapping[str, Any]) -> dict:
    """Captions against COCO captions JSON, GranD-f GCG data or records
    (:func:`caption_references`)."""
    refs = caption_references(gt, options.get("split"))
    metrics = options.get("caption_metrics")
    return scoring.score_captions(refs, read_predictions(pred), _allow(options), metrics)


def vos_files(pred: Any, gt: Any, protocol: str | None, options: Mapping[str, Any]) -> dict:
    """PNG folders against a DAVIS folder (default ``semi``) or MeViS-layout / synth data
    (default ``mevis``)."""
    names = ("sequences", "bound_th", "exclude_void", "max_proposals", "per_frame", "workers")
    fmt, path = parse_dataset_spec(gt)
    if fmt is not None and fmt not in ("mevis", "synth"):
        raise InputError(f"vos scores DAVIS or MeViS-layout folders, not {fmt} data")
    if fmt == "synth":
        path = find_split(path, "rvos", options.get("split"))
    default = "mevis" if fmt else "semi"
    return evaluate_vos(path, pred, protocol or default, **pick(options, names))


def panoptic_files(pred: Any, gt: Any, protocol: str | None, options: Mapping[str, Any]) -> dict:
    """COCO panoptic JSON (+ ``pred_dir``) against COCO panoptic JSON (+ ``gt_dir``)."""
    return evaluate_panoptic(
        gt,
        options.get("gt_dir"),
        pred,
        options.get("pred_dir"),
        options.get("categories"),
        workers=options.get("workers"),
    )


def entity_files(pred: Any, gt: Any, protocol: str | None, options: Mapping[str, Any]) -> dict:
    """Class-agnostic mask AP against COCO instances JSON (:func:`entity_predictions`)."""
    return evaluate_entity(gt, entity_predictions(pred, gt))


def semseg_files(pred: Any, gt: Any, protocol: str | None, options: Mapping[str, Any]) -> dict:
    """Folders of label PNGs; needs ``num_classes``."""
    if not options.get("num_classes"):
        raise InputError("semseg scoring needs the number of classes (--num-classes N)")
    names = ("class_names", "ignore_index", "convention", "reduce_zero_label")
    return evaluate_semantic_folders(gt, pred, int(options["num_classes"]), **pick(options, names))


def caption_references(spec: str | Path, split: str | None = None) -> dict[str, list[str]]:
    """id -> reference captions from COCO captions JSON, GranD-f GCG data, a synth gcg split or
    records (whether the caption task reads the format is checked by the caller:
    :func:`pixelground.eval.run.score`)."""
    fmt, path = parse_dataset_spec(spec)
    fmt = fmt or infer_format(path, "caption")
    if fmt == "coco-captions":
        refs: dict[str, list[str]] = {}
        for ann in json.loads(path.read_text())["annotations"]:
            refs.setdefault(str(ann["image_id"]), []).append(str(ann["caption"]))
        return refs
    if fmt == "records":
        return {k: [p.text or ""] for k, p in read_predictions(path).items()}
    samples = load_samples(fmt, path, "caption", split)  # gcg, synth
    return {str(s.id): [s.caption] for s in samples}


def entity_predictions(pred: str | Path, gt: str | Path) -> list[dict[str, Any]]:
    """COCO results for class-agnostic AP: a COCO results JSON as is, or pixelground results
    matched to GT images by id or by image file name (every mask with its region score)."""
    path = Path(pred)
    if path.is_file() and path.suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, list) and (not data or "segmentation" in data[0]):
            return data
    images = json.loads(Path(gt).read_text()).get("images", [])
    by_name = {Path(img["file_name"]).stem: img["id"] for img in images}
    by_id = {str(img["id"]): img["id"] for img in images}
    out = []
    for record in read_predictions(pred).values():
        key = Path(record.image).stem if record.image else None
        image_id = by_id.get(record.id, by_name.get(record.id, by_name.get(key or "")))
        if image_id is None:
            raise InputError(f"prediction {record.id} matches no GT image by id or file name")
        for rle, score_value in zip(record.rles, record.scores, strict=True):
            out.append({"image_id": image_id, "segmentation": rle, "score": score_value})
    return out
