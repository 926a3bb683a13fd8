"""Evaluation commands: ``score`` (any system's predictions) and ``eval`` (run a preset, score it).

    pixelground score refer --gt refcoco:/data/refer --pred preds.jsonl [--protocol sa2va]
    pixelground score vos --gt DAVIS/ --pred results/ --protocol semi|unsupervised|mevis --json
    pixelground score panoptic --gt GT.json --gt-dir GT/ --pred PRED.json --pred-dir PRED/ --json
    pixelground eval refer --dataset refcoco:/data/refer --preset default --limit 100 --out runs/x
    pixelground eval rvos --dataset mevis:/data/MeViS/valid_u --preset default --out runs/mevis
    pixelground eval refer --dataset synth:bench/refer/test --preset shapes   (also gcg, rvos)

``--json`` prints one JSON object (the whole result) on stdout; otherwise a table of the
headline metrics is printed (fractions shown as percentages). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pixelground.backends.base import DETECTION_THRESHOLD
from pixelground.core.errors import InputError
from pixelground.core.files import check_output, check_output_dir, write_text_atomic
from pixelground.eval.loop import VIDEO_TASKS, check_eval_task, evaluate
from pixelground.eval.report import print_table, summary, to_json, write_per_sample_csv
from pixelground.eval.run import dataset_format, score
from pixelground.eval.tasks import eval_tasks, scored_tasks
from pixelground.serve.commands.common import add_model_option, load_pipeline, say

TASK_HELP = ", ".join(scored_tasks())


def _stdout_console():
    return Console(file=sys.stdout, soft_wrap=True)


def _stderr_console():
    return Console(file=sys.stderr)


def _emit(result: dict[str, Any], args: argparse.Namespace, title: str | None = None) -> None:
    if getattr(args, "per_sample_csv", None):
        write_per_sample_csv(result.get("per_sample", []), args.per_sample_csv)
    if getattr(args, "output", None):
        write_text_atomic(args.output, to_json(result) + "\n")
        say(f"wrote {args.output}")
    if args.json:
        sys.stdout.write(to_json(result if not args.summary_only else summary(result)) + "\n")
    else:
        print_table(result, console=_stdout_console(), title=title)


def _check_outputs(args: argparse.Namespace) -> None:
    """-o and --per-sample-csv (and eval's --out folder) can be written, before any work."""
    check_output(getattr(args, "output", None), "-o")
    check_output(getattr(args, "per_sample_csv", None), "--per-sample-csv")
    if getattr(args, "out", None):
        check_output_dir(args.out, "--out")


def _class_names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        text = path.read_text()
        if path.suffix == ".json":
            data = json.loads(text)
            return [str(c["name"]) if isinstance(c, dict) else str(c) for c in data]
        return [line.strip() for line in text.splitlines() if line.strip()]
    return [name.strip() for name in value.split(",") if name.strip()]


def _score_options(args: argparse.Namespace) -> dict[str, Any]:
    classes = _class_names(args.classes)
    return {
        "split": args.split,
        "image_dir": args.image_dir,
        "allow_missing": args.allow_missing,
        "gt_dir": args.gt_dir,
        "pred_dir": args.pred_dir,
        "categories": args.categories,
        "phrase_encoder": args.phrase_encoder,
        "similarity_table": args.similarity_table,
        "captions": not args.no_captions,
        "caption_metrics": args.metrics.split(",") if args.metrics else None,
        "num_classes": args.num_classes or (len(classes) if classes else None),
        "class_names": classes,
        "ignore_index": args.ignore_index,
        "reduce_zero_label": args.reduce_zero_label or None,
        "sequences": args.sequences,
        "bound_th": args.bound_th,
        "exclude_void": args.exclude_void or None,
        "per_frame": False if args.no_per_frame else None,
        "workers": args.workers,
    }


def _score(args: argparse.Namespace) -> int:
    if args.task != "panoptic" and (args.gt_dir or args.pred_dir):
        raise InputError("--gt-dir/--pred-dir are for panoptic scoring only")
    _check_outputs(args)
    result = score(args.task, args.pred, args.gt, args.protocol, **_score_options(args))
    _emit(result, args)
    return 0


def _prediction_options(args: argparse.Namespace) -> dict[str, Any]:
    """The prediction options given on the command line (None = the task's default)."""
    return {
        "threshold": args.threshold,
        "key_frames": args.key_frames,
        "redetect_every": args.redetect_every,
        "strategy": args.strategy,
        "compose": args.compose,
    }


def _eval(args: argparse.Namespace) -> int:
    check_eval_task(args.task)
    dataset_format(args.dataset, "rvos" if args.task in VIDEO_TASKS else args.task)
    _check_outputs(args)
    out_dir = args.out or str(Path("pixelground-eval") / f"{args.task}-{args.preset}")
    check_output_dir(out_dir, "--out")
    pipeline = load_pipeline(args)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    console = _stderr_console()
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as progress:
        bar = progress.add_task(f"eval {args.task}", total=None)
        result = evaluate(
            args.task,
            args.dataset,
            pipeline,
            out_dir,
            limit=args.limit,
            split=args.split,
            image_dir=args.image_dir,
            protocol=args.protocol,
            on_samples=lambda n: progress.update(bar, total=n),
            on_step=lambda _id, done, _total: progress.update(bar, completed=done),
            phrase_encoder=args.phrase_encoder,
            captions=not args.no_captions,
            caption_metrics=args.metrics.split(",") if args.metrics else None,
            options=_prediction_options(args),
        )
    print(f"pixelground: predictions, report.json and per_sample.csv in {out_dir}", file=sys.stderr)
    _emit(result, args, title=f"{args.task} on {args.dataset} ({args.preset})")
    return 0


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--summary-only", action="store_true", help="with --json: leave out per-sample lists"
    )
    parser.add_argument("--per-sample-csv", metavar="PATH", help="write per-sample rows as CSV")
    parser.add_argument("-o", "--output", metavar="PATH", help="also write the JSON result here")


