"""A cheap object-finding stage for the engine's fault tests (no model: the engine's own
commit, resume and retry logic is under test, not a backend)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pixelground.backends.presets import Part, Preset
from pixelground.engine.objects import make_object
from pixelground.engine.stages import Stage
from pixelground.pipeline import Pipeline

#: A preset that is never loaded (the fake stages need no backend).
FAKE_PIPE = Pipeline(Preset("fake", "no backend is loaded", {"parser": Part("textblob")}))


def square_object(record, image, ctx):
    """One object: the central square of the image; sleeps a little (a model's latency)."""
    time.sleep(float(os.environ.get("ENGINE_FAKE_SLEEP", "0")))
    mask = np.zeros((image.height, image.width), bool)
    mask[image.height // 4 : image.height * 3 // 4, image.width // 4 : image.width * 3 // 4] = True
    return {**record, "objects": [{**make_object(mask, 0.9, ["square"], "fake"), "id": 0}]}


def crash_once(record, image, ctx):
    """Kills its own process the first time it meets an image named 2.png (a dying worker)."""
    marker = Path(record["image"]).parent / ".crashed"
    if Path(record["image"]).name == "2.png" and not marker.exists():
        marker.write_text("x")
        os._exit(1)
    return square_object(record, image, ctx)


FAKE_STAGES = (Stage("square", 1, square_object, finds_objects=True),)
CRASH_STAGES = (Stage("square", 1, crash_once, finds_objects=True),)


def write_images(folder: Path, count: int, size: int = 32) -> list[Path]:
    """``count`` small PNGs 0.png, 1.png, ... in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        pixels = np.full((size, size, 3), 40 * index % 256, dtype=np.uint8)
        path = folder / f"{index}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def square_in_step(record, image, ctx):
    """square_object, noting the process it ran in (each Ray step is its own actor pool)."""
    out = square_object(record, image, ctx)
    return {**out, "pids": {"square": os.getpid()}}


def crash_once_in_step(record, image, ctx):
    """crash_once in a second step (it uses the parser role, so it gets its own pool)."""
    marker = Path(record["image"]).parent / ".crashed"
    if Path(record["image"]).name == "2.png" and not marker.exists():
        marker.write_text("x")
        os._exit(1)
    loaded = ctx.pipe.backend("parser") is not None
    return {**record, "pids": {**record["pids"], "crash": os.getpid()}, "parser": loaded}


#: Two Ray steps: a model-free stage, then a stage using the parser that kills its actor once.
STEP_STAGES = (
    Stage("square", 1, square_in_step, finds_objects=True),
    Stage("crash", 1, crash_once_in_step, uses=("parser",)),
)
