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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError, UnknownNameError
from pixelground.eval import scoring
from pixelground.eval.datasets.glamm_gcg import load_gcg
from pixelground.eval.datasets.mevis import load_mevis, load_refytvos
from pixelground.eval.datasets.png_narratives import load_png
from pixelground.eval.datasets.reasonseg import load_reasonseg
from pixelground.eval.datasets.refcoco import load_grefer, load_refer
from pixelground.eval.datasets.synth import find_split, is_synth_split, load_synth
from pixelground.eval.metrics.entity import evaluate_entity
from pixelground.eval.metrics.panoptic import evaluate_panoptic
from pixelground.eval.metrics.phrase_similarity import SimilarityTable
from pixelground.eval.metrics.semantic import evaluate_semantic_folders
from pixelground.eval.metrics.vos import evaluate_vos
from pixelground.eval.predictions import read_predictions
from pixelground.eval.scoring import records_as_samples
from pixelground.eval.tasks import TASK_TABLE, scored_tasks

#: The tasks ``score`` scores (the table: :mod:`pixelground.eval.tasks`).
TASKS = scored_tasks()
FORMATS = (
    "refcoco", "refcoco+", "refcocog", "grefcoco", "reasonseg", "gcg", "png", "mevis",
    "refytvos", "coco-captions", "records", "synth",
)  # fmt: skip
DEFAULT_SPLITS = {
    "refcoco": "val", "refcoco+": "val", "refcocog": "val", "grefcoco": "val",
    "reasonseg": "val", "gcg": "val", "png": "val2017", "mevis": "valid_u", "refytvos": "valid",
    "synth": "test",
}  # fmt: skip
TASK_FORMATS = {name: task.formats for name, task in TASK_TABLE.items() if task.formats}
PROTOCOLS = {
    name: task.protocols for name, task in TASK_TABLE.items() if task.protocols and task.scored
}


def check_task(task: str) -> str:
    """The task name, or UnknownNameError listing the tasks."""
    if task not in TASKS:
        raise UnknownNameError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    return task


def parse_dataset_spec(spec: str | Path) -> tuple[str | None, Path]:
    """``"FORMAT:PATH"`` -> (format, path); a bare path gives (None, path)."""
    text = str(spec)
    head, sep, tail = text.partition(":")
    if sep and head.lower() in FORMATS:
        return head.lower(), Path(tail).expanduser()
    if sep and head and "/" not in head and "\\" not in head and len(head) > 1:
        raise UnknownNameError(f"unknown dataset format {head!r}; use one of {', '.join(FORMATS)}")
    return None, Path(text).expanduser()


def infer_format(path: Path, task: str) -> str:
    """Guess the dataset format of ``path`` from the files it holds."""
    if path.is_file():
        if task == "caption" and _is_coco_captions(path):
            return "coco-captions"
        if task == "gcg":
            return "gcg"
        return "records"
    if not path.is_dir():
        raise InputError(f"ground truth not found: {path}")
    if _holds_synth(path):
        return "synth"
    names = {p.name for p in path.iterdir()}
    if any(n.startswith("grefs(") for n in names) or ("grefcoco" in names and task == "grefer"):
        return "grefcoco"
    if any(n.startswith("refs(") for n in names):
        return path.name if path.name in DEFAULT_SPLITS else "refcoco"
    refer_dirs = sorted({"refcoco", "refcoco+", "refcocog"} & names)
    if task == "refer" and len(refer_dirs) == 1:
        return refer_dirs[0]
    if any(n.endswith("_gcg_coco_caption_gt.json") for n in names):
        return "gcg"
    if any(n.startswith("png_coco_") for n in names):
        return "png"
    if "meta_expressions.json" in names or "valid_u" in names:
        return "mevis"
    if "meta_expressions" in names and (path / "meta_expressions").is_dir():
        return "refytvos"
    if any(n.endswith(".json") for n in names) and any(n.endswith(".jpg") for n in names):
        return "reasonseg"
    if task in ("refer", "grefer") and ({"refcoco", "refcoco+", "refcocog"} & names):
        raise InputError(f"{path} holds several refer datasets; say which, e.g. refcoco:{path}")
    raise InputError(
        f"cannot tell the dataset format of {path}; prefix it with one of {', '.join(FORMATS)}"
    )


def _holds_synth(path: Path) -> bool:
    """A split, task or root folder written by ``pixelground synth``."""
    if is_synth_split(path):
        return True
    folders = [p for p in path.iterdir() if p.is_dir()]
    folders += [
        q for p in folders if p.name in ("refer", "gcg", "region", "video") for q in p.iterdir()
    ]
    return any(is_synth_split(p) for p in folders)


