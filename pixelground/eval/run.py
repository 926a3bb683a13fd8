"""Score any system's predictions: one entry point, ``score(task, pred, gt, ...)``.

Tasks and what ``gt`` / ``pred`` are:

======== ===================================================== =================================
task     gt                                                    pred
======== ===================================================== =================================
refer    ``FORMAT:PATH`` dataset (refcoco, refcoco+, refcocog,  pixelground JSON/JSONL, mask
         reasonseg) or a JSON/JSONL of ground-truth records    records (Sa2VA/LISA style)
grefer   ``grefcoco:PATH`` or records                          as refer; empty = no target
vos      DAVIS folder / MeViS or Ref-YouTube-VOS folder        PNG folders in DAVIS layout
gcg      GranD-f ``val_test`` folder or GCG annotation list    GLaMM/Sa2VA per-image JSONs or
                                                               pixelground JSONL
caption  COCO captions JSON, GranD-f folder, or records        COCO results or pixelground JSONL
panoptic COCO panoptic JSON (+ ``gt_dir`` of PNGs)             COCO panoptic JSON (+ pred_dir)
entity   COCO instances JSON                                   COCO results or pixelground JSONL
semseg   folder of label PNGs                                  folder of label PNGs
png      PNG ``annotations`` folder                            pixelground JSONL (ground())
======== ===================================================== =================================

``protocol`` picks the official variant where several exist: refer ``lisa`` (= ``glamm``,
default) or ``sa2va``; vos ``semi`` (default), ``unsupervised`` or ``mevis``. Every result is a
JSON-ready dict with the headline metrics at the top level, ``"task"``, ``"protocol"`` and,
where it makes sense, ``"per_sample"`` records for error analysis.

Scoring goes through the task table (:mod:`pixelground.eval.tasks`): a task's row holds its
scorer (:mod:`pixelground.eval.scorers`), ``score(pred, gt, protocol, options)`` for a task that
reads its own files, or ``score_samples(samples, predictions, protocol, options)`` for a
dataset task, whose samples :func:`load_dataset` loads here. Ground-truth specs
(``FORMAT:PATH``) are parsed by :mod:`pixelground.eval.specs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError, UnknownNameError
from pixelground.eval.predictions import read_predictions
from pixelground.eval.scorers import caption_references as caption_references
from pixelground.eval.scorers import entity_predictions as entity_predictions
from pixelground.eval.specs import DEFAULT_SPLITS as DEFAULT_SPLITS
from pixelground.eval.specs import FORMATS as FORMATS
from pixelground.eval.specs import infer_format, load_samples, parse_dataset_spec
from pixelground.eval.tasks import TASK_TABLE, scored_tasks

#: The tasks ``score`` scores (the table: :mod:`pixelground.eval.tasks`).
TASKS = scored_tasks()
TASK_FORMATS = {name: task.formats for name, task in TASK_TABLE.items() if task.formats}
PROTOCOLS = {
    name: task.protocols for name, task in TASK_TABLE.items() if task.protocols and task.scored
}
__all__ = [
    "DEFAULT_SPLITS", "FORMATS", "PROTOCOLS", "TASKS", "TASK_FORMATS", "caption_references",
    "check_protocol", "check_task", "dataset_format", "entity_predictions", "infer_format",
    "load_dataset", "parse_dataset_spec", "score", "score_loaded",
]  # fmt: skip


def check_task(task: str) -> str:
    """The task name, or UnknownNameError listing the tasks."""
    if task not in TASKS:
        raise UnknownNameError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    return task


def dataset_format(spec: str | Path, task: str) -> tuple[str, Path]:
    """(format, path) of a ``FORMAT:PATH`` spec (format inferred when omitted), checked
    against what ``task`` reads; nothing is loaded, so a command can check it up front.

    Raises:
        InputError: ``task`` cannot be scored on this format (the message names the formats
            the task reads and the tasks the format serves), or the path is not found.
    """
    fmt, path = parse_dataset_spec(spec)
    fmt = fmt or infer_format(path, task)
    allowed = TASK_FORMATS.get(task)
    if allowed is not None and fmt not in allowed:
        served = [name for name, formats in TASK_FORMATS.items() if fmt in formats]
        raise InputError(
            f"a {fmt} dataset cannot be scored as {task}: {task} reads "
            f"{', '.join(allowed[:-1]) + ' or ' if len(allowed) > 1 else ''}{allowed[-1]} datasets"
            + (f"; a {fmt} dataset serves {', '.join(served)}" if served else "")
        )
    return fmt, path


def load_dataset(
    spec: str | Path,
    task: str,
    split: str | None = None,
    image_dir: str | Path | None = None,
) -> tuple[str, list[Any]]:
    """Load ground-truth samples from a ``FORMAT:PATH`` spec (format inferred when omitted),
    checked against what ``task`` reads (:func:`dataset_format`).

    Returns:
        (format, samples) — samples as the format's loader returns them.
    """
    fmt, path = dataset_format(spec, task)
    return fmt, load_samples(fmt, path, task, split, image_dir)


def check_protocol(task: str, protocol: str | None) -> str | None:
    choices = PROTOCOLS.get(task)
    if protocol is None or choices is None:
        if protocol is not None:
            raise InputError(f"task {task} has a single protocol; drop --protocol {protocol}")
        return None
    if protocol not in choices:
        raise InputError(f"unknown {task} protocol {protocol!r}; use one of {', '.join(choices)}")
    return protocol


def score(
    task: str,
    pred: str | Path,
    gt: str | Path,
    protocol: str | None = None,
    **opts: Any,
) -> dict[str, Any]:
    """Score predictions of ``task`` against ground truth with the official metric.

    Args:
        task: one of :data:`TASKS`.
        pred: predictions (file or folder; see the module table).
        gt: ground truth (``FORMAT:PATH`` or a path; see the module table).
        protocol: the official variant (refer: lisa/glamm/sa2va; vos: semi/unsupervised/mevis).
        **opts: task options — ``split``, ``image_dir``, ``allow_missing`` (dataset tasks);
            ``gt_dir``, ``pred_dir``, ``categories`` (panoptic); ``phrase_encoder``,
            ``similarity`` / ``similarity_table``, ``captions`` (gcg); ``caption_metrics``
            (caption: e.g. ["BLEU", "CIDEr"]);
            ``num_classes``, ``class_names``, ``ignore_index``, ``convention``,
            ``reduce_zero_label`` (semseg); ``sequences``, ``bound_th``, ``exclude_void``,
            ``per_frame``, ``max_proposals`` (vos).

    Returns:
        The metric's JSON-ready dict plus ``"task"`` and ``"protocol"``.
    """
    check_task(task)
    protocol = check_protocol(task, protocol)
    result = _dispatch(task, pred, gt, protocol, opts)
    return {"task": task, "protocol": protocol or _default_protocol(task), **result}


def _default_protocol(task: str) -> str:
    return TASK_TABLE[task].default_protocol


def _dispatch(task: str, pred: Any, gt: Any, protocol: str | None, opts: dict[str, Any]) -> dict:
    """The row's file scorer, or the dataset's samples scored by the row's sample scorer."""
    row = TASK_TABLE[task]
    if row.score is not None:
        if row.formats:  # a format the task does not read is refused before anything is read
            dataset_format(gt, task)
        return row.score(pred, gt, protocol, opts)
    _, samples = load_dataset(gt, task, opts.get("split"), opts.get("image_dir"))
    return score_loaded(task, samples, read_predictions(pred), protocol, **opts)


def score_loaded(
    task: str,
    samples: Sequence[Any],
    predictions: dict[str, Any],
    protocol: str | None = None,
    **opts: Any,
) -> dict[str, Any]:
    """Score loaded samples of a dataset task (refer, grefer, gcg, caption, png) with the
    row's ``score_samples`` (:mod:`pixelground.eval.scorers`).

    Args:
        task: the task.
        samples: ground-truth samples from :func:`load_dataset`.
        predictions: id -> :class:`~pixelground.eval.predictions.Prediction`.
        protocol: refer variant ("lisa", "glamm", "sa2va").
        **opts: ``allow_missing``, ``phrase_encoder``, ``captions``; gcg ``similarity`` (a
            callable) or ``similarity_table`` (a JSON file, see
            :mod:`pixelground.eval.metrics.phrase_similarity`) instead of the encoder.
    """
    row = TASK_TABLE.get(task)
    if row is None or row.score_samples is None:
        raise InputError(f"task {task} is not scored from dataset samples")
    return row.score_samples(samples, predictions, protocol, opts)
