"""``pixelground annotate`` and ``pixelground export``: the data engine on the command line.

    pixelground annotate SOURCE --out DATASET [--levels 1,2,3] [--preset P] [--engine local|ray]
                         [--ray-address ADDR] [--workers N] [--cpus-per-worker C]
                         [--gpus-per-worker G] [--stage-resources STAGE=gpu:G,cpu:C,workers:N]
                         [--limit N] [--batch-size B]
                         [--shard-size S] [--retry-failed] [--model ROLE=SOURCE]
    pixelground export DATASET --format coco|gcg|refer|grand --out FILE

SOURCE is a folder or glob of images, a .txt list of paths or a COCO json. Rerunning the same
command resumes (done images are skipped); a dataset made with other settings is refused.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError
from pixelground.engine.api import annotate
from pixelground.engine.dataset import Dataset
from pixelground.engine.export import FORMATS, export
from pixelground.engine.ray_engine import parse_stage_resources
from pixelground.engine.source import iter_source
from pixelground.engine.stages import Settings
from pixelground.serve.commands.image import add_model_option, model_overrides


def register(subparsers: Any) -> None:
    """Add the ``annotate`` and ``export`` subcommands."""
    run = subparsers.add_parser(
        "annotate",
        help="auto-annotate images into a dataset of masks tied to words (GranD levels)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("source", metavar="SOURCE", help="folder, glob, .txt list or COCO json")
    run.add_argument("--out", required=True, metavar="DATASET", help="dataset folder")
    run.add_argument("--levels", default="1,2,3", help="GranD levels: 1, 1,2, 1,2,3 or 1,2,3,4")
    run.add_argument("--preset", default="auto")
    run.add_argument("--engine", default="local", choices=("local", "ray"))
    run.add_argument("--ray-address", help="join a Ray cluster (e.g. auto); default: start one")
    run.add_argument("--workers", type=int, default=1, help="Ray actors per step (default)")
    run.add_argument("--cpus-per-worker", type=float, default=0.5, help="CPUs per Ray actor")
    run.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Ray actor")
    run.add_argument("--stage-resources", action="append", default=[], metavar="SPEC",
                     help="Ray resources of the step holding STAGE: STAGE=gpu:G,cpu:C,workers:N "
                     "(repeatable), e.g. detect=gpu:0.5,cpu:1")  # fmt: skip
    run.add_argument("--limit", type=int, help="annotate at most the first N images")
    run.add_argument("--batch-size", type=int, default=4)
    run.add_argument("--shard-size", type=int, default=64, help="records per committed shard")
    run.add_argument("--retry-failed", action="store_true", help="redo images that failed")
    run.add_argument("--max-objects", type=int, default=Settings.max_objects)
    run.add_argument("--device", default=None)
    run.add_argument("--dtype", default=None)
    add_model_option(run)
    run.set_defaults(handler=run_annotate)

    out = subparsers.add_parser("export", help="export an annotated dataset")
    out.add_argument("dataset", metavar="DATASET")
    out.add_argument("--format", required=True, choices=FORMATS)
    out.add_argument("--out", required=True, metavar="FILE")
    out.set_defaults(handler=run_export)


def _levels(text: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as error:
        raise InputError(f"--levels takes numbers like 1,2,3, got {text!r}") from error


def _remaining(args: argparse.Namespace) -> int:
    """Images a run will annotate: the source's first --limit minus those already recorded."""
    previous = Dataset(args.out).status() if (Path(args.out) / "manifest.json").is_file() else {}
    skipped = {i for i, state in previous.items() if state == "done" or not args.retry_failed}
    counted = itertools.islice(iter_source(args.source), args.limit)
    return sum(1 for item in counted if item.id not in skipped)


def run_annotate(args: argparse.Namespace) -> int:
    """Annotate SOURCE into DATASET with a progress bar; prints the stats as JSON."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    ray_options = {"address": args.ray_address, "workers": args.workers,
                   "cpus_per_worker": args.cpus_per_worker,
                   "gpus_per_worker": args.gpus_per_worker,
                   "stage_resources": parse_stage_resources(args.stage_resources)}  # fmt: skip
    settings = Settings(max_objects=args.max_objects)
    total = _remaining(args)
    columns = (TextColumn("annotate"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} img/s"),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=None, transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("annotate", total=total, rate="-")

        def tick(_record: dict[str, Any]) -> None:
            bar.advance(task)
            speed = bar.tasks[0].speed
            bar.update(task, rate=f"{speed:.2f}" if speed else "-")

        summary = annotate(
            args.source, args.out, preset=args.preset, levels=_levels(args.levels),
            engine=args.engine, limit=args.limit, batch_size=args.batch_size,
            shard_size=args.shard_size, retry_failed=args.retry_failed, settings=settings,
            progress=tick, ray_options=ray_options, device=args.device, dtype=args.dtype,
            **model_overrides(args.model),
        )  # fmt: skip
    print(json.dumps(summary, indent=1))
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Export DATASET to FILE; prints how many entries were written."""
    count = export(args.dataset, args.format, args.out)
    print(json.dumps({"format": args.format, "out": args.out, "entries": count}))
    return 0
