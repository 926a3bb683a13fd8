"""Image commands: segment, ground, caption, describe, entities, semseg, chat, presets.

IMAGE is a file, a folder or a glob. One image writes one JSON object (to -o or stdout);
several write JSON lines, with a progress bar, and an image that fails is reported and
skipped without losing the others.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from pixelground.backends.base import DETECTION_THRESHOLD
from pixelground.core.errors import InputError, PixelgroundError
from pixelground.core.media import list_images, load_image
from pixelground.core.prompts import Box, Point
from pixelground.core.result import GroundedResult
from pixelground.serve.commands import video_tasks
from pixelground.tasks.common import clean_text
from pixelground.tasks.semseg import parse_classes

log = logging.getLogger("pixelground.cli")

Task = Callable[..., GroundedResult]


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """The repeatable ``--model ROLE=SOURCE`` option (see :func:`model_overrides`)."""
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ROLE=SOURCE",
        help="override a part of the preset: a hub id or local directory, "
        "e.g. segmenter=/models/sam2 or grounding_model=segtoken:runs/shapes/run",
    )


def model_overrides(values: list[str]) -> dict[str, str]:
    """``--model ROLE=SOURCE`` values as load() overrides; InputError for a malformed one."""
    overrides = {}
    for value in values:
        role, sep, source = value.partition("=")
        if not sep or not role or not source:
            raise InputError(
                f"--model takes ROLE=SOURCE (e.g. segmenter=/models/sam2), got {value!r}"
            )
        overrides[role] = source
    return overrides


def _pipeline(args: argparse.Namespace):
    from pixelground.pipeline import load

    pipeline = load(
        args.preset, device=args.device, dtype=args.dtype, **model_overrides(args.model)
    )
    if args.preset == "auto":
        print(f"pixelground: using preset {pipeline.preset.name!r}", file=sys.stderr)
    if not pipeline.meaningful:
        print(
            f"pixelground: preset {pipeline.preset.name!r} uses random-weight models: "
            "its output is not meaningful",
            file=sys.stderr,
        )
    return pipeline


def _write_overlay(result: GroundedResult, image_path: Path, target: Path) -> None:
    from PIL import Image

    from pixelground.viz.overlay import render_result

    pixels = load_image(image_path).pixels
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render_result(pixels, result)).save(target)


def _overlay_target(args: argparse.Namespace, image_path: Path, many: bool) -> Path | None:
    if not args.overlay:
        return None
    overlay = Path(args.overlay)
    return overlay / f"{image_path.stem}.png" if many else overlay


def run_images(
    args: argparse.Namespace, task: Task, check: Callable[[], object] | None = None
) -> int:
    """Run ``task(pipeline, image_path)`` on every image IMAGE names; write JSON or JSONL.

    ``check`` validates the other arguments before any model loads.
    """
    if check is not None:
        check()
    paths = list_images(args.image)
    if not paths:
        raise InputError(f"no images found at {args.image}")
    many = len(paths) > 1 or Path(args.image).is_dir()
    if not many:
        load_image(paths[0])  # a bad single image fails before any model loads
    pipeline = _pipeline(args)
    out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    failures = 0
    try:
        for path in _progress(paths, many):
            try:
                result = task(pipeline, path)
            except PixelgroundError as error:
                if not many:
                    raise
                failures += 1
                print(f"pixelground: skipped {path}: {error}", file=sys.stderr)
                continue
            out.write(result.to_json(indent=None if many else 2) + "\n")
            out.flush()
            target = _overlay_target(args, path, many)
            if target is not None:
                _write_overlay(result, path, target)
    finally:
        if out is not sys.stdout:
            out.close()
    if failures:
        print(f"pixelground: {failures} of {len(paths)} images failed", file=sys.stderr)
        return 1
    return 0


def _progress(paths: list[Path], many: bool):
    if not many:
        yield from paths
        return
    from rich.progress import Progress

    with Progress(transient=True, console=_stderr_console()) as progress:
        job = progress.add_task("images", total=len(paths))
        for path in paths:
            yield path
            progress.advance(job)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="image file, folder of images, or glob pattern")
    parser.add_argument(
        "--preset", default="auto", help="model preset (pixelground presets lists them)"
    )
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default=None, help="float32, float16 or bfloat16")
    add_model_option(parser)
    parser.add_argument("-o", "--output", help="write JSON (JSONL for several images) here")
    parser.add_argument("--overlay", help="write an overlay PNG here (a folder for several images)")


def _parse_mask(path: str, height: int, width: int):
    import numpy as np

    pixels = load_image(path).pixels
    mask = pixels.max(axis=2) > 0
    if mask.shape != (height, width):
        raise InputError(
            f"mask {path} is {mask.shape[1]}x{mask.shape[0]}, the image is {width}x{height}"
        )
    return np.asarray(mask)


def _describe(args: argparse.Namespace) -> int:
    given = [v for v in (args.box, args.point, args.mask) if v]
    if len(given) != 1:
        raise InputError(
            "describe needs exactly one of --box X0,Y0,X1,Y1, --point X,Y or --mask MASK.png"
        )

    box = Box.parse(args.box) if args.box else None
    point = Point.parse(args.point) if args.point else None

    def task(pipeline, path: Path) -> GroundedResult:
        if args.mask:
            image = load_image(path)
            return pipeline.describe(image, mask=_parse_mask(args.mask, image.height, image.width))
        return pipeline.describe(path, box=box, point=point)

    return run_images(args, task)


def _presets(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from pixelground.backends.presets import AUTO_ORDER, PRESETS, part_available

    rows = []
    for preset in PRESETS.values():
        for role, part in preset.parts.items():
            rows.append(
                (preset.name, role, part.backend, part.checkpoint or "-", part_available(part))
            )
    if args.json:
        keys = ("preset", "role", "backend", "checkpoint", "available")
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        return 0
    table = Table(
        title=f"pixelground presets (auto picks the first complete of {', '.join(AUTO_ORDER)})"
    )
    for column in ("preset", "role", "backend", "checkpoint", "local"):
        table.add_column(column)
    for name, role, backend, checkpoint, available in rows:
        table.add_row(name, role, backend, checkpoint, "yes" if available else "no")
    Console().print(table)
    for preset in PRESETS.values():
        print(f"{preset.name}: {preset.description}")
    return 0


def _handler(task: Task, check: Callable[[argparse.Namespace], object] | None = None):
    """A subcommand handler running ``task`` over IMAGE after ``check(args)`` passes."""

    def handle(args: argparse.Namespace) -> int:
        return run_images(
            args, lambda pipeline, path: task(pipeline, path, args), check and (lambda: check(args))
        )

    return handle


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the image commands to the CLI."""
    p = subparsers.add_parser("segment", help="referring segmentation: masks of what TEXT names")
    _add_common(p)
    p.add_argument("text", help='referring expression, e.g. "the man in the red jacket"')
    p.add_argument("--threshold", type=float, default=DETECTION_THRESHOLD, help="minimum score")
    p.add_argument(
        "--compose",
        action="store_const",
        const=True,
        help="answer ordinals, relations and sets by composing instances (opt-in strategy)",
    )
    p.set_defaults(
        handler=_handler(
            lambda pl, path, a: pl.segment(path, a.text, a.threshold, compose=a.compose),
            lambda a: clean_text(a.text, "expression"),
        )
    )

    p = subparsers.add_parser("ground", help="phrase grounding: masks for each phrase of CAPTION")
    _add_common(p)
    p.add_argument(
        "caption",
        help='caption; mark phrases as "<p>a dog</p> on <p>a sofa</p>" or let the parser find them',
    )
    p.add_argument("--strategy", choices=("detector", "entity"), default="detector")
    p.add_argument(
        "--points-per-side", type=int, default=16, help="entity strategy: point grid density"
    )
    p.set_defaults(
        handler=_handler(
            lambda pl, path, a: pl.ground(
                path, a.caption, a.strategy, entity_options={"points_per_side": a.points_per_side}
            ),
            lambda a: clean_text(a.caption, "caption"),
        )
    )

    p = subparsers.add_parser("caption", help="caption an image, optionally grounded (GCG)")
    _add_common(p)
    p.add_argument("--grounded", action="store_true", help="tie the caption's phrases to masks")
    p.add_argument("--detailed", action="store_true", help="a detailed caption")
    video_tasks.add_caption_options(p)
    image_caption = _handler(lambda pl, path, a: pl.caption(path, a.grounded, a.detailed))
    p.set_defaults(handler=video_tasks.dispatch(video_tasks.caption, image_caption))

    p = subparsers.add_parser(
        "describe", help="region understanding: label and captions of a region"
    )
    _add_common(p)
    p.add_argument("--box", help="X0,Y0,X1,Y1 in pixels")
    p.add_argument("--point", help="X,Y in pixels")
    p.add_argument("--mask", help="mask PNG of the image's size (nonzero = region)")
    video_tasks.add_describe_options(p)
    p.set_defaults(handler=video_tasks.dispatch(video_tasks.describe, _describe))

    p = subparsers.add_parser("entities", help="entity segmentation: masks of everything")
    _add_common(p)
    p.add_argument("--points-per-side", type=int, default=16)
    p.set_defaults(
        handler=_handler(lambda pl, path, a: pl.entities(path, points_per_side=a.points_per_side))
    )

    p = subparsers.add_parser("semseg", help="open-vocabulary semantic segmentation")
    _add_common(p)
    p.add_argument(
        "--classes", required=True, help='comma-separated class names, e.g. "sky,road,person"'
    )
    p.add_argument("--mode", choices=("dense", "entity", "cass"), default="dense")
    p.add_argument(
        "--setting",
        default=None,
        help="cass mode: an official dataset config (voc21, voc20, ade20k, city_scapes, "
        "context60, context59, coco_object, coco_stuff164k); --classes @NAME uses its classes",
    )
    p.set_defaults(
        handler=_handler(
            lambda pl, path, a: pl.semseg(path, a.classes, a.mode, a.setting),
            lambda a: parse_classes(a.classes),
        )
    )

    p = subparsers.add_parser("chat", help="ask a question about an image")
    _add_common(p)
    p.add_argument("question")
    p.add_argument("--no-ground", action="store_true", help="do not ground the answer's phrases")
    p.set_defaults(
        handler=_handler(
            lambda pl, path, a: pl.chat(path, a.question, ground_answer=not a.no_ground),
            lambda a: clean_text(a.question, "question"),
        )
    )

    p = subparsers.add_parser("presets", help="list presets and which parts are available locally")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_presets)
