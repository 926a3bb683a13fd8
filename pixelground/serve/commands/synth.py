"""``pixelground synth``: write splits of the procedural grounding benchmark.

    pixelground synth DIR --task refer|gcg|region|video --n N --seed S
                      [--split train|val|test|val_heldout|paraphrase|all] [--size 256] [--frames 8]
                      [--n-eval M] [--image-format png|jpg] [--overwrite]

Writes ``DIR/<task>/<split>/`` (see docs/synth.md). With ``--split all`` the train split gets
N samples and val, test and val_heldout get ``--n-eval`` (default N // 5, at least 1) each.
val_heldout is a validation split of the held-out colour/kind pairs; paraphrase (refer only,
never part of ``all``) is test's scenes and targets worded by other templates (docs/synth.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pixelground.core.errors import InputError
from pixelground.core.files import check_output_dir
from pixelground.synth.splits import SPLITS, TASKS
from pixelground.synth.writer import SynthOptions, split_dir, write_split


def register(subparsers: Any) -> None:
    """Add the ``synth`` subcommand."""
    parser = subparsers.add_parser(
        "synth",
        help="generate the procedural grounding benchmark (shapes scenes and clips)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", metavar="DIR", help="output root; splits go to DIR/<task>/<split>")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--n", type=int, required=True, help="images (or videos) per split")
    parser.add_argument("--seed", type=int, default=0, help="non-negative seed (default 0)")
    parser.add_argument("--split", default="train", choices=(*SPLITS, "all"))
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (video; default 8)")
    parser.add_argument(
        "--n-eval", type=int, default=None, help="val/test/val_heldout size with --split all"
    )
    parser.add_argument("--image-format", default="png", choices=("png", "jpg"))
    parser.add_argument("--overwrite", action="store_true", help="replace existing split folders")
    parser.add_argument("--json", action="store_true", help="print each split's info.json")
    parser.set_defaults(handler=run)


def plan(split: str, n: int, n_eval: int | None) -> list[tuple[str, int]]:
    """(split, count) pairs to write for ``--split`` and ``--n``/``--n-eval``."""
    if n < 0 or (n_eval is not None and n_eval < 0):
        raise InputError("--n and --n-eval must be >= 0")
    if split != "all":
        return [(split, n)]
    small = n_eval if n_eval is not None else max(1, n // 5)
    return [("train", n), ("val", small), ("test", small), ("val_heldout", small)]


def run(args: argparse.Namespace) -> int:
    """Handler of ``pixelground synth``."""
    check_output_dir(args.dir, "DIR")
    options = SynthOptions(size=args.size, num_frames=args.frames, image_format=args.image_format)
    jobs = plan(args.split, args.n, args.n_eval)
    console = Console(stderr=True)
    infos = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=not console.is_terminal) as progress:
        for split, count in jobs:
            bar = progress.add_task(f"{args.task}/{split}", total=count)
            info = write_split(
                args.dir,
                args.task,
                split,
                count,
                seed=args.seed,
                options=options,
                progress=lambda k, bar=bar: progress.advance(bar, k),
                overwrite=args.overwrite,
            )
            infos.append(info)
    for info in infos:
        where = split_dir(args.dir, info["task"], info["split"])
        console.print(f"{where}: {info['counts']['records']} records", highlight=False)
        if args.json:
            sys.stdout.write(json.dumps(info) + "\n")
    return 0
