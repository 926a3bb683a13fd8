"""What the image, video and eval commands share: --model, loading the pipeline, progress, and
saying what was written.

Everything here runs before or around the work, never inside a model: ``load_pipeline``
checks the device and the ``--model`` overrides (their paths exist, their roles exist) before
any weights load, and reports which preset ``auto`` chose.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from pixelground.backends.loading import is_local_checkpoint, select_device
from pixelground.backends.presets import Preset, check_overrides, require_parts
from pixelground.core.errors import InputError
from pixelground.pipeline import Pipeline, load

_SEGMENT = ("segmenter", "detector", "parser", "grounding_model")
_GROUND = ("segmenter", "detector", "scorer", "parser")
_CAPTION = ("captioner", "grounding_model", "vlm", "video_segmenter", *_GROUND)
_TRACK = ("video_segmenter", *_SEGMENT)
#: The roles a command may use, whatever the preset (pipeline.py: the roles each method
#: reads); a ``--model`` override of any other role would be ignored, so it is refused.
COMMAND_ROLES: dict[str, tuple[str, ...]] = {
    "segment": _SEGMENT,
    "ground": _GROUND,
    "caption": _CAPTION,
    "describe": ("segmenter", "captioner", "vlm", "video_segmenter"),
    "entities": ("segmenter",),
    "semseg": ("scorer", "segmenter", "dino"),
    "chat": ("vlm", "grounding_model", *_GROUND),
    "track": _TRACK,
}
#: The same for ``pixelground eval TASK``.
EVAL_ROLES: dict[str, tuple[str, ...]] = {
    "refer": _SEGMENT,
    "grefer": _SEGMENT,
    "gcg": _CAPTION,
    "caption": _CAPTION,
    "png": _GROUND,
    "rvos": _TRACK,
    "vos": _TRACK,
}


def command_roles(args: argparse.Namespace) -> tuple[str, tuple[str, ...] | None]:
    """(the command as a user types it, the roles it may use; None when not listed)."""
    command = getattr(args, "command", None) or ""
    if command == "eval":
        return f"eval {args.task}", EVAL_ROLES.get(args.task)
    return command, COMMAND_ROLES.get(command)


def check_roles_used(args: argparse.Namespace, overrides: dict[str, str]) -> None:
    """InputError for a ``--model`` override of a role the command never uses (it would be
    silently ignored); the message names the role and the roles the command uses."""
    name, roles = command_roles(args)
    if roles is None:
        return
    for role, source in overrides.items():
        if role not in roles:
            raise InputError(
                f"--model {role}={source}: `pixelground {name}` never uses a {role}, so the "
                f"override would be ignored; it uses {', '.join(dict.fromkeys(roles))}"
            )


def require_used_parts(args: argparse.Namespace, preset: Preset) -> None:
    """Every missing checkpoint of the parts the command may use, in one error, before any
    model loads (:func:`~pixelground.backends.presets.require_parts`)."""
    roles = command_roles(args)[1]
    if roles is not None:
        preset = replace(preset, parts={r: p for r, p in preset.parts.items() if r in roles})
    require_parts(preset)


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


def lazy_handler(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A handler imported from ``module`` when it runs: commands whose code loads torch (train)
    stay out of the CLI's start-up."""

    def handle(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), name)(args)

    return handle


def say(message: str) -> None:
    """One ``pixelground: ...`` line on stderr."""
    print(f"pixelground: {message}", file=sys.stderr)


def load_pipeline(args: argparse.Namespace) -> Pipeline:
    """The pipeline of ``--preset``/``--device``/``--dtype``/``--model``, checked before loading.

    Raises:
        InputError: a device this machine lacks, a malformed ``--model``, an override
            naming a local path that does not exist (the message names the path), or one of
            a role the command never uses (:func:`check_roles_used`).
        CheckpointMissingError: offline, with checkpoints of the parts the command uses
            missing (every one named in one message).
    """
    select_device(getattr(args, "device", None))  # --device cuda without CUDA: before loading
    overrides = model_overrides(getattr(args, "model", None) or [])
    for role, source in overrides.items():
        _, _, path = (
            source.partition(":")
            if ":" in source and not source.startswith("/")
            else (
                "",
                "",
                source,
            )
        )
        if is_local_checkpoint(path) and not Path(path).expanduser().exists():
            raise InputError(f"--model {role}={source}: {path} does not exist")
    check_overrides(overrides)
    check_roles_used(args, overrides)
    pipeline = load(
        args.preset, device=args.device, dtype=getattr(args, "dtype", None), **overrides
    )
    if args.preset == "auto":
        say(f"using preset {pipeline.preset.name!r}")
    require_used_parts(args, pipeline.preset)
    if not pipeline.meaningful:
        say(
            f"preset {pipeline.preset.name!r} uses random-weight models: "
            "its output is not meaningful"
        )
    return pipeline


def report_written(paths: Iterable[str | Path]) -> None:
    """Say on stderr what a command wrote, one line per file or folder."""
    for path in paths:
        say(f"wrote {path}")


def stderr_console() -> Console:
    """A rich console on stderr (progress and messages never mix with JSON on stdout)."""
    return Console(stderr=True)


class FramesPerSecond(ProgressColumn):
    """Processed frames per second."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} frames/s" if speed else "- frames/s", style="cyan")


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[Any], None]]:
    """A rich progress bar on stderr with frames/s; yields the per-frame advance callback."""
    console = stderr_console()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        FramesPerSecond(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=not console.is_terminal) as progress:
        task = progress.add_task(description, total=total)
        yield lambda _frame: progress.advance(task)