def _is_coco_captions(path: Path) -> bool:
    if path.suffix != ".json":
        return False
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    anns = data.get("annotations") if isinstance(data, dict) else None
    return bool(anns) and isinstance(anns[0], dict) and "caption" in anns[0]


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
    """Load ground-truth samples from a ``FORMAT:PATH`` spec (format inferred when omitted).

    Returns:
        (format, samples) — samples as the format's loader returns them.
    """
    fmt, path = dataset_format(spec, task)
    split = split or DEFAULT_SPLITS.get(fmt)
    if fmt in ("refcoco", "refcoco+", "refcocog"):
        return fmt, load_refer(path, fmt, split, image_dir=image_dir)
    if fmt == "grefcoco":
        return fmt, load_grefer(path, split, image_dir=image_dir)
    if fmt == "reasonseg":
        return fmt, load_reasonseg(path, split)
    if fmt == "gcg":
        return fmt, load_gcg(path, split or "val", image_dir)
    if fmt == "png":
        return fmt, load_png(path, split or "val2017", image_dir)
    if fmt == "mevis":
        return fmt, load_mevis(path, split or "valid_u")
    if fmt == "refytvos":
        return fmt, load_refytvos(path, split or "valid")
    if fmt == "synth":
        return fmt, load_synth(path, task, split)
    if fmt == "records":
        return fmt, records_as_samples(read_predictions(path))
    raise InputError(f"{fmt} ground truth is read by the caption scorer only")


def caption_references(spec: str | Path, split: str | None = None) -> dict[str, list[str]]:
    """id -> reference captions from COCO captions JSON, GranD-f GCG data, a synth gcg split or
    records."""
    fmt, path = parse_dataset_spec(spec)
    fmt = fmt or infer_format(path, "caption")
    if fmt == "coco-captions":
        refs: dict[str, list[str]] = {}
        for ann in json.loads(path.read_text())["annotations"]:
            refs.setdefault(str(ann["image_id"]), []).append(str(ann["caption"]))
        return refs
    if fmt == "records":
        return {k: [p.text or ""] for k, p in read_predictions(path).items()}
    _, samples = load_dataset(spec, "caption", split)  # gcg, synth; other formats refused
    return {str(s.id): [s.caption] for s in samples}


def _pick(options: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {k: options[k] for k in names if options.get(k) is not None}


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
    if task == "vos":
        names = ("sequences", "bound_th", "exclude_void", "max_proposals", "per_frame")
        fmt, path = parse_dataset_spec(gt)
        if fmt is not None and fmt not in ("mevis", "synth"):
            raise InputError(f"vos scores DAVIS or MeViS-layout folders, not {fmt} data")
        if fmt == "synth":
            path = find_split(path, "rvos", opts.get("split"))
        default = "mevis" if fmt else "semi"
        return evaluate_vos(path, pred, protocol or default, **_pick(opts, names))
    if task == "panoptic":
        return evaluate_panoptic(
            gt, opts.get("gt_dir"), pred, opts.get("pred_dir"), opts.get("categories")
        )
    if task == "entity":
        return evaluate_entity(gt, entity_predictions(pred, gt))
    if task == "semseg":
        return _semseg(pred, gt, opts)
    if task == "caption":
        refs = caption_references(gt, opts.get("split"))
        allow = bool(opts.get("allow_missing", False))
        metrics = opts.get("caption_metrics")
        return scoring.score_captions(refs, read_predictions(pred), allow, metrics)
    _, samples = load_dataset(gt, task, opts.get("split"), opts.get("image_dir"))
    return score_loaded(task, samples, read_predictions(pred), protocol, **opts)


def score_loaded(
    task: str,
    samples: Sequence[Any],
    predictions: dict[str, Any],
    protocol: str | None = None,
    **opts: Any,
) -> dict[str, Any]:
    """Score loaded samples of a dataset task (refer, grefer, gcg, caption, png).

    Args:
        task: the task.
        samples: ground-truth samples from :func:`load_dataset`.
        predictions: id -> :class:`~pixelground.eval.predictions.Prediction`.
        protocol: refer variant ("lisa", "glamm", "sa2va").
        **opts: ``allow_missing``, ``phrase_encoder``, ``captions``; gcg ``similarity`` (a
            callable) or ``similarity_table`` (a JSON file, see
            :mod:`pixelground.eval.metrics.phrase_similarity`) instead of the encoder.
    """
    allow = bool(opts.get("allow_missing", False))
    if task == "refer":
        return scoring.score_refer(samples, predictions, protocol or "lisa", allow)
    if task == "grefer":
        return scoring.score_grefer(samples, predictions, allow)
    if task == "gcg":
        encoder = opts.get("phrase_encoder") or "auto"
        captions = opts.get("captions", True)
        similarity = opts.get("similarity")
        if opts.get("similarity_table") is not None:
            if similarity is not None or opts.get("phrase_encoder"):
                raise InputError("give a similarity table or a phrase encoder, not both")
            similarity = SimilarityTable.from_json(opts["similarity_table"])
        return scoring.score_gcg(samples, predictions, encoder, captions, allow, similarity)
    if task == "caption":
        refs = {str(s.id): [s.caption] for s in samples}
        return scoring.score_captions(refs, predictions, allow, opts.get("caption_metrics"))
    if task == "png":
        return scoring.score_png(samples, predictions, allow)
    raise InputError(f"task {task} is not scored from dataset samples")


def _semseg(pred: Any, gt: Any, opts: dict[str, Any]) -> dict[str, Any]:
    if not opts.get("num_classes"):
        raise InputError("semseg scoring needs the number of classes (--num-classes N)")
    names = ("class_names", "ignore_index", "convention", "reduce_zero_label")
    return evaluate_semantic_folders(gt, pred, int(opts["num_classes"]), **_pick(opts, names))


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
