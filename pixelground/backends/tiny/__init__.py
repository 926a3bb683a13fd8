"""Tiny random-weight models of the real classes, built on first use into a cache directory.

Each builder writes a checkpoint directory with ``save_pretrained`` (model and processor);
backends then load it with ``from_pretrained``, the same path users take with real
checkpoints. Outputs of tiny models are not meaningful.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from pixelground.backends.tiny.depth import TINY_DEPTH_BUILDERS
from pixelground.backends.tiny.dino import TINY_DINO_BUILDERS
from pixelground.backends.tiny.language import TINY_LANGUAGE_BUILDERS
from pixelground.backends.tiny.video import TINY_VIDEO_BUILDERS
from pixelground.backends.tiny.vision import TINY_VISION_BUILDERS
from pixelground.core.errors import UnknownNameError


def builders_version() -> str:
    """A digest of the builders' source: changing a tiny config gives a fresh cache folder."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def cache_root() -> Path:
    """Where built tiny models live: $PIXELGROUND_CACHE (or ~/.cache/pixelground)/tiny/<version>."""
    root = os.environ.get("PIXELGROUND_CACHE") or Path.home() / ".cache" / "pixelground"
    return Path(root) / "tiny" / builders_version()


def builders() -> dict[str, Callable[[Path], Path]]:
    """Every tiny builder by name."""
    return {
        **TINY_VISION_BUILDERS,
        **TINY_LANGUAGE_BUILDERS,
        **TINY_VIDEO_BUILDERS,
        **TINY_DINO_BUILDERS,
        **TINY_DEPTH_BUILDERS,
    }


def ensure_tiny(name: str) -> Path:
    """The directory of tiny model ``name``, building it first if it is not cached.

    Building goes to a temporary directory renamed into place, so an interrupted or
    concurrent build never leaves a half-written checkpoint behind.
    """
    target = cache_root() / name
    if (target / "config.json").exists():
        return target
    table = builders()
    if name not in table:
        raise UnknownNameError(f"unknown tiny model {name!r}; known: {', '.join(sorted(table))}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        table[name](staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
