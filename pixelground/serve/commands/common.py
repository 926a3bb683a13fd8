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
from pixelground.backends.presets import check_overrides
from pixelground.core.errors import InputError
from pixelground.pipeline import Pipeline, load


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
        InputError: a device this machine lacks, a malformed ``--model``, or an override
            naming a local path that does not exist (the message names the path).
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
    pipeline = load(
        args.preset, device=args.device, dtype=getattr(args, "dtype", None), **overrides
    )
    if args.preset == "auto":
        say(f"using preset {pipeline.preset.name!r}")
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
