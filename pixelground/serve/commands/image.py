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
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pixelground.backends.base import DETECTION_THRESHOLD
from pixelground.backends.presets import (
    AUTO_ORDER,
    PRESETS,
    can_chat,
    get_preset,
    part_available,
)
from pixelground.core.errors import InputError, PixelgroundError
from pixelground.core.files import atomic_open, check_output, check_output_dir, save_atomic
from pixelground.core.masks import decode_rle, encode_rle
from pixelground.core.media import (
    WORK_PIXELS,
    LoadedImage,
    image_size,
    list_images,
    load_image,
    load_image_reduced,
)
from pixelground.core.prompts import Box, Point
from pixelground.core.result import GroundedResult
from pixelground.pipeline import Pipeline
from pixelground.serve.commands import video_tasks
from pixelground.serve.commands.common import (
    add_model_option,
    load_pipeline,
    model_overrides,
    report_written,
    say,
    stderr_console,
)
from pixelground.tasks.common import clean_text
from pixelground.tasks.semseg import parse_classes
from pixelground.viz.overlay import render_result

log = logging.getLogger("pixelground.cli")

Task = Callable[..., GroundedResult]
#: check(args, image) before any model loads; ``image`` is the single IMAGE, else None.
Check = Callable[[argparse.Namespace, LoadedImage | None], object]


def _write_overlay(result: GroundedResult, image: Path | LoadedImage, target: Path) -> None:
    pixels = load_image(image).pixels
    overlay = Image.fromarray(render_result(pixels, result))
    save_atomic(target, overlay.save)


def _overlay_target(args: argparse.Namespace, image_path: Path, many: bool) -> Path | None:
    if not args.overlay:
        return None
    overlay = Path(args.overlay)
    return overlay / f"{image_path.stem}.png" if many else overlay


def _check_outputs(args: argparse.Namespace, many: bool) -> None:
    """-o and --overlay can be written (folders created) before any work starts."""
    check_output(args.output, "-o")
    if many:
        check_output_dir(args.overlay, "--overlay")
    else:
        check_output(args.overlay, "--overlay")


def _empty_reason(result: GroundedResult, pipeline: Pipeline, args: argparse.Namespace) -> str:
    """Why a result has no region, as far as the command knows."""
    if result.task == "segment":
        if pipeline.preset.parts.get("grounding_model") is not None:
            return "the model found nothing the expression refers to (it refused it)"
        return f"no detection scored above the threshold {args.threshold}"
    if result.task in ("ground", "caption", "chat") and result.text:
        return "no phrase of the text was found in the image"
    return "nothing was found"


def _announce(result: GroundedResult, pipeline: Pipeline, args: argparse.Namespace, path) -> None:
    """0-region results say so on stderr; an empty answer is an error, never a silent exit 0."""
    if result.task in ("chat", "caption") and not result.text.strip():
        if not pipeline.meaningful:  # random weights may well say nothing
            say(f"the {result.task} for {path} is empty (random-weight models)")
            return
        raise InputError(
            f"preset {pipeline.preset.name!r} gave an empty {result.task} for {path}: its "
            "model cannot do this; use --preset default"
        )
    grounds = result.task not in ("chat", "caption") or getattr(args, "grounded", True)
    if not len(result) and grounds and result.task != "chat":
        say(f"0 regions for {path}: {_empty_reason(result, pipeline, args)}")


def run_images(
    args: argparse.Namespace, task: Task, check: Check | None = None, reduce: bool = True
) -> int:
    """Run ``task(pipeline, image_path)`` on every image IMAGE names; write JSON or JSONL.

    Output paths, the image (one image) and ``check(args, image)`` are checked before any
    model loads. Each result is written as soon as it is made; with several images a
    failed image is reported and skipped, and the lines done are kept on an interruption.
    With ``reduce`` (commands without pixel prompts) an image over WORK_PIXELS is decoded at
    a working resolution and its masks are scaled back to the original size as RLE.
    """
    paths = list_images(args.image)
    if not paths:
        raise InputError(f"no images found at {args.image}")
    many = len(paths) > 1 or Path(args.image).is_dir()
    _check_outputs(args, many)
    image = None if many else _source(paths[0], reduce)[0]  # a bad image fails before loading
    if isinstance(image, Path):
        image = load_image(image)
    if check is not None:
        check(args, image)
    pipeline = load_pipeline(args)
    written: list[Path] = []
    with ExitStack() as stack:
        out: IO = sys.stdout
        if args.output:
            out = stack.enter_context(atomic_open(args.output, keep_partial=many))
        failures = _run_each(args, task, pipeline, paths, (many, reduce), out, written)
    if many and written:
        say(f"wrote {len(written)} overlays under {args.overlay}")
        written = []
    report_written(([Path(args.output)] if args.output else []) + written)
    if failures:
        say(f"{failures} of {len(paths)} images failed")
        return 1
    return 0


