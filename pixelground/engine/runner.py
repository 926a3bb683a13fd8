"""What both engines share: the stage plan, the manifest, running stages on a batch, stats.

``annotate_batch`` is the one place stages run, under the local engine and inside Ray
actors alike: images are loaded, then each stage runs over the whole batch (a stage's model
stays hot; stages with a ``batch_fn`` make one forward pass for the batch). An image that
fails (unreadable file, a stage raising) becomes a ``failed`` record with the message; the
others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from pixelground.backends.presets import OPTIONAL_ROLES, part_available
from pixelground.core.errors import InputError
from pixelground.core.media import LoadedImage, load_image
from pixelground.engine.dataset import FORMAT, VERSION
from pixelground.engine.scene_stages import LEVEL2, LEVEL3, LEVEL4
from pixelground.engine.source import Item
from pixelground.engine.stages import LEVEL1, Context, Record, Settings, Stage
from pixelground.pipeline import Pipeline

log = logging.getLogger(__name__)
ALL_STAGES: tuple[Stage, ...] = (*LEVEL1, *LEVEL2, *LEVEL3, *LEVEL4)


def check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    """Levels as a sorted tuple; each level builds on the ones before, so 1..k only."""
    chosen = tuple(sorted(set(int(v) for v in levels)))
    if not chosen or chosen != tuple(range(1, len(chosen) + 1)) or chosen[-1] > 4:
        raise InputError(f"levels must be 1, 1,2, 1,2,3 or 1,2,3,4; got {list(levels)}")
    return chosen


def plan(
    pipe: Pipeline, levels: Sequence[int], stages: Sequence[Stage] = ALL_STAGES
) -> list[Stage]:
    """The stages of ``levels`` that ``pipe``'s preset can run, in order.

    An optional part (the depth model) whose checkpoint is not present is left out.

    Raises:
        InputError: the preset cannot find any objects (no level-1 source of objects).
    """
    available = {
        role
        for role, part in pipe.preset.parts.items()
        if role not in OPTIONAL_ROLES or part_available(part)
    }
    for role in set(pipe.preset.parts) - available:
        log.warning("%s of preset %r is not available locally: its stage is skipped", role,
                    pipe.preset.name)  # fmt: skip
    chosen = [s for s in stages if s.level in levels and s.runs_with(available)]
    # the caption stage finds objects only through a grounding model's grounded caption
    finds = [
        s
        for s in chosen
        if s.finds_objects and (s.name != "caption" or "grounding_model" in available)
    ]
    if not finds:
        raise InputError(
            f"preset {pipe.preset.name!r} cannot find objects: the engine needs a grounding "
            "model, or a segmenter (with a captioner and detector for labels)"
        )
    return chosen


def build_manifest(pipe: Pipeline, settings: Settings, stages: Sequence[Stage]) -> dict[str, Any]:
    """The manifest of a run: what must match to resume, plus versions."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pg_version = version("pixelground")
    except PackageNotFoundError:
        pg_version = "unknown"
    parts = {
        role: {"backend": part.backend, "checkpoint": part.checkpoint}
        for role, part in sorted(pipe.preset.parts.items())
    }
    return {
        "format": FORMAT,
        "version": VERSION,
        "preset": pipe.preset.name,
        "parts": parts,
        "settings": settings.to_dict(),
        "stages": [
            {"name": s.name, "level": s.level, "backends": s.backends(pipe)} for s in stages
        ],
        "meaningful": pipe.preset.meaningful,
        "pixelground_version": pg_version,
    }


def new_record(item: Item, image: LoadedImage | None) -> Record:
    """The record an image starts with."""
    return {
        "id": item.id,
        "image": item.path,
        "width": image.width if image else None,
        "height": image.height if image else None,
        "status": "done",
        "error": None,
        "caption": "",
        "tags": [],
        "objects": [],
        "phrases": [],
        "relations": [],
        "timings": {},
    }


def failed_record(record: Record, stage: str, error: BaseException) -> Record:
    """``record`` marked failed at ``stage`` with the error's message."""
    message = str(error) or type(error).__name__
    if not isinstance(error, InputError):
        message = f"{type(error).__name__}: {message}"
    return {**record, "status": "failed", "error": message, "failed_stage": stage}


def load_items(items: Sequence[Item]) -> list[tuple[Record, LoadedImage | None]]:
    """Each item's starting record and decoded image (a failed record when it cannot load)."""
    out = []
    for item in items:
        try:
            image = load_image(item.path)
        except Exception as error:  # noqa: BLE001 - any unreadable image is a failed record
            out.append((failed_record(new_record(item, None), "load", error), None))
            continue
        out.append((new_record(item, image), image))
    return out


def annotate_batch(
    loaded: Sequence[tuple[Record, LoadedImage | None]], stages: Sequence[Stage], ctx: Context
) -> list[Record]:
    """Run every stage over a batch of (record, image); failures are recorded per image."""
    records = [record for record, _ in loaded]
    images = [image for _, image in loaded]
    for stage in stages:
        live = [i for i, r in enumerate(records) if r["status"] == "done"]
        if not live:
            break
        if stage.batch_fn is not None and len(live) > 1:
            started = time.perf_counter()
            try:
                out = stage.batch_fn([records[i] for i in live], [images[i] for i in live], ctx)
            except Exception:  # noqa: BLE001 - redo one by one to find the failing image
                out = None
            if out is not None:
                share = (time.perf_counter() - started) / len(live)
                for i, record in zip(live, out, strict=True):
                    records[i] = {**record, "timings": {**record["timings"], stage.name: share}}
                continue
        for i in live:
            records[i] = run_stage(stage, records[i], images[i], ctx)
    return records


def run_stage(stage: Stage, record: Record, image: LoadedImage, ctx: Context) -> Record:
    """One stage on one record, timed; an exception makes the record ``failed``."""
    started = time.perf_counter()
    try:
        out = stage.fn(record, image, ctx)
    except Exception as error:  # noqa: BLE001 - one image's failure must not stop the run
        return failed_record(record, stage.name, error)
    return {**out, "timings": {**out["timings"], stage.name: time.perf_counter() - started}}


def stats(records: Sequence[Record] | Any) -> dict[str, Any]:
    """Counts over records (one per image): done/failed, objects, phrases, time per stage."""
    done = failed = objects = relations = kept = dropped = 0
    timings: dict[str, float] = {}
    failures: dict[str, str] = {}
    for record in records:
        if record["status"] != "done":
            failed += 1
            failures[record["id"]] = record.get("error") or ""
            continue
        done += 1
        objects += len(record["objects"])
        relations += len(record.get("relations", []))
        caption = record.get("dense_caption") or {}
        kept += len(caption.get("phrases", []))
        dropped += len(caption.get("dropped", []))
        for name, seconds in record.get("timings", {}).items():
            timings[name] = timings.get(name, 0.0) + seconds
    return {
        "images": done + failed,
        "done": done,
        "failed": failed,
        "objects_per_image": round(objects / done, 3) if done else 0.0,
        "relations_per_image": round(relations / done, 3) if done else 0.0,
        "phrases_verified": kept,
        "phrases_dropped": dropped,
        "seconds_per_image_by_stage": {k: round(v / done, 4) for k, v in timings.items()}
        if done
        else {},
        "failures": failures,
    }
