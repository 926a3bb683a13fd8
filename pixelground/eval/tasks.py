"""The evaluation tasks, in one table: what each reads, how a pipeline answers it, how it is
scored, which protocols score it and which metrics a report shows first.

Everything that lists tasks reads this table: ``pixelground score`` and ``pixelground eval``
(their task names, help and checks), the dataset loader (which formats a task accepts), the
scorer (:func:`pixelground.eval.run.score` and ``score_loaded`` call the row's ``score`` or
``score_samples``), the eval loop (which pipeline call answers a sample, with which options)
and the report (the headline metrics). Adding a task is a row here; its scorer is a function
in :mod:`pixelground.eval.scorers` (below this module, so nothing imports in a circle).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pixelground.eval import scorers
from pixelground.eval.scorers import ScoreFiles, ScoreSamples

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
        score: ``score(pred, gt, protocol, options) -> dict`` for a task scored from files it
            reads itself; None for a dataset task, whose ``pixelground score`` loads the
            dataset and calls ``score_samples``.
        score_samples: ``score_samples(samples, predictions, protocol, options) -> dict`` for a
            dataset task (also what ``pixelground eval`` scores its predictions with).
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
    score: ScoreFiles | None = None
    score_samples: ScoreSamples | None = None
    video: bool = False
    help: str = ""

    @property
    def scored(self) -> bool:
        """``pixelground score`` scores it (the row has a scorer)."""
        return self.score is not None or self.score_samples is not None


REFER_FORMATS = ("refcoco", "refcoco+", "refcocog", "reasonseg", "records", "synth")
VIDEO_FORMATS = ("mevis", "refytvos", "synth")
JF = ("JF", "J", "F")

TASK_TABLE: dict[str, EvalTask] = {
    t.name: t
    for t in (
        EvalTask("refer", REFER_FORMATS, ("lisa", "glamm", "sa2va"), "lisa",
                 ("gIoU", "cIoU", "N-acc", "T-acc"), _segment, ("threshold", "compose"),
                 score_samples=scorers.refer_samples,
                 help="referring segmentation: gIoU, cIoU (LISA/GLaMM)"),
        EvalTask("grefer", ("grefcoco", "records", "synth"), (), "rela",
                 ("gIoU", "cIoU", "N-acc", "T-acc", "Pr@0.7", "Pr@0.8", "Pr@0.9"), _segment,
                 ("threshold", "compose"), score_samples=scorers.grefer_samples,
                 help="generalised referring (gRefCOCO, ReLA)"),
        EvalTask("gcg", ("gcg", "synth"), (), "glamm",
                 ("METEOR", "CIDEr", "AP50", "mIoU", "recall", "phrase_encoder"),
                 _grounded_caption, score_samples=scorers.gcg_samples,
                 help="grounded caption generation (GLaMM)"),
        EvalTask("caption", ("coco-captions", "gcg", "records", "synth"), (), "coco-caption",
                 ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Bleu_1"), _caption,
                 score=scorers.caption_files, score_samples=scorers.caption_samples,
                 help="captions (pycocoevalcap)"),
        EvalTask("png", ("png",), (), "png",
                 ("AR.All", "AR.Things", "AR.Stuff", "AR.Singulars", "AR.Plurals"), _ground,
                 score_samples=scorers.png_samples,
                 help="panoptic narrative grounding (average recall)"),
        EvalTask("vos", (), ("semi", "semi-supervised", "unsupervised", "mevis"), "semi", JF,
                 score=scorers.vos_files,
                 help="video object segmentation PNGs (DAVIS, MeViS)"),
        EvalTask("rvos", VIDEO_FORMATS, ("mevis", "refytvos"), "mevis", JF, video=True,
                 help="referring video segmentation (eval; alias vos)"),
        EvalTask("panoptic", (), (), "panopticapi",
                 ("All.pq", "All.sq", "All.rq", "Things.pq", "Stuff.pq"),
                 score=scorers.panoptic_files, help="panoptic PQ"),
        EvalTask("entity", (), (), "coco-segm-agnostic", ("AP", "AP50", "AP75"),
                 score=scorers.entity_files, help="class-agnostic mask AP"),
        EvalTask("semseg", (), (), "mmseg", ("mIoU", "aAcc", "mAcc"),
                 score=scorers.semseg_files, help="semantic segmentation (mmseg)"),
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
