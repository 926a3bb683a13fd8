"""Checkpoint directories of a training run, written atomically.

A run directory holds ``checkpoint-0000500/``-style step directories (each a complete
``save_pretrained`` directory plus ``training_state.pt``) and a ``latest`` file naming the
newest one. A checkpoint is written to a hidden temporary directory and renamed into place,
and ``latest`` is replaced atomically, so an interruption at any moment leaves the previous
checkpoint intact and loadable.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pixelground.core.files import write_text_atomic

logger = logging.getLogger(__name__)

LATEST_NAME = "latest"
PREFIX = "checkpoint-"
STATE_NAME = "training_state.pt"


def is_model_dir(path: Path) -> bool:
    """True when ``path`` holds a saved model (config.json and model.safetensors)."""
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def step_dirs(run_dir: Path) -> list[Path]:
    """Complete step checkpoints of a run, oldest first."""
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.name.startswith(PREFIX) and is_model_dir(p)]
    return sorted(found, key=lambda p: p.name)


def find_checkpoint(path: str | Path) -> Path | None:
    """The model directory ``path`` names: itself, its ``latest`` step, or its newest step.

    Args:
        path: a model directory, or a training run directory.

    Returns:
        The directory to load, or None when there is none.
    """
    path = Path(path).expanduser()
    if is_model_dir(path):
        return path
    pointer = path / LATEST_NAME
    if pointer.is_file():
        named = path / pointer.read_text().strip()
        if is_model_dir(named):
            return named
    found = step_dirs(path)
    return found[-1] if found else None


def save_checkpoint(run_dir: Path, step: int, write: Callable[[Path], None], keep: int = 2) -> Path:
    """Write a step checkpoint atomically and point ``latest`` at it.

    Args:
        run_dir: the run directory.
        step: optimizer steps done.
        write: fills a (temporary) directory with the checkpoint's files.
        keep: how many step checkpoints to keep (older ones are deleted); at least 1.

    Returns:
        The checkpoint directory.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / f"{PREFIX}{step:07d}"
    tmp = run_dir / f".tmp-{PREFIX}{step:07d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    write(tmp)
    if final.exists():  # the same step saved twice (e.g. interrupted right after a save)
        old = run_dir / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    write_text_atomic(run_dir / LATEST_NAME, final.name)
    for stale in step_dirs(run_dir)[: -max(keep, 1)]:
        if stale != final:
            shutil.rmtree(stale, ignore_errors=True)
    for leftover in run_dir.glob(".tmp-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
    logger.info("saved checkpoint %s", final)
    return final