def _source(path: Path, reduce: bool) -> tuple[Path | LoadedImage, tuple[int, int] | None]:
    """What a task gets for ``path``: the path, or, for an image over WORK_PIXELS, its pixels
    at a working resolution and the original (height, width)."""
    if not reduce:
        return path, None
    height, width = image_size(path)
    if height * width <= WORK_PIXELS:
        return path, None
    return load_image_reduced(path), (height, width)


def at_size(result: GroundedResult, height: int, width: int) -> dict:
    """``result`` (computed at a working resolution) as JSON at the original (height, width):
    boxes scaled, masks resized (nearest) one at a time and encoded as RLE."""
    data = result.to_dict()
    sy, sx = height / result.image.height, width / result.image.width
    data["image"].update(height=height, width=width)
    data["model"]["working_size"] = [result.image.height, result.image.width]
    for region in data["regions"]:
        if region["box"] is not None:
            x0, y0, x1, y1 = region["box"]
            region["box"] = [x0 * sx, y0 * sy, x1 * sx, y1 * sy]
        if region["mask"] is not None:
            small = Image.fromarray(decode_rle(region["mask"]).astype(np.uint8))
            big = np.asarray(small.resize((width, height), Image.Resampling.NEAREST)) > 0
            region["mask"] = encode_rle(big)[0]
    return data


def _run_each(args, task, pipeline, paths, modes, out, written) -> int:
    failures = 0
    many, reduce = modes
    for path in _progress(paths, many):
        try:
            source, original = _source(path, reduce)
            result = task(pipeline, source)
            _announce(result, pipeline, args, path)
        except PixelgroundError as error:
            if not many:
                raise
            failures += 1
            say(f"skipped {path}: {error}")
            continue
        indent = None if many else 2
        data = result.to_dict() if original is None else at_size(result, *original)
        out.write(json.dumps(data, indent=indent) + "\n")
        out.flush()
        target = _overlay_target(args, path, many)
        if target is not None:
            _write_overlay(result, source, target)  # at the working resolution
            written.append(target)
    return failures


def _progress(paths: list[Path], many: bool) -> Iterator[Path]:
    if not many:
        yield from paths
        return
    with Progress(transient=True, console=stderr_console()) as progress:
        job = progress.add_task("images", total=len(paths))
        for path in paths:
            yield path
            progress.advance(job)


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


def _parse_mask(path: str, height: int, width: int) -> np.ndarray:
    pixels = load_image(path).pixels
    mask = pixels.max(axis=2) > 0
    if mask.shape != (height, width):
        raise InputError(
            f"mask {path} is {mask.shape[1]}x{mask.shape[0]}, the image is {width}x{height}"
        )
    return np.asarray(mask)


def _region_prompt(args: argparse.Namespace) -> tuple[Box | None, Point | None]:
    given = [v for v in (args.box, args.point, args.mask) if v]
    if len(given) != 1:
        raise InputError(
            "describe needs exactly one of --box X0,Y0,X1,Y1, --point X,Y or --mask MASK.png"
        )
    box = Box.parse(args.box) if args.box else None
    point = Point.parse(args.point) if args.point else None
    return box, point


def fit_box(box: Box, height: int, width: int) -> Box:
    """``box`` checked against a (height, width) image; a box partly outside is clipped with
    a warning, one outside (or inverted) is an InputError."""
    box.validate(height, width)
    clipped = box.clipped(height, width)
    if clipped != box:
        say(
            f"box ({box.x0:g}, {box.y0:g}, {box.x1:g}, {box.y1:g}) reaches outside the "
            f"{width}x{height} image; using ({clipped.x0:g}, {clipped.y0:g}, {clipped.x1:g}, "
            f"{clipped.y1:g})"
        )
    return clipped


