"""``annotate(source, out, ...)``: the engine's one entry point (the CLI calls it too)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError
from pixelground.engine.dataset import Dataset, write_json
from pixelground.engine.local import LocalEngine, Progress
from pixelground.engine.ray_engine import RayEngine, import_ray
from pixelground.engine.runner import ALL_STAGES, build_manifest, check_levels, plan, stats
from pixelground.engine.source import Item, iter_source
from pixelground.engine.stages import Context, Settings, Stage
from pixelground.pipeline import Pipeline, load

log = logging.getLogger(__name__)
ENGINES = ("local", "ray")


def pending_items(
    source: str | Path, dataset: Dataset, limit: int | None, retry_failed: bool
) -> Iterator[Item]:
    """Items of the first ``limit`` source images that are not done (nor failed, unless
    ``retry_failed``); an image id appears once even if the source lists it twice."""
    status = dataset.status()
    seen: set[str] = set()
    for item in itertools.islice(iter_source(source), limit):
        state = status.get(item.id)
        if item.id in seen or state == "done" or (state == "failed" and not retry_failed):
            continue
        seen.add(item.id)
        yield item


def _check_options(engine: str, batch_size: int, shard_size: int, limit: int | None) -> None:
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; use local or ray")
    if batch_size < 1 or shard_size < 1 or (limit is not None and limit < 0):
        raise InputError("batch size and shard size must be at least 1, limit at least 0")
    if engine == "ray":
        import_ray()  # a missing extra is one clear error before any work


def annotate(
    source: str | Path,
    out: str | Path,
    preset: str | Pipeline = "auto",
    levels: Sequence[int] = (1, 2, 3),
    engine: str = "local",
    limit: int | None = None,
    batch_size: int = 4,
    shard_size: int = 64,
    retry_failed: bool = False,
    settings: Settings | None = None,
    progress: Progress | None = None,
    stages: Sequence[Stage] = ALL_STAGES,
    ray_options: dict[str, Any] | None = None,
    **load_options: Any,
) -> dict[str, Any]:
    """Annotate the images of ``source`` into the dataset folder ``out`` (GranD levels).

    Args:
        source: a folder or glob of images, a .txt list of paths, or a COCO json.
        out: the dataset folder; an existing one is resumed (same settings only).
        preset: a preset name or a loaded Pipeline.
        levels: GranD levels 1..k (1 objects, 2 scene graph, 3 dense caption, 4 context).
        engine: "local" (this process) or "ray" (Ray Data, ``pip install pixelground[ray]``).
        limit: annotate at most the first ``limit`` images of the source.
        batch_size: images per batch.
        shard_size: records per committed shard.
        retry_failed: redo images recorded as failed.
        settings: thresholds and caps (Settings); ``levels`` overrides its levels.
        progress: called with each finished record.
        stages: the stage table to plan from (tests add their own).
        ray_options: RayEngine fields (address, workers, cpus_per_worker, gpus_per_worker,
            num_cpus, stage_resources: {stage: {"cpus", "gpus", "workers"}}).
        **load_options: device, dtype and role overrides for ``pixelground.load``.

    Returns:
        The dataset's stats (also written to ``out/stats.json``).
    """
    _check_options(engine, batch_size, shard_size, limit)
    settings = settings or Settings()
    settings = Settings(**{**settings.to_dict(), "levels": check_levels(levels)})
    pipe = preset if isinstance(preset, Pipeline) else load(preset, **load_options)
    chosen = plan(pipe, settings.levels, stages)
    runner = None
    if engine == "ray":
        runner = RayEngine(batch_size=batch_size, shard_size=shard_size, **(ray_options or {}))
        runner.check(chosen, pipe.preset)  # bad stage resources: refused before any work
    dataset = Dataset(out)
    dataset.open_for_writing(build_manifest(pipe, settings, chosen))
    items = pending_items(source, dataset, limit, retry_failed)
    if runner is not None:
        runner.run(list(items), dataset, chosen, pipe, settings, progress)
    else:
        ctx = Context(pipe, settings)
        for stage in chosen:
            stage.load(pipe)
        LocalEngine(batch_size, shard_size).run(items, dataset, chosen, ctx, progress)
    summary = stats(dataset.records(status=None))
    write_json(dataset.root / "stats.json", summary)
    return summary
