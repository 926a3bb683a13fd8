"""The Ray engine: the same stages on Ray Data, an actor pool per stage group.

``ray.data.from_items`` (the pending images) -> one ``map_batches`` per level, each with an
actor pool whose actors build the Pipeline once and keep its models loaded -> the driver
iterates the results and commits shards with the same atomic commit as the local engine. A
killed actor is restarted by Ray and its batch retried (Ray Data's default for actor pools),
so nothing is lost; records reach the dataset only through the driver's commits, so nothing
is written twice. Ray is optional: ``pip install 'pixelground[ray]'``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import numpy as np

from pixelground.backends.presets import Preset
from pixelground.core.errors import DependencyMissingError
from pixelground.core.media import load_image
from pixelground.engine.dataset import Dataset
from pixelground.engine.runner import annotate_batch, load_items
from pixelground.engine.source import Item
from pixelground.engine.stages import Context, Settings, Stage
from pixelground.pipeline import Pipeline


def import_ray() -> Any:
    """The ray module, or DependencyMissingError naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise DependencyMissingError(
            "the ray engine needs Ray Data, which is not installed; install it with: "
            "pip install 'pixelground[ray]' (or use --engine local)"
        ) from error
    return ray


class StageWorker:
    """A Ray actor running a group of stages; its Pipeline loads each model once.

    Args:
        preset: the preset (with overrides applied).
        device, dtype: as for Pipeline.
        settings: the run's Settings.
        stages: the stages of this group, in order.
        first: this group starts the records (it reads the images' ids and paths).
    """

    def __init__(self, preset: Preset, device: str | None, dtype: str | None,
                 settings: Settings, stages: Sequence[Stage], first: bool):  # fmt: skip
        self.ctx = Context(Pipeline(preset, device=device, dtype=dtype), settings)
        self.stages = list(stages)
        for stage in self.stages:
            stage.load(self.ctx.pipe)
        self.first = first

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the group's stages on a batch; returns the batch's records as JSON strings."""
        if self.first:
            items = [Item(str(i), str(p)) for i, p in zip(batch["id"], batch["path"], strict=True)]
            loaded = load_items(items)
        else:
            records = [json.loads(text) for text in batch["record"]]
            loaded = [
                (r, load_image(r["image"]) if r["status"] == "done" else None) for r in records
            ]
        out = annotate_batch(loaded, self.stages, self.ctx)
        return {"record": np.array([json.dumps(r) for r in out], dtype=object)}


@dataclass
class RayEngine:
    """Run stages on Ray Data.

    Attributes:
        batch_size: images per batch given to an actor.
        shard_size: records per committed shard.
        address: ``None`` starts a local Ray; ``"auto"`` or ``ray://...`` joins a cluster.
        workers: actors per stage group.
        cpus_per_worker: CPUs each actor reserves (fractions let groups share a CPU).
        gpus_per_worker: GPUs each actor reserves.
        num_cpus: CPUs of a locally started Ray (None: all).
    """

    batch_size: int = 4
    shard_size: int = 64
    address: str | None = None
    workers: int = 1
    cpus_per_worker: float = 0.5
    gpus_per_worker: float = 0.0
    num_cpus: int | None = None

    def start(self) -> Any:
        """Ray, initialised (a local instance, or the cluster at ``address``)."""
        ray = import_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(num_cpus=self.num_cpus, **options)
        return ray

    def run(self, items: list[Item], dataset: Dataset, stages: list[Stage], pipe: Pipeline,
            settings: Settings, progress: Callable[[dict], None] | None = None) -> int:  # fmt: skip
        """Annotate ``items`` into ``dataset``; returns how many records were committed."""
        if not items:
            return 0
        ray = self.start()
        ds = ray.data.from_items([{"id": i.id, "path": i.path} for i in items])
        for index, (_, group) in enumerate(groupby(stages, key=lambda s: s.level)):
            ds = ds.map_batches(
                StageWorker,
                fn_constructor_kwargs={"preset": pipe.preset, "device": pipe.device,
                                       "dtype": pipe.dtype, "settings": settings,
                                       "stages": list(group), "first": index == 0},
                batch_size=self.batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=self.workers),
                num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker or None,
            )  # fmt: skip
        run_id, committed, shards = uuid.uuid4().hex[:8], 0, 0
        pending: list[dict[str, Any]] = []
        for batch in ds.iter_batches(batch_size=self.batch_size, batch_format="numpy"):
            for text in batch["record"]:
                pending.append(json.loads(text))
                if progress is not None:
                    progress(pending[-1])
            if len(pending) >= self.shard_size:
                dataset.commit(pending, run_id, shards)
                committed, shards, pending = committed + len(pending), shards + 1, []
        dataset.commit(pending, run_id, shards)
        return committed + len(pending)
