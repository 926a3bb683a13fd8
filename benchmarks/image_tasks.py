"""Latency, peak memory and time outside model forwards of each image task, at real size.

The ``default`` preset's models (Florence-2-base, SAM2.1-hiera-tiny, CLIP ViT-B/16 and
SmolVLM-256M-Instruct for chat) are built once from their real configurations with random
weights (same compute and memory; see ``real_size_models.py`` for how the decoders are
made to write realistic, fixed-length answers) into ``--cache``, and loaded through
``pixelground.load("default", segmenter=DIR, detector=DIR, ...)``, the path users take.

Each task runs in a fresh subprocess on the DAVIS blackswan frame (854x480): one warm-up
call (which also loads the backends it needs: "first s"), then ``--runs`` timed calls.
A call is the Pipeline method plus ``to_json()`` of its result, as the CLI does, and the
segmenter's image-embedding cache is cleared before each call (every call is a new image).
Per call, the wall time is split (see ``bench_timing.py``) into model forwards, Hugging Face
processors, ``generate``'s own loop, and the rest: pixelground's own code ("ours").
Shares are over the sum of the timed calls; "load" is the 1-minute load average when the
task's process started (on a shared machine wall times grow with it). Peak memory is the
subprocess's VmHWM: "peak MB" over its whole life (loading included), "run MB" over the
timed calls only (reset through /proc/self/clear_refs after the warm-up).

    nice python benchmarks/image_tasks.py                      # every task, 3 runs (1 slow)
    nice python benchmarks/image_tasks.py --tasks caption,segment --runs 5 --json out.json
    python benchmarks/image_tasks.py --large 1,16,64,169 --large-preset shapes   # big images
    python benchmarks/image_tasks.py --preset tiny --tasks caption --runs 1   # plumbing only

Answers have a fixed length (column "tokens"): Florence-2 20 new tokens (3 beams),
SmolVLM 64; chat grounds its answer's phrases with Florence-2.

``semseg`` is ``--mode dense`` (CLIP ViT-B/16); ``semseg-cass`` is ``--mode cass`` with the
ade20k setting (CLIP ViT-B/16 + DINO ViT-B/8, 224-pixel crops every 112 pixels of the
image resized to a 336-pixel short side). Column "eig+svd %" is the share of the timed
calls spent in CASS's eigendecompositions and truncated SVDs (0 for other tasks).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_timing import Accounting, hook_overhead  # noqa: E402

IMAGE = (
    Path(__file__).resolve().parents[2]
    / "shared/data/davis2016_blackswan/JPEGImages/480p/blackswan/00000.jpg"
)
SWAN_BOX = (127.0, 73.0, 510.0, 385.0)  # the swan's box in the DAVIS annotation
CAPTION = "a black swan swims on the dark water"
CLASSES = "black swan,water,grass,rocks,sky"
QUESTION = "What is in this image?"


@dataclass(frozen=True)
class Task:
    """One benchmarked call: a Pipeline method with fixed inputs, and the models it needs."""

    name: str
    call: Callable[[Any, str], Any]
    models: tuple[str, ...]
    slow: bool = False  # minutes a call at real size on CPU: --slow-runs applies


TASKS: dict[str, Task] = {
    task.name: task
    for task in [
        Task("segment", lambda p, im: p.segment(im, "the black swan"), ("florence2", "sam2")),
        Task("ground", lambda p, im: p.ground(im, CAPTION), ("florence2", "sam2")),
        Task(
            "ground-entity",
            lambda p, im: p.ground(im, CAPTION, strategy="entity"),
            ("sam2", "clip"),
            slow=True,
        ),
        Task("caption", lambda p, im: p.caption(im), ("florence2",)),
        Task("caption-grounded", lambda p, im: p.caption(im, grounded=True), ("florence2", "sam2")),
        Task("describe", lambda p, im: p.describe(im, box=SWAN_BOX), ("florence2", "sam2")),
        Task("entities", lambda p, im: p.entities(im), ("sam2",), slow=True),
        Task("semseg", lambda p, im: p.semseg(im, CLASSES, mode="dense"), ("clip",)),
        Task(
            "semseg-cass",
            lambda p, im: p.semseg(im, CLASSES, mode="cass", setting="ade20k"),
            ("clip", "dino"),
        ),
        Task("chat", lambda p, im: p.chat(im, QUESTION), ("smolvlm", "florence2", "sam2")),
    ]
}

#: Table columns: (header, record key, format).
COLUMNS = (
    ("task", "task", "{}"),
    ("tokens", "tokens", "{}"),
    ("runs", "runs", "{}"),
    ("median s", "median_s", "{:.2f}"),
    ("first s", "first_s", "{:.1f}"),
    ("model %", "model_pct", "{:.1f}"),
    ("outside %", "outside_pct", "{:.1f}"),
    ("HF proc %", "processor_pct", "{:.1f}"),
    ("gen loop %", "generate_pct", "{:.1f}"),
    ("ours %", "ours_pct", "{:.1f}"),
    ("ours s", "ours_s", "{:.3f}"),
    ("ours cpu %", "ours_cpu_pct", "{:.1f}"),
    ("eig+svd %", "spectral_pct", "{:.1f}"),
    ("peak MB", "peak_mb", "{:.0f}"),
    ("run MB", "run_peak_mb", "{:.0f}"),
    ("regions", "regions", "{}"),
    ("load", "load", "{:.1f}"),
)


# ---------------------------------------------------------------------------- child


def _status_mb(field_name: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _tokens(pipeline: Any, task: Task) -> str:
    """New-token caps of the generating models a task uses, e.g. ``"vlm 64, flo 20"``."""
    caps = []
    for model, role, short in (("smolvlm", "vlm", "vlm"), ("florence2", "captioner", "flo")):
        if model in task.models and role in pipeline.preset.parts:
            backend = pipeline.backend(role)
            caps.append(f"{short} {getattr(backend, 'max_new_tokens', '?')}")
    return ", ".join(caps) or "-"


def _clear_caches(pipeline: Any) -> None:
    for backend in list(pipeline._instances.values()):
        if hasattr(backend, "clear_cache"):
            backend.clear_cache()
    gc.collect()


#: Seconds spent in CASS's eigendecompositions and SVDs since the last reset (see _time_spectral).
SPECTRAL_SECONDS = [0.0]


def _time_spectral() -> None:
    """Time CASS's head_spectra (eigvalsh) and truncated_svd calls into SPECTRAL_SECONDS."""
    from pixelground.backends import cass_spectral

    def timed(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                SPECTRAL_SECONDS[0] += time.perf_counter() - start

        return wrapper

    for name in ("head_spectra", "truncated_svd"):
        setattr(cass_spectral, name, timed(getattr(cass_spectral, name)))


def measure(pipeline: Any, task: Task, image: str, runs: int) -> dict[str, Any]:
    """Warm up, instrument the loaded backends, time ``runs`` calls; one record."""
    _clear_caches(pipeline)
    start = time.perf_counter()
    result = task.call(pipeline, image)
    result.to_json()
    first = time.perf_counter() - start
    load_peak, warm_rss = _status_mb("VmHWM"), _status_mb("VmRSS")
    reset = _reset_peak()
    accounting = Accounting()
    for backend in pipeline._instances.values():
        accounting.instrument(backend)
    per_run = []
    for _ in range(runs):
        _clear_caches(pipeline)
        accounting.reset()
        SPECTRAL_SECONDS[0] = 0.0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = task.call(pipeline, image)
        result.to_json()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        split = accounting.reset()
        per_run.append(
            {"wall": wall, "cpu": cpu, "spectral": SPECTRAL_SECONDS[0], **_split_fields(split)}
        )
    accounting.remove()
    run_peak = _status_mb("VmHWM") if reset else float("nan")
    record = summarise(task.name, per_run)
    record.update(
        tokens=_tokens(pipeline, task),
        first_s=first,
        peak_mb=max(load_peak, run_peak if reset else 0.0),
        run_peak_mb=run_peak,
        rss_after_warmup_mb=warm_rss,
        regions=len(result.regions),
        text=result.text,
        per_run=per_run,
    )
    return record


def _split_fields(split: Any) -> dict[str, Any]:
    return {
        **{f"{k}_wall": v for k, v in split.wall.items()},
        **{f"{k}_cpu": v for k, v in split.cpu.items()},
        "module_calls": split.module_calls,
        "forward_calls": split.forward_calls,
    }


def summarise(name: str, per_run: list[dict[str, Any]]) -> dict[str, Any]:
    """Median wall time and shares (over the summed runs) of one task's timed calls."""
    total = sum(r["wall"] for r in per_run)
    total_cpu = sum(r["cpu"] for r in per_run)
    parts = {k: sum(r[f"{k}_wall"] for r in per_run) for k in ("model", "processor", "generate")}
    cpu_parts = sum(r[f"{k}_cpu"] for r in per_run for k in ("model", "processor", "generate"))
    ours = [r["wall"] - r["model_wall"] - r["processor_wall"] - r["generate_wall"] for r in per_run]

    def pct(value: float, of: float) -> float:
        return 100.0 * value / of if of > 0 else 0.0

    return {
        "task": name,
        "runs": len(per_run),
        "median_s": statistics.median(r["wall"] for r in per_run),
        "min_s": min(r["wall"] for r in per_run),
        "model_pct": pct(parts["model"], total),
        "outside_pct": pct(total - parts["model"], total),
        "processor_pct": pct(parts["processor"], total),
        "generate_pct": pct(parts["generate"], total),
        "ours_pct": pct(sum(ours), total),
        "ours_s": statistics.median(ours),
        "ours_cpu_pct": pct(total_cpu - cpu_parts, total_cpu),
        "spectral_pct": pct(sum(r.get("spectral", 0.0) for r in per_run), total),
        "module_calls": statistics.median(r["module_calls"] for r in per_run),
    }


def child(args: argparse.Namespace) -> int:
    """Measure one task in this (fresh) process; print one JSON line."""
    import torch

    import pixelground

    task = TASKS[args.child]
    overrides = {}
    if args.preset == "default":
        from real_size_models import overrides as model_overrides

        overrides = model_overrides(Path(args.cache), task.models)
    pipeline = pixelground.load(args.preset, device="cpu", **overrides)
    _time_spectral()
    load_before = os.getloadavg()[0]
    record = measure(pipeline, task, str(args.image), args.runs)
    record.update(
        load=load_before,
        load_avg=[load_before, os.getloadavg()[0]],
        threads=torch.get_num_threads(),
        hook_overhead_us=hook_overhead() * 1e6,
    )
    print(json.dumps(record))
    return 0


# ---------------------------------------------------------------------------- parent


def run_task(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one task in a fresh subprocess; its JSON record (or an error record)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    runs = args.slow_runs if TASKS[name].slow and args.slow_runs else args.runs
    command += ["--runs", str(runs), "--preset", args.preset, "--cache", str(args.cache)]
    command += ["--image", str(args.image)]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return {"task": name, "error": " | ".join(tail)}
    return json.loads(lines[-1])


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A plain-text table, one row per task, columns as in COLUMNS."""
    rows = [[header for header, _, _ in COLUMNS]]
    for record in records:
        if "error" in record:
            rows.append([record["task"], f"ERROR: {record['error']}"])
            continue
        record.setdefault("load", record.get("load_avg", [float("nan")])[0])
        rows.append([fmt.format(record[key]) for _, key, fmt in COLUMNS])
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(COLUMNS))]
    lines = []
    for index, row in enumerate(rows):
        if len(row) < len(COLUMNS):
            lines.append("  ".join(row))
            continue
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def large_image_rows(megapixels: Sequence[float], preset: str, scratch: Path) -> list[dict]:
    """Peak RSS of the whole ``pixelground segment`` command against image size: a square PNG
    of each size (two flat squares on a flat background), the child's peak from wait4."""
    from PIL import Image

    rows = []
    for size in megapixels:
        side = int((size * 1e6) ** 0.5)
        pixels = np.full((side, side, 3), 50, np.uint8)
        pixels[side // 10 : side // 3, side // 10 : side // 3] = (0, 200, 0)
        pixels[side // 2 : side * 3 // 4, side // 2 : side * 3 // 4] = (200, 0, 0)
        path = scratch / f"{side}.png"
        Image.fromarray(pixels).save(path, compress_level=1)
        del pixels
        out = str(scratch / "out.json")
        argv = [sys.executable, "-m", "pixelground.serve.cli", "segment", str(path),
                "the green square", "--preset", preset, "-o", out]  # fmt: skip
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        row = {"side": side, "megapixels": round(side * side / 1e6, 1),
               "seconds": round(time.perf_counter() - start, 1),
               "peak_rss_mb": round(usage.ru_maxrss / 1024)}  # fmt: skip
        if os.waitstatus_to_exitcode(status) != 0:
            row["error"] = (process.stderr.read() or b"").decode().strip().splitlines()[-1:]
        rows.append(row)
        path.unlink()
    return rows


def _large_table(rows: Sequence[dict]) -> str:
    lines = [f"{'image':>13}{'MP':>7}{'peak RSS MB':>13}{'seconds':>9}"]
    for row in rows:
        side = f"{row['side']}x{row['side']}"
        note = f"  {row['error']}" if "error" in row else ""
        lines.append(
            f"{side:>13}{row['megapixels']:>7}{row['peak_rss_mb']:>13}{row['seconds']:>9}{note}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    from real_size_models import default_cache

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per task")
    parser.add_argument(
        "--slow-runs",
        type=int,
        default=1,
        help="timed calls of the entity tasks (1280 SAM prompts each); 0: as --runs",
    )
    parser.add_argument("--cache", type=Path, default=default_cache(), help="real-size models")
    parser.add_argument("--json", type=Path, help="write every record (and each run) here")
    parser.add_argument("--preset", default="default", choices=("default", "tiny"))
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument(
        "--large",
        help="instead: peak RSS of `pixelground segment` on square PNGs of these megapixels, "
        "e.g. 1,16,64,169 (with --large-preset)",
    )
    parser.add_argument("--large-preset", default="shapes", help="preset for --large")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [t for t in args.tasks.split(",") if t not in TASKS]
    if unknown:
        parser.error(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")
    if args.runs < 1 or args.slow_runs < 0:
        parser.error("--runs must be at least 1 and --slow-runs at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Build the models, run each task in its own process, print (and save) the table."""
    args = parse_args(argv)
    if args.child:
        return child(args)
    if args.large:
        with tempfile.TemporaryDirectory(prefix="pg-large-") as scratch:
            sizes = [float(v) for v in args.large.split(",") if v]
            rows = large_image_rows(sizes, args.large_preset, Path(scratch))
        print(f"pixelground segment, preset {args.large_preset}, load {os.getloadavg()[0]:.1f}")
        print(_large_table(rows))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return 0
    names = args.tasks.split(",")
    if args.preset == "default":
        from real_size_models import ensure_model

        for model in dict.fromkeys(m for name in names for m in TASKS[name].models):
            print(f"model {model}: {ensure_model(model, args.cache)}", file=sys.stderr)
    records = []
    for name in names:
        print(f"running {name} (load {os.getloadavg()[0]:.1f}) ...", file=sys.stderr)
        records.append(run_task(name, args))
    table = format_table(records)
    print(f"preset {args.preset}, image {args.image.name}, load average {os.getloadavg()}")
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"table": table, "records": records}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
