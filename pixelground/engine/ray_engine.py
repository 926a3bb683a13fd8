"""The Ray engine: the same stages on Ray Data, one actor pool per model step.

``ray.data.from_items`` (the pending images) -> one ``map_batches`` per *step* -> the driver
iterates the results and commits shards with the same atomic commit as the local engine.

A step is a run of consecutive stages that use the same backend roles: each stage that loads
a model starts a new step unless it uses exactly the roles of the step before; a stage that
loads no model (merge, relations, a template dense caption) joins the step before it (a pool
of its own would cost one more image decode and gain nothing). Each step has its own actor
pool; an actor builds a lazy Pipeline and loads only its step's roles, so a detector actor
never holds the captioner. Resources are set per step (``stage_resources``, keyed by stage
name). Between steps, records travel as JSON strings (masks as COCO RLE); decoded images are
not shipped: each step decodes the image again from its path (one decode per step, a few ms
per image against seconds of model time).

A killed actor is restarted by Ray and its batch retried (Ray Data's default for actor
pools), so nothing is lost; records reach the dataset only through the driver's commits, so
nothing is written twice. Ray is optional: ``pip install 'pixelground[ray]'``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelground.backends.presets import Preset
from pixelground.core.errors import DependencyMissingError, InputError
from pixelground.core.media import load_image
from pixelground.engine.dataset import Dataset
from pixelground.engine.runner import annotate_batch, failed_record, load_items
from pixelground.engine.source import Item
from pixelground.engine.stages import Context, Settings, Stage
from pixelground.pipeline import Pipeline

RESOURCE_KEYS = {"cpu": "cpus", "gpu": "gpus", "workers": "workers"}


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


def stage_roles(stage: Stage, preset: Preset) -> frozenset[str]:
    """The roles of ``preset`` that ``stage`` loads (what its actor must hold)."""
    return frozenset(r for r in (*stage.roles, *stage.any_of, *stage.uses) if r in preset.parts)


def steps(stages: Sequence[Stage], preset: Preset) -> list[list[Stage]]:
    """Stages grouped into Ray steps (one actor pool each), in order.

    A stage that loads models starts a new step unless its roles equal the current step's;
    a stage that loads none joins the current step.
    """
    out: list[list[Stage]] = []
    current: frozenset[str] | None = None
    for stage in stages:
        roles = stage_roles(stage, preset)
        if out and (not roles or roles == current):
            out[-1].append(stage)
            continue
        out.append([stage])
        current = roles
    return out


def parse_stage_resources(specs: Sequence[str]) -> dict[str, dict[str, float]]:
    """``["detect=gpu:0.5,cpu:1", "attributes=workers:2"]`` -> {stage: {"gpus": .5, ...}}.

    Raises:
        InputError: a spec not of the form STAGE=KEY:VALUE[,KEY:VALUE] with keys cpu, gpu,
            workers and non-negative numbers.
    """
    out: dict[str, dict[str, float]] = {}
    for spec in specs:
        name, _, body = spec.partition("=")
        entry: dict[str, float] = {}
        for pair in body.split(","):
            key, _, value = pair.partition(":")
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if not name.strip() or key.strip() not in RESOURCE_KEYS or number < 0:
                raise InputError(
                    f"--stage-resources takes STAGE=KEY:VALUE[,KEY:VALUE] with keys cpu, gpu, "
                    f"workers (e.g. detect=gpu:0.5,cpu:1); got {spec!r}"
                )
            entry[RESOURCE_KEYS[key.strip()]] = number
        out.setdefault(name.strip(), {}).update(entry)
    return out


class StageWorker:
    """A Ray actor running one step's stages; it loads only the backends they use.

    Args:
        preset: the preset (with overrides applied).
        device, dtype: as for Pipeline.
        settings: the run's Settings.
        stages: the stages of this step, in order.
        first: this step starts the records (it reads the images' ids and paths).
    """

    def __init__(self, preset: Preset, device: str | None, dtype: str | None,
                 settings: Settings, stages: Sequence[Stage], first: bool):  # fmt: skip
        self.ctx = Context(Pipeline(preset, device=device, dtype=dtype), settings)
        self.stages = list(stages)
        for stage in self.stages:
            stage.load(self.ctx.pipe)
        self.first = first

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the step's stages on a batch; returns the batch's records as JSON strings."""
        if self.first:
            items = [Item(str(i), str(p)) for i, p in zip(batch["id"], batch["path"], strict=True)]
            loaded = load_items(items)
        else:
            loaded = [reload(json.loads(text)) for text in batch["record"]]
        out = annotate_batch(loaded, self.stages, self.ctx)
        return {"record": np.array([json.dumps(r) for r in out], dtype=object)}


def reload(record: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """A record from the step before and its image decoded again (None if failed)."""
    if record["status"] != "done":
        return record, None
    try:
        return record, load_image(record["image"])
    except Exception as error:  # noqa: BLE001 - an image gone between steps fails alone
        return failed_record(record, "load", error), None


@dataclass
class RayEngine:
    """Run stages on Ray Data, one actor pool per step.

    Attributes:
        batch_size: images per batch given to an actor.
        shard_size: records per committed shard.
        address: ``None`` starts a local Ray; ``"auto"`` or ``ray://...`` joins a cluster.
        workers: actors per step (default).
        cpus_per_worker: CPUs each actor reserves (default; fractions let pools share a CPU).
        gpus_per_worker: GPUs each actor reserves (default).
        num_cpus: CPUs of a locally started Ray (None: all).
        stage_resources: stage name -> {"cpus": c, "gpus": g, "workers": n} (any subset),
            overriding the defaults for the step holding that stage. Two stages of one step
            may not name different values.
    """

    batch_size: int = 4
    shard_size: int = 64
    address: str | None = None
    workers: int = 1
    cpus_per_worker: float = 0.5
    gpus_per_worker: float = 0.0
    num_cpus: int | None = None
    stage_resources: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

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

    def resources(self, step: Sequence[Stage]) -> dict[str, float]:
        """{"cpus", "gpus", "workers"} of a step: the defaults, overridden per stage.

        Raises:
            InputError: two stages of the step name different values for one resource.
        """
        out: dict[str, float] = {}
        for stage in step:
            for key, value in self.stage_resources.get(stage.name, {}).items():
                if key not in RESOURCE_KEYS.values():
                    raise InputError(f"stage resources take {sorted(RESOURCE_KEYS.values())}")
                if out.get(key, value) != value:
                    names = "+".join(s.name for s in step)
                    raise InputError(f"stages of one Ray step ({names}) name different {key}")
                out[key] = value
        defaults = {"cpus": self.cpus_per_worker, "gpus": self.gpus_per_worker,
                    "workers": self.workers}  # fmt: skip
        return {**defaults, **out}

    def check(self, stages: Sequence[Stage], preset: Preset) -> list[list[Stage]]:
        """The steps, after checking ``stage_resources`` names planned stages only."""
        planned = {s.name for s in stages}
        unknown = sorted(set(self.stage_resources) - planned)
        if unknown:
            raise InputError(
                f"--stage-resources names stages not in this run: {unknown}; "
                f"the run's stages are {sorted(planned)}"
            )
        grouped = steps(stages, preset)
        for step in grouped:
            self.resources(step)
        return grouped

    def run(self, items: list[Item], dataset: Dataset, stages: list[Stage], pipe: Pipeline,
            settings: Settings, progress: Callable[[dict], None] | None = None) -> int:  # fmt: skip
        """Annotate ``items`` into ``dataset``; returns how many records were committed."""
        grouped = self.check(stages, pipe.preset)
        if not items:
            return 0
        ray = self.start()
        ds = ray.data.from_items([{"id": i.id, "path": i.path} for i in items])
        for index, step in enumerate(grouped):
            res = self.resources(step)
            ds = ds.map_batches(
                StageWorker,
                fn_constructor_kwargs={"preset": pipe.preset, "device": pipe.device,
                                       "dtype": pipe.dtype, "settings": settings,
                                       "stages": step, "first": index == 0},
                batch_size=self.batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=max(1, int(res["workers"]))),
                num_cpus=res["cpus"], num_gpus=res["gpus"] or None,
            )  # fmt: skip
        return self.commit(ds, dataset, progress)

    def commit(self, ds: Any, dataset: Dataset, progress: Callable[[dict], None] | None) -> int:
        """Iterate the last step's records and commit them in shards of ``shard_size``."""
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