def _describe(args: argparse.Namespace) -> int:
    box, point = _region_prompt(args)

    def check(_args: argparse.Namespace, image: LoadedImage | None) -> None:
        nonlocal box
        if image is None:
            return
        if box is not None:
            box = fit_box(box, image.height, image.width)
        if point is not None:
            point.validate(image.height, image.width)
        if args.mask:
            _parse_mask(args.mask, image.height, image.width)

    def task(pipeline: Pipeline, path: Path) -> GroundedResult:
        if args.mask:
            image = load_image(path)
            return pipeline.describe(image, mask=_parse_mask(args.mask, image.height, image.width))
        return pipeline.describe(path, box=box, point=point)

    return run_images(args, task, check, reduce=False)


def _presets(args: argparse.Namespace) -> int:
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
        title="pixelground presets (auto: the best complete cached of "
        f"{', '.join(AUTO_ORDER[:-1])}, else default when online, else shapes)"
    )
    for column in ("preset", "role", "backend", "checkpoint", "local"):
        table.add_column(column)
    for name, role, backend, checkpoint, available in rows:
        table.add_row(name, role, backend, checkpoint, "yes" if available else "no")
    Console().print(table)
    for preset in PRESETS.values():
        print(f"{preset.name}: {preset.description}")
    return 0


def _check_chat(args: argparse.Namespace) -> None:
    """chat needs a chat model (a VLM, or Sa2VA end to end): refused before anything loads."""
    clean_text(args.question, "question")
    preset = get_preset(args.preset).with_overrides(model_overrides(args.model))
    if not can_chat(preset):
        raise InputError(
            f"preset {preset.name!r} has no chat model (its parts: {', '.join(preset.parts)}); "
            "use --preset default, or add one with --model vlm=vlm:HUB_ID_OR_DIR"
        )


def _handler(task: Task, check: Callable[[argparse.Namespace], object] | None = None):
    """A subcommand handler running ``task`` over IMAGE after ``check(args)`` passes."""

    def handle(args: argparse.Namespace) -> int:
        return run_images(
            args,
            lambda pipeline, path: task(pipeline, path, args),
            check and (lambda a, _image: check(a)),
        )

    return handle


def _add_segment(subparsers: argparse._SubParsersAction) -> None:
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


def _add_ground(subparsers: argparse._SubParsersAction) -> None:
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


def _add_caption(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("caption", help="caption an image, optionally grounded (GCG)")
    _add_common(p)
    p.add_argument("--grounded", action="store_true", help="tie the caption's phrases to masks")
    p.add_argument("--detailed", action="store_true", help="a detailed caption")
    video_tasks.add_caption_options(p)
    image_caption = _handler(lambda pl, path, a: pl.caption(path, a.grounded, a.detailed))
    p.set_defaults(handler=video_tasks.dispatch(video_tasks.caption, image_caption))


def _add_describe(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "describe", help="region understanding: label and captions of a region"
    )
    _add_common(p)
    p.add_argument("--box", help="X0,Y0,X1,Y1 in pixels")
    p.add_argument("--point", help="X,Y in pixels")
    p.add_argument("--mask", help="mask PNG of the image's size (nonzero = region)")
    video_tasks.add_describe_options(p)
    p.set_defaults(handler=video_tasks.dispatch(video_tasks.describe, _describe))


def _add_entities(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("entities", help="entity segmentation: masks of everything")
    _add_common(p)
    p.add_argument("--points-per-side", type=int, default=16)
    p.set_defaults(
        handler=_handler(lambda pl, path, a: pl.entities(path, points_per_side=a.points_per_side))
    )


def _add_semseg(subparsers: argparse._SubParsersAction) -> None:
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


def _add_chat(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("chat", help="ask a question about an image")
    _add_common(p)
    p.add_argument("question")
    p.add_argument("--no-ground", action="store_true", help="do not ground the answer's phrases")
    p.set_defaults(
        handler=_handler(
            lambda pl, path, a: pl.chat(path, a.question, ground_answer=not a.no_ground),
            _check_chat,
        )
    )


def _add_presets(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("presets", help="list presets and which parts are available locally")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_presets)


#: One registration function per command, in the order ``pixelground --help`` lists them.
_COMMANDS = (
    _add_segment,
    _add_ground,
    _add_caption,
    _add_describe,
    _add_entities,
    _add_semseg,
    _add_chat,
    _add_presets,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the image commands to the CLI."""
    for add in _COMMANDS:
        add(subparsers)