def _add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", help="dataset split (default: the benchmark's val split)")
    parser.add_argument("--image-dir", help="folder of the dataset's images, when not found")
    parser.add_argument(
        "--protocol",
        help="refer: lisa (default), glamm or sa2va; vos: semi, unsupervised, mevis; "
        "rvos: mevis (the default and only one)",
    )
    parser.add_argument(
        "--phrase-encoder",
        default=None,
        help="gcg phrase similarity: auto (default), bert (official), minilm, lexical, or a dir",
    )
    parser.add_argument("--no-captions", action="store_true", help="gcg: skip caption metrics")
    parser.add_argument(
        "--metrics", help="caption: comma list of BLEU, METEOR, ROUGE_L, CIDEr (default all)"
    )


def _add_score(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score predictions of any system with the official metric",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", help=TASK_HELP)
    parser.add_argument("--pred", required=True, help="predictions (file or folder)")
    parser.add_argument("--gt", required=True, help="ground truth (FORMAT:PATH or a path)")
    parser.add_argument("--gt-dir", help="panoptic: folder of GT PNGs")
    parser.add_argument("--pred-dir", help="panoptic: folder of predicted PNGs")
    parser.add_argument("--categories", help="panoptic: categories JSON when the GT has none")
    parser.add_argument("--allow-missing", action="store_true", help="score missing as empty")
    parser.add_argument("--num-classes", type=int, help="semseg: number of classes")
    parser.add_argument("--classes", help="semseg: class names (file or comma list)")
    parser.add_argument("--ignore-index", type=int, help="semseg: label to ignore (255)")
    parser.add_argument("--reduce-zero-label", action="store_true", help="semseg: ADE20K style")
    parser.add_argument("--sequences", nargs="+", help="vos: only these sequences / videos")
    parser.add_argument("--bound-th", type=float, help="vos: boundary tolerance (0.008)")
    parser.add_argument("--exclude-void", action="store_true", help="vos: exclude void pixels")
    parser.add_argument("--no-per-frame", action="store_true", help="vos: no per-frame lists")
    parser.add_argument(
        "--workers",
        type=int,
        help="vos: sequences / videos scored in this many processes (Linux; else PNG decoding "
        "threads); panoptic: decoding threads (default: min(4, CPUs))",
    )
    parser.add_argument(
        "--similarity-table",
        metavar="JSON",
        help="gcg: fixed phrase similarities instead of an encoder (docs/eval.md)",
    )
    _add_dataset_options(parser)
    _add_output(parser)
    parser.set_defaults(handler=_score)


def _add_eval(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="run a preset over a dataset and score it (resumable)",
        description="Run a preset over a benchmark and score it. Predictions stream to "
        "OUT/predictions.jsonl (a re-run skips what is done), then OUT/report.json and "
        "OUT/per_sample.csv are written and the metrics printed. rvos (referring video "
        "segmentation; alias vos) also writes each expression's masks to "
        "OUT/Annotations/VIDEO/EXP_ID/FRAME.png (the MeViS submission layout) and scores J, F "
        "and J&F with the MeViS per-expression protocol.",
    )
    parser.add_argument("task", help=", ".join(eval_tasks()) + " (rvos: alias vos)")
    parser.add_argument(
        "--dataset",
        required=True,
        help="FORMAT:PATH, FORMAT in refcoco, refcoco+, refcocog, grefcoco, reasonseg, gcg, png, "
        "mevis, refytvos, synth (a `pixelground synth` split, e.g. synth:DIR/refer/test)",
    )
    parser.add_argument("--preset", default="auto", help="pipeline preset (see `presets`)")
    add_model_option(parser)
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    parser.add_argument("--limit", type=int, help="only the first N samples")
    parser.add_argument("--out", help="output folder (default pixelground-eval/TASK-PRESET)")
    parser.add_argument(
        "--threshold",
        type=float,
        help=f"refer, grefer, rvos: minimum detection score ({DETECTION_THRESHOLD})",
    )
    parser.add_argument(
        "--key-frames", type=int, help="rvos: frames to ground the expression on (5)"
    )
    parser.add_argument(
        "--compose",
        action="store_const",
        const=True,
        help="refer, grefer: answer ordinals, relations and sets by composing instances "
        "(the opt-in strategy of tasks/compose.py)",
    )
    parser.add_argument(
        "--redetect-every", type=int, help="rvos: detect again every N frames (default never)"
    )
    parser.add_argument(
        "--strategy",
        choices=("auto", "detector", "end-to-end"),
        help="rvos: Sa2VA end to end when the preset has it (auto), or detector first",
    )
    _add_dataset_options(parser)
    _add_output(parser)
    parser.set_defaults(handler=_eval)


def register(subparsers: Any) -> None:
    """Add the ``score`` and ``eval`` subcommands."""
    _add_score(subparsers)
    _add_eval(subparsers)
