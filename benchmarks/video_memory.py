"""Peak memory and speed of video tracking with SAM2.1-hiera-tiny.

Compares pixelground's bounded-memory TrackingSession with transformers' default streaming
session (which keeps every frame's pixels and outputs) on synthesised 480p videos of moving
shapes, streamed frame by frame (never stored). Weights are random, at the real
configuration of facebook/sam2.1-hiera-tiny (same compute and memory as the real model).

Each (mode, length) runs in its own subprocess; peak resident memory is the child's VmHWM
from /proc/self/status, and frames/s is measured over the propagation loop (model loading
and the prompt frame excluded).

    python benchmarks/video_memory.py --lengths 100,1000,3000
    python benchmarks/video_memory.py --lengths 100,300 --threads 2 --json results.json
    python benchmarks/video_memory.py --side 512 --lengths 100,1000,3000
    python benchmarks/video_memory.py --side 256 --lengths 100,300 --modes "" \\
        --command-heights 256,480      # the whole track command, JSON + PNGs + overlay

Whole command measured at 256-pixel input (shared 2-core machine): peak RSS 1030 / 1031 MB
at 50 / 150 frames of a 256p clip, 1034 / 1039 MB at 480p (JSON, DAVIS PNGs and overlay
written each time).

``--side`` feeds the same model (every weight the same shape) smaller frames: at 1024 pixels
(the published model) one frame costs several CPU seconds on 2 cores, mostly memory attention
over 7 x 4096 memory tokens, so 3,000 frames take hours; at 512 the memory holds 4x fewer
tokens per frame (1.35 CPU s/frame measured on 2 cores), the rest of the per-frame state
shrinks 4x too. Measured at 512: bounded peak RSS 1213 / 1215 / 1207 MB at 100 / 1,000 /
3,000 frames; transformers' default session 1690 MB at 100 and 6209 MB at 1,000 frames, at
the same frames/s when both run side by side (0.234 vs 0.233, 0.249 vs 0.249).

The default session's memory grows by about 18 MB per frame (pixels 12 MB, high-res mask
logits 4 MB, memory features 1.5 MB), so its runs are skipped when the projection exceeds
``--default-max-gb``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HEIGHT, WIDTH, FPS = 480, 854, 24


def default_bytes_per_frame(side: int) -> int:
    """Per-frame state transformers' default session keeps for ``side``-pixel input (bytes):
    the frame's pixels, its high-res and low-res mask logits, and its memory features."""
    memory = (side // 16) ** 2 * 64
    return 3 * side * side * 4 + side * side * 4 + (side // 4) ** 2 * 4 + memory * (2 + 4)


class MovingShapes(Sequence):
    """A lazy 480p video: a circle and a square moving over a gradient; frame k made on access."""

    def __init__(self, length: int, height: int = HEIGHT, width: int = WIDTH) -> None:
        self.length, self.height, self.width = length, height, width
        ys, xs = np.mgrid[0:height, 0:width]
        self._ys, self._xs = ys, xs
        self._background = np.stack(
            [xs * 255 // width, ys * 255 // height, np.full_like(xs, 90)], axis=2
        ).astype(np.uint8)

    def __len__(self) -> int:
        return self.length

    def circle(self, k: int) -> tuple[float, float, float]:
        """Centre x, y and radius of the circle on frame k."""
        t = k / FPS
        return (
            self.width * (0.5 + 0.3 * np.sin(t)),
            self.height * (0.5 + 0.2 * np.cos(0.7 * t)),
            60.0,
        )

    def __getitem__(self, k: int) -> np.ndarray:
        if not 0 <= k < self.length:
            raise IndexError(k)
        frame = self._background.copy()
        cx, cy, r = self.circle(k)
        frame[(self._xs - cx) ** 2 + (self._ys - cy) ** 2 <= r * r] = (230, 40, 40)
        sx = int((k * 5) % (self.width - 80))
        frame[300:380, sx : sx + 80] = (30, 200, 60)
        return frame

    def box(self, k: int) -> tuple[float, float, float, float]:
        """xyxy box around the circle on frame k."""
        cx, cy, r = self.circle(k)
        return cx - r, cy - r, cx + r, cy + r


def rss_mb(field: str = "VmHWM") -> float:
    """Resident memory of this process from /proc/self/status (VmRSS now, VmHWM peak), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_bounded(checkpoint: str, video: MovingShapes) -> dict:
    """pixelground's TrackingSession (bounded memory), forward propagation."""
    from pixelground.backends.sam2_video import Sam2VideoTracker
    from pixelground.core.prompts import Box, Prompt
    from pixelground.video.frames import ArrayFrames

    tracker = Sam2VideoTracker(checkpoint, device="cpu", dtype="float32")
    session = tracker.session(ArrayFrames(video, fps=FPS))
    session.add_prompt(0, Prompt(box=Box(*video.box(0))))
    loaded = rss_mb("VmRSS")
    samples, start, cpu, count = {}, time.perf_counter(), time.process_time(), 0
    for output in session.propagate("forward"):
        count += 1
        output.tracks[1].mask.sum()  # use the mask, as a caller would
        if count in _sample_points(len(video)):
            samples[count] = round(rss_mb("VmRSS"))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return _report(loaded, samples, count - 1, elapsed, cpu)  # frame 0: the prompt (reused)


def run_default(checkpoint: str, video: MovingShapes) -> dict:
    """transformers' default streaming session: frames passed one at a time, nothing pruned."""
    import torch
    from transformers import Sam2VideoModel, Sam2VideoProcessor

    model = Sam2VideoModel.from_pretrained(checkpoint).eval()
    processor = Sam2VideoProcessor.from_pretrained(checkpoint)
    state = processor.init_video_session(inference_device="cpu", dtype=torch.float32)
    loaded, samples, start, cpu, count = 0.0, {}, 0.0, 0.0, 0
    with torch.inference_mode():
        for k in range(len(video)):
            inputs = processor(images=video[k], return_tensors="pt")
            if k == 0:
                x0, y0, x1, y1 = video.box(0)
                processor.add_inputs_to_inference_session(
                    state,
                    frame_idx=0,
                    obj_ids=[1],
                    input_boxes=[[[x0, y0, x1, y1]]],
                    original_size=(video.height, video.width),
                )
            out = model(inference_session=state, frame=inputs["pixel_values"][0])
            masks = processor.post_process_masks(
                [out.pred_masks], original_sizes=[[video.height, video.width]]
            )[0]
            masks[0, 0].numpy().sum()
            count += 1
            if k == 0:  # as for bounded: after the prompt frame, time tracking frames only
                loaded, start, cpu = rss_mb("VmRSS"), time.perf_counter(), time.process_time()
            if count in _sample_points(len(video)):
                samples[count] = round(rss_mb("VmRSS"))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return _report(loaded, samples, count - 1, elapsed, cpu)


def _sample_points(length: int) -> set[int]:
    """Frame counts at which a run records its resident memory (100 and 1,000 when reached)."""
    marks = {max(1, length // 10), max(1, length // 2), length}
    return marks | {mark for mark in (100, 1000) if mark < length}


def _report(loaded: float, samples: dict, frames: int, elapsed: float, cpu: float) -> dict:
    return {
        "rss_after_prompt_mb": round(loaded),
        "rss_samples_mb": samples,
        "peak_rss_mb": round(rss_mb("VmHWM")),
        "frames": frames,
        "seconds": round(elapsed, 2),
        "frames_per_s": round(frames / elapsed, 3) if elapsed > 0 else None,
        "cpu_s_per_frame": round(cpu / frames, 2) if frames else None,
    }


def worker(args: argparse.Namespace) -> None:
    """Run one (mode, length) in this process and print its JSON report."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    video = MovingShapes(args.length)
    run = run_bounded if args.mode == "bounded" else run_default
    report = run(args.checkpoint, video)
    report.update(mode=args.mode, length=args.length, threads=torch.get_num_threads())
    print(json.dumps(report))


def _start(mode: str, length: int, checkpoint: str, threads: int | None) -> subprocess.Popen:
    command = [sys.executable, __file__, "--worker", "--mode", mode, "--length", str(length)]
    command += ["--checkpoint", checkpoint]
    if threads:
        command += ["--threads", str(threads)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _collect(process: subprocess.Popen, mode: str, length: int) -> dict:
    out, err = process.communicate()
    if process.returncode != 0:
        return {"mode": mode, "length": length, "error": err.strip().splitlines()[-1:]}
    return json.loads(out.strip().splitlines()[-1])


def write_clip(video: MovingShapes, path: Path) -> Path:
    """Encode the synthesised clip as H.264 mp4, one frame at a time (never all in memory)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width = video.height, video.width
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "ultrafast"}
        for k in range(len(video)):
            frame = av.VideoFrame.from_ndarray(video[k], format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def run_command(checkpoint: str, length: int, height: int, scratch: Path) -> dict:
    """``pixelground track CLIP --box ...@0 -o --masks --overlay`` as a user runs it; the
    child's peak RSS from wait4 (the whole command: decoding, model, JSON, PNGs, overlay)."""
    width = (height * 16 // 9) // 2 * 2
    video = MovingShapes(length, height, width)
    clip = write_clip(video, scratch / f"clip-{height}p-{length}.mp4")
    out = scratch / f"out-{height}p-{length}"
    box = ",".join(f"{v:.0f}" for v in video.box(0))
    argv = [sys.executable, "-m", "pixelground.serve.cli", "track", str(clip), "--box",
            f"{box}@0", "--checkpoint", checkpoint, "--device", "cpu", "-o", str(out / "r.json"),
            "--masks", str(out / "masks"), "--overlay", str(out / "overlay.mp4")]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    err = process.stderr.read() if process.stderr else ""
    row = {"mode": "command", "length": length, "height": height}
    if os.waitstatus_to_exitcode(status) != 0:
        return row | {"error": err.strip().splitlines()[-1:]}
    masks = sum(1 for _ in (out / "masks").rglob("*.png"))
    return row | {"peak_rss_mb": round(usage.ru_maxrss / 1024), "seconds": round(elapsed, 1),
                  "masks_written": masks}  # fmt: skip


def _commands(args: argparse.Namespace, checkpoint: str, lengths: list[int], scratch: Path) -> list:
    """The --command-heights rows, printed as a table."""
    heights = [int(v) for v in args.command_heights.split(",") if v]
    rows = [run_command(checkpoint, n, h, scratch) for h in heights for n in lengths]
    if rows:
        print(f"Whole command: pixelground track -o --masks --overlay, {args.side}-pixel input")
        print(_command_table(rows))
    return rows


def _command_table(rows: list[dict]) -> str:
    header = f"{'video':<8}{'frames':>8}{'peak RSS MB':>13}{'seconds':>9}{'PNGs':>7}"
    lines = [header, "-" * len(header)]
    for row in rows:
        if "peak_rss_mb" not in row:
            lines.append(f"{row['height']}p{'':<4}{row['length']:>8}  {row.get('error')}")
            continue
        lines.append(
            f"{row['height']}p{'':<4}{row['length']:>8}{row['peak_rss_mb']:>13}"
            f"{row['seconds']:>9}{row['masks_written']:>7}"
        )
    return "\n".join(lines)


def _table(rows: list[dict]) -> str:
    header = (
        f"{'mode':<9}{'frames':>8}{'peak RSS MB':>13}{'after prompt MB':>17}{'frames/s':>10}"
        f"{'CPU s/frame':>13}"
        f"  RSS during run (frame: MB)"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        if "peak_rss_mb" not in row:
            lines.append(
                f"{row['mode']:<9}{row['length']:>8}  {row.get('note') or row.get('error')}"
            )
            continue
        samples = ", ".join(f"{k}: {v}" for k, v in row["rss_samples_mb"].items())
        lines.append(
            f"{row['mode']:<9}{row['length']:>8}{row['peak_rss_mb']:>13}"
            f"{row['rss_after_prompt_mb']:>17}{row['frames_per_s']:>10}"
            f"{row.get('cpu_s_per_frame') or '-':>13}  {samples}"
        )
    return "\n".join(lines)


def _flatness(rows: list[dict]) -> str:
    bounded = [r for r in rows if r["mode"] == "bounded" and "peak_rss_mb" in r]
    if len(bounded) < 2:
        return ""
    short, long = min(bounded, key=lambda r: r["length"]), max(bounded, key=lambda r: r["length"])
    growth = long["peak_rss_mb"] / short["peak_rss_mb"] - 1
    verdict = "flat (goal: within 20%)" if abs(growth) <= 0.20 else "NOT flat (goal: within 20%)"
    return (
        f"bounded peak RSS {short['length']} -> {long['length']} frames: "
        f"{short['peak_rss_mb']} -> {long['peak_rss_mb']} MB ({growth:+.1%}): {verdict}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="100,1000,3000", help="comma-separated frame counts")
    parser.add_argument("--modes", default="bounded,default", help="bounded and/or default")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run")
    parser.add_argument("--default-max-gb", type=float, default=8.0,
                        help="skip default-session runs projected above this (GB)")  # fmt: skip
    parser.add_argument("--checkpoint", help="real-size checkpoint dir (built if not given)")
    parser.add_argument(
        "--side", type=int, default=1024, help="input pixels of the model (1024: the published)"
    )
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument(
        "--together",
        action="store_true",
        help="run the modes of one length at the same time (fair speed on a busy machine)",
    )
    parser.add_argument(
        "--command-heights",
        default="",
        help="also run the whole `pixelground track -o --masks --overlay` command on the clip "
        "at these heights (e.g. 256,480), for each of --lengths",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    lengths = [int(v) for v in args.lengths.split(",") if v]
    modes = [m for m in args.modes.split(",") if m]
    with tempfile.TemporaryDirectory(prefix="sam2-real-") as scratch:
        checkpoint = args.checkpoint
        if checkpoint is None:
            from pixelground.backends.tiny.video import build_real_size_sam2_video

            checkpoint = str(
                build_real_size_sam2_video(Path(scratch) / "sam2.1-hiera-tiny", args.side)
            )
        rows = []
        for length in lengths:
            runs = []
            for mode in modes:
                projected = length * default_bytes_per_frame(args.side) / 2**30
                if mode == "default" and projected > args.default_max_gb:
                    note = f"skipped: state alone projected at {projected:.1f} GB"
                    rows.append({"mode": mode, "length": length, "note": note})
                    continue
                print(f"running {mode} x {length} frames ...", file=sys.stderr, flush=True)
                runs.append((_start(mode, length, checkpoint, args.threads), mode))
                if not args.together:  # one at a time: each run has the machine to itself
                    rows.append(_collect(*runs.pop(), length))
                    print(_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
            for process, mode in runs:  # --together: side by side, under the same load
                rows.append(_collect(process, mode, length))
                print(_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
        commands = _commands(args, checkpoint, lengths, Path(scratch))
    load = os.getloadavg()[0]
    print(f"SAM2.1-hiera-tiny (random weights), {args.side}-pixel input, 480p video")
    print(_table(rows))
    print(_flatness(rows))
    print(f"(load average at the end: {load:.1f} on {os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows + commands, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
