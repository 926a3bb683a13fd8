"""The evaluation tasks, in one table: what each reads, how a pipeline answers it, which
protocols score it and which metrics a report shows first.

Everything that lists tasks reads this table: ``pixelground score`` and ``pixelground eval``
(their task names, help and checks), the dataset loader (which formats a task accepts), the
eval loop (which pipeline call answers a sample, with which options) and the report (the
headline metrics). Adding a task is a row here plus its scorer in
:mod:`pixelground.eval.run` (a branch of ``score_loaded`` for a dataset task, of ``_dispatch``
for a task scored from files).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: ``predict(pipeline, sample, options)`` -> a GroundedResult.
Predict = Callable[[Any, Any, Mapping[str, Any]], Any]


def marked_caption(narrative: Any) -> str:
    """The narrative's caption with each ground-truth phrase wrapped in ``<p>...</p>``."""
    caption = narrative.caption
    spans = sorted({p.span for p in narrative.phrases if p.span is not None})
    pieces, cursor = [], 0
    for start, end in spans:
        if start < cursor:  # overlapping spans: keep the first
            continue
        pieces += [caption[cursor:start], "<p>", caption[start:end], "</p>"]
        cursor = end
    pieces.append(caption[cursor:])
    return "".join(pieces)


def _segment(pipeline: Any, sample: Any, options: Mapping[str, Any]) -> Any:
    return pipeline.segment(str(sample.image_path), sample.text, **options)


def _grounded_caption(pipeline: Any, sample: Any, options: Mapping[str, Any]) -> Any:
    return pipeline.caption(str(sample.image_path), grounded=True)


def _caption(pipeline: Any, sample: Any, options: Mapping[str, Any]) -> Any:
    return pipeline.caption(str(sample.image_path))


def _ground(pipeline: Any, sample: Any, options: Mapping[str, Any]) -> Any:
    return pipeline.ground(str(sample.image_path), marked_caption(sample))


@dataclass(frozen=True)
class EvalTask:
    """One evaluation task.

    Attributes:
        name: the task name on the command line.
        formats: ground-truth dataset formats it reads (``FORMAT:PATH``); () for tasks scored
            from files only (vos, panoptic, entity, semseg).
        protocols: the official variants, the default first; () when there is one.
        default_protocol: the name reports give the single or default protocol.
        headline: the metrics a table shows first, as the papers report them.
        predict: how ``pixelground eval`` answers a sample with a pipeline; None when the
            task is scored only (or, for rvos, answered by the video loop).
        options: the prediction options ``predict`` takes.
        scored: ``pixelground score`` scores it.
        video: answered per expression over a video (:mod:`pixelground.eval.video_loop`).
        help: one line for ``--help``.
    """

    name: str
    formats: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    default_protocol: str = "official"
    headline: tuple[str, ...] = ()
    predict: Predict | None = None
    options: tuple[str, ...] = ()
    scored: bool = True
    video: bool = False
    help: str = ""


REFER_FORMATS = ("refcoco", "refcoco+", "refcocog", "reasonseg", "records", "synth")
VIDEO_FORMATS = ("mevis", "refytvos", "synth")
JF = ("JF", "J", "F")

TASK_TABLE: dict[str, EvalTask] = {
    t.name: t
    for t in (
        EvalTask("refer", REFER_FORMATS, ("lisa", "glamm", "sa2va"), "lisa",
                 ("gIoU", "cIoU", "N-acc", "T-acc"), _segment, ("threshold", "compose"),
                 help="referring segmentation: gIoU, cIoU (LISA/GLaMM)"),
        EvalTask("grefer", ("grefcoco", "records", "synth"), (), "rela",
                 ("gIoU", "cIoU", "N-acc", "T-acc", "Pr@0.7", "Pr@0.8", "Pr@0.9"), _segment,
                 ("threshold", "compose"), help="generalised referring (gRefCOCO, ReLA)"),
        EvalTask("gcg", ("gcg", "synth"), (), "glamm",
                 ("METEOR", "CIDEr", "AP50", "mIoU", "recall", "phrase_encoder"),
                 _grounded_caption, help="grounded caption generation (GLaMM)"),
        EvalTask("caption", ("coco-captions", "gcg", "records", "synth"), (), "coco-caption",
                 ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Bleu_1"), _caption,
                 help="captions (pycocoevalcap)"),
        EvalTask("png", ("png",), (), "png",
                 ("AR.All", "AR.Things", "AR.Stuff", "AR.Singulars", "AR.Plurals"), _ground,
                 help="panoptic narrative grounding (average recall)"),
        EvalTask("vos", (), ("semi", "semi-supervised", "unsupervised", "mevis"), "semi", JF,
                 help="video object segmentation PNGs (DAVIS, MeViS)"),
        EvalTask("rvos", VIDEO_FORMATS, ("mevis", "refytvos"), "mevis", JF, scored=False,
                 video=True, help="referring video segmentation (eval; alias vos)"),
        EvalTask("panoptic", (), (), "panopticapi",
                 ("All.pq", "All.sq", "All.rq", "Things.pq", "Stuff.pq"), help="panoptic PQ"),
        EvalTask("entity", (), (), "coco-segm-agnostic", ("AP", "AP50", "AP75"),
                 help="class-agnostic mask AP"),
        EvalTask("semseg", (), (), "mmseg", ("mIoU", "aAcc", "mAcc"),
                 help="semantic segmentation (mmseg)"),
    )
}  # fmt: skip

#: Names ``pixelground eval`` accepts for referring video segmentation.
VIDEO_ALIASES = ("rvos", "vos")


def scored_tasks() -> tuple[str, ...]:
    """The tasks ``pixelground score`` scores."""
    return tuple(name for name, task in TASK_TABLE.items() if task.scored)


def eval_tasks() -> tuple[str, ...]:
    """The tasks ``pixelground eval`` runs (a pipeline answers them)."""
    return tuple(n for n, t in TASK_TABLE.items() if t.predict is not None or t.video)


def headline(task: str) -> tuple[str, ...]:
    """The metrics a report of ``task`` shows first (() for an unknown task)."""
    found = TASK_TABLE.get(task)
    return found.headline if found else ()
