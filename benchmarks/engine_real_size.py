"""Per-stage CPU cost of the data engine at real model sizes, and images per GPU-hour on paper.

    python benchmarks/engine_real_size.py [--image PATH] [--levels 1,2,3,4] [--objects 10,30]

The ``default`` preset's models are built at real size with random weights
(``real_size_models.py``: Florence-2-base, SAM2.1-hiera-tiny, CLIP ViT-B/16,
Depth-Anything-V2-Small, SmolVLM-256M; same classes, sizes and input resolutions as the
released checkpoints, so the same compute), loaded through ``pixelground.load`` and driven by
the engine's own stage functions on one image, one stage after the other. Every public method
of every backend is wrapped: its outermost calls are counted and timed (process CPU seconds,
all threads) per stage and model; what a stage spends outside the backends is the engine's own
code (RLE, mask NMS, relations, phrase parsing), CPU-only.

Per-object stages (``attributes``: three Florence-2 generations per object, region-to-category
on the box and a short and a detailed caption of the masked crop; ``labels``: CLIP crops
of the objects) are projected linearly to the object counts of ``--objects``; the other stages
cost the same per image whatever the object count (the box-prompted SAM2 decoder is per box
but tiny next to its image encoder). Images per GPU-hour are a paper figure: each model's
CPU seconds divided by an ASSUMED speed-up of one GPU over one CPU core (ASSUMED_GPU_SPEEDUP,
not measured here).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_size_models import default_cache, ensure_model, overrides  # noqa: E402

from pixelground.core.media import load_image  # noqa: E402
from pixelground.engine.runner import ALL_STAGES, new_record, plan  # noqa: E402
from pixelground.engine.source import Item  # noqa: E402
from pixelground.engine.stages import Context, Settings  # noqa: E402
from pixelground.pipeline import load  # noqa: E402

MODELS = ("florence2", "sam2", "clip", "depth", "smolvlm")
IMAGE = Path("/work/shared/data/davis2016_blackswan/JPEGImages/480p/blackswan/00000.jpg")
PER_OBJECT = ("attributes", "labels")
ENGINE = "engine code (CPU)"
#: ASSUMPTION, not a measurement: speed-up of one data-centre GPU (A100-class, fp16, batched
#: where the engine batches) over ONE CPU core of this machine in fp32, per model family.
#: Encoders (SAM2, CLIP, Depth Anything) run as one large batched forward: assumed 100x.
#: Autoregressive decoders (Florence-2, SmolVLM) run token by token at batch 1 per call,
#: bound by kernel launches and memory bandwidth rather than FLOPs: assumed 20x.
ASSUMED_GPU_SPEEDUP = {"florence2": 20.0, "smolvlm": 20.0, "sam2": 100.0, "clip": 100.0,
                       "depth": 100.0}  # fmt: skip


class Meter:
    """Counts and times the outermost calls into wrapped backends, per (stage, model)."""

    def __init__(self) -> None:
        self.stage = ""
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self.cpu: dict[tuple[str, str], float] = defaultdict(float)
        self._depth = 0
        self._wrapped: set[int] = set()

    def wrap(self, backend: Any, model: str) -> None:
        """Wrap every public method of ``backend`` (once) as a call of ``model``."""
        if backend is None or id(backend) in self._wrapped:
            return
        self._wrapped.add(id(backend))
        for name, _ in inspect.getmembers(type(backend), inspect.isfunction):
            if not name.startswith("_"):
                setattr(backend, name, self._timed(getattr(backend, name), model))

    def _timed(self, method: Any, model: str) -> Any:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            start = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.calls[(self.stage, model)] += 1
                    self.cpu[(self.stage, model)] += time.process_time() - start

        return timed


def measure(image_path: Path, levels: tuple[int, ...], cache: Path) -> tuple[list[dict], int]:
    """Run the engine's stages once on one image; rows of stage/model/calls/CPU s, objects."""
    pipe = load("default", device="cpu", **overrides(cache, MODELS))
    roles = {role: name for name in MODELS for role in ("detector", "captioner", "segmenter",
             "scorer", "depth", "vlm") if role in overrides(cache, (name,))}  # fmt: skip
    stages = plan(pipe, levels, ALL_STAGES)
    meter = Meter()
    for stage in stages:
        stage.load(pipe)
    for role, name in roles.items():
        meter.wrap(pipe.backend(role), name)
    loaded = load_image(str(image_path))
    record = new_record(Item(id=image_path.stem, path=str(image_path)), loaded)
    context = Context(pipe, Settings(levels=levels))
    rows, objects = [], 0
    for stage in stages:
        meter.stage = stage.name
        start = time.process_time()
        record = stage.fn(record, loaded, context)
        total = time.process_time() - start
        if stage.name == "merge":
            objects = len(record["objects"])
        used = [(m, meter.calls[(stage.name, m)], meter.cpu[(stage.name, m)]) for m in MODELS]
        for model, calls, cpu in used:
            if calls:
                rows.append({"stage": stage.name, "model": model, "calls": calls, "cpu": cpu})
        rest = total - sum(cpu for _, _, cpu in used)
        rows.append({"stage": stage.name, "model": ENGINE, "calls": 1, "cpu": max(rest, 0.0)})
    return rows, objects


