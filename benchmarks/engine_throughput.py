"""Throughput of the data engine: a naive loop, the local engine, Ray with 1 and 2 workers.

    python benchmarks/engine_throughput.py [--n 6] [--presets shapes,tiny] [--levels 1,2,3]

Each configuration runs in its own process (so its peak memory is its own) on the same
`pixelground synth` images and prints one row: images/s, peak RSS of the driver process (Ray
workers are other processes: their memory is not in it), the seconds per image of each stage,
and for Ray the start-up time (ray.init) that is not counted in images/s. For the local
engine, loading the models is timed apart (``model load s``) and not counted in images/s;
the naive loop loads them for every image (counted, as that is its cost); Ray actors load
them inside the run (counted).

The naive loop is what a script calling the CLI once per image does: a fresh Pipeline (models
loaded again) per image, the same stages. The local engine loads models once and runs each
stage over a batch of images.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pixelground.core.media import load_image
from pixelground.engine import annotate
from pixelground.engine.runner import ALL_STAGES, annotate_batch, new_record, plan, stats
from pixelground.engine.source import iter_source
from pixelground.engine.stages import Context, Settings
from pixelground.pipeline import load
from pixelground.synth.writer import write_split

MODES = ("naive", "local", "ray1", "ray2")


def naive(images: Path, preset: str, levels: tuple[int, ...]) -> dict:
    """A fresh Pipeline per image, then the engine's stages on that one image (stage times
    include loading the models, which the Pipeline does on first use)."""
    records = []
    settings = Settings(levels=levels)
    for item in iter_source(images):
        pipe = load(preset)
        loaded = load_image(item.path)
        stages = plan(pipe, levels, ALL_STAGES)
        context = Context(pipe, settings)
        records += annotate_batch([(new_record(item, loaded), loaded)], stages, context)
        del pipe, context
    return stats(records)


def run_one(mode: str, preset: str, images: Path, levels: tuple[int, ...], out: Path) -> dict:
    """One configuration in this process: images/s, peak RSS, stage times, Ray start-up."""
    startup = None
    if mode.startswith("ray"):
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - started
    count = sum(1 for _ in iter_source(images))
    load_s = None
    if mode == "naive":
        started = time.perf_counter()
        summary = naive(images, preset, levels)
    else:
        pipe = load(preset)
        if mode == "local":  # load the models first, to report loading and throughput apart
            started = time.perf_counter()
            for stage in plan(pipe, levels, ALL_STAGES):
                stage.load(pipe)
            load_s = time.perf_counter() - started
        options = {"workers": int(mode[-1])} if mode.startswith("ray") else None
        started = time.perf_counter()
        summary = annotate(images, out, preset=pipe, levels=levels, batch_size=4,
                           engine="ray" if options else "local", ray_options=options)  # fmt: skip
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "preset": preset, "images": count, "seconds": round(seconds, 1),
            "images_per_s": round(count / seconds, 3), "peak_rss_mb": round(peak),
            "ray_startup_s": None if startup is None else round(startup, 1),
            "load_s": None if load_s is None else round(load_s, 1),
            "failed": summary["failed"],
            "stages": summary["seconds_per_image_by_stage"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--presets", default="shapes,tiny")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--levels", default="1,2,3")
    parser.add_argument("--one", nargs=3, metavar=("MODE", "PRESET", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    levels = tuple(int(v) for v in args.levels.split(","))
    if args.one:
        mode, preset, work = args.one
        row = run_one(mode, preset, Path(work) / "images", levels, Path(work) / f"out-{mode}")
        print(json.dumps(row))
        return
    work = Path(tempfile.mkdtemp(prefix="engine-throughput-"))
    write_split(work, "gcg", "test", n=args.n, seed=7)
    images_dir = work / "gcg" / "test"
    rows = []
    for preset in args.presets.split(","):
        for mode in args.modes.split(","):
            command = [sys.executable, __file__, "--levels", args.levels,
                       "--one", mode, preset, str(images_dir)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{preset} {mode} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
            for old in images_dir.glob("out-*"):
                subprocess.run(["rm", "-rf", str(old)], check=False)
    print(f"{args.n} synth images, levels {args.levels}; 2 shared CPU cores")
    print("| preset | engine | images/s | peak RSS MB (driver) | model load s | Ray start-up s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        startup = "-" if row["ray_startup_s"] is None else row["ray_startup_s"]
        loading = "-" if row["load_s"] is None else row["load_s"]
        print(f"| {row['preset']} | {row['mode']} | {row['images_per_s']} | "
              f"{row['peak_rss_mb']} | {loading} | {startup} |")  # fmt: skip
    print("\nseconds per image by stage")
    for row in rows:
        stages = ", ".join(f"{k} {v:.3f}" for k, v in row["stages"].items())
        print(f"- {row['preset']} {row['mode']}: {stages}")


if __name__ == "__main__":
    main()