def project(rows: list[dict], measured: int, objects: int) -> list[dict]:
    """Rows with per-object stages scaled from ``measured`` objects to ``objects``."""
    scale = objects / max(measured, 1)
    out = []
    for row in rows:
        factor = scale if row["stage"] in PER_OBJECT else 1.0
        calls = row["calls"] if row["model"] == ENGINE else row["calls"] * factor
        out.append({**row, "calls": calls, "cpu": row["cpu"] * factor})
    return out


def table(rows: list[dict]) -> str:
    """stage | model | calls per image | CPU s per call | CPU s per image."""
    lines = ["| stage | model | calls/image | CPU s/call | CPU s/image |", "|---|---|---|---|---|"]
    for row in rows:
        per_call = row["cpu"] / row["calls"] if row["calls"] else 0.0
        lines.append(f"| {row['stage']} | {row['model']} | {row['calls']:.4g} | "
                     f"{per_call:.3f} | {row['cpu']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def paper_gpu(rows: list[dict]) -> dict[str, float]:
    """CPU s per image, GPU s per image (assumed speed-ups), CPU s per image left on CPU."""
    cpu = sum(r["cpu"] for r in rows)
    gpu = sum(r["cpu"] / ASSUMED_GPU_SPEEDUP[r["model"]] for r in rows if r["model"] != ENGINE)
    host = sum(r["cpu"] for r in rows if r["model"] == ENGINE)
    by_model: dict[str, float] = defaultdict(float)
    for r in rows:
        if r["model"] != ENGINE:
            by_model[r["model"]] += r["cpu"] / ASSUMED_GPU_SPEEDUP[r["model"]]
    return {"cpu_s": cpu, "gpu_s": gpu, "host_cpu_s": host, **{f"gpu_s_{m}": v
            for m, v in by_model.items()}}  # fmt: skip


def summary(label: str, rows: list[dict]) -> str:
    """One line: CPU s/image, images per CPU-core-hour, paper GPU figures."""
    fig = paper_gpu(rows)
    shares = ", ".join(
        f"{m} {fig[f'gpu_s_{m}'] / fig['gpu_s']:.0%}" for m in MODELS if f"gpu_s_{m}" in fig
    )
    return (f"{label}: {fig['cpu_s']:.1f} CPU s/image = {3600 / fig['cpu_s']:.0f} images per "
            f"CPU-core-hour (measured); paper: {fig['gpu_s']:.3f} GPU s/image = "
            f"{3600 / fig['gpu_s']:.0f} images per GPU-hour if the GPU is kept busy, "
            f"{fig['host_cpu_s'] / fig['gpu_s']:.1f} CPU cores per GPU for the CPU-only "
            f"engine code; GPU time by model: {shares}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Build the models, measure once, print the measured and projected tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument("--levels", default="1,2,3,4")
    parser.add_argument("--objects", default="10,30", help="object counts to project to")
    parser.add_argument("--cache", type=Path, default=default_cache())
    args = parser.parse_args(argv)
    import torch

    for model in MODELS:
        ensure_model(model, args.cache)
    levels = tuple(int(v) for v in args.levels.split(","))
    load_before = os.getloadavg()[0]
    rows, objects = measure(args.image, levels, args.cache)
    print(f"image {args.image.name}, levels {args.levels}, torch threads "
          f"{torch.get_num_threads()}, load average {load_before:.1f} -> "
          f"{os.getloadavg()[0]:.1f}; measured with {objects} objects after merge")  # fmt: skip
    print(table(rows))
    print(summary(f"measured ({objects} objects)", rows))
    for count in (int(v) for v in args.objects.split(",") if v):
        projected = project(rows, objects, count)
        print(f"\nprojected to {count} objects per image (per-object stages: {PER_OBJECT})")
        print(table([r for r in projected if r["stage"] in PER_OBJECT]))
        print(summary(f"{count} objects", projected))
    print(f"\nASSUMED GPU speed-up over one CPU core (not measured): {ASSUMED_GPU_SPEEDUP}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
