"""Load on ``pixelground serve`` over loopback: throughput, latency, refusals, memory.

Starts a real server process (``pixelground serve --preset shapes`` plus a real-size,
random-weight SAM2.1-hiera-tiny as its segmenter, built by ``real_size_models.py``) on a
free 127.0.0.1 port, then:

1. For 1, 4 and 16 concurrent clients (threads with their own httpx client), each sends
   ``POST /v1/segment`` (the bundled example uploaded, one of a few expressions) until the
   level's request count or time budget is spent. Every request must be answered: 200, or
   429 (the queue is full; the client waits ``Retry-After`` and counts a refusal). "lost"
   counts anything else (other statuses, connection errors): it must be 0. Latency p50 /
   p95 is over the 200 answers; "peak MB" is the server's VmHWM after the level (it only
   grows, so it is the peak so far).
2. Interactive: ``POST /v1/images`` (the image encoder runs once) then ``--clicks`` clicks
   on the same image (``POST /v1/images/{id}/prompt``, the mask decoder only), each against
   the first request on that image.

The server runs one model call at a time (``--max-active 1``) with ``--max-queue`` waiting;
concurrency beyond that is refused with 429, which is the point of the limit. The server
does not batch concurrent requests for one model, so there is no batching column.

    python benchmarks/serve_load.py                         # 1/4/16 clients, 24 requests each
    python benchmarks/serve_load.py --requests 40 --budget 60 --json out.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_size_models import default_cache, ensure_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "shapes.png"
EXPRESSIONS = (
    "the small green triangle",
    "the large blue square",
    "the red square",
    "the dotted shape",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(args: argparse.Namespace, segmenter: Path) -> tuple[subprocess.Popen, str]:
    """``pixelground serve`` on a free loopback port; returns the process and its URL."""
    port = free_port()
    command = [sys.executable, "-m", "pixelground.serve.cli", "serve", "--preset", "shapes"]
    command += ["--model", f"segmenter=sam2:{segmenter}", "--port", str(port)]
    command += ["--max-queue", str(args.max_queue), "--timeout", "120"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.25)
    process.kill()
    raise RuntimeError("the server did not start")


def peak_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def client_loop(url: str, image: bytes, plan: dict[str, Any], out: dict[str, list]) -> None:
    """One client: segment requests until the shared count or the deadline runs out."""
    with httpx.Client(timeout=180) as client:
        while time.monotonic() < plan["deadline"]:
            with plan["lock"]:
                if plan["left"] <= 0:
                    return
                plan["left"] -= 1
                index = plan["left"]
            text = EXPRESSIONS[index % len(EXPRESSIONS)]
            started = time.perf_counter()
            try:
                response = client.post(
                    f"{url}/v1/segment",
                    files={"file": ("shapes.png", image, "image/png")},
                    data={"text": text},
                )
            except httpx.HTTPError:
                out["lost"].append(1)
                continue
            elapsed = time.perf_counter() - started
            if response.status_code == 200:
                out["ok"].append(elapsed)
            elif response.status_code == 429:
                out["refused"].append(elapsed)
                time.sleep(float(response.headers.get("Retry-After", "1")))
            else:
                out["lost"].append(response.status_code)


def load_level(url: str, pid: int, clients: int, args: argparse.Namespace) -> dict[str, Any]:
    """``clients`` concurrent clients sharing ``args.requests`` requests and the time budget."""
    image = EXAMPLE.read_bytes()
    plan = {"left": args.requests, "deadline": time.monotonic() + args.budget}
    plan["lock"] = threading.Lock()
    out: dict[str, list] = {"ok": [], "refused": [], "lost": []}
    threads = [
        threading.Thread(target=client_loop, args=(url, image, plan, out)) for _ in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ok = sorted(out["ok"])
    return {
        "clients": clients,
        "answered": len(ok),
        "refused_429": len(out["refused"]),
        "lost": len(out["lost"]),
        "req_per_s": len(ok) / wall if wall else 0.0,
        "p50_ms": 1000 * statistics.median(ok) if ok else float("nan"),
        "p95_ms": 1000 * ok[min(len(ok) - 1, int(0.95 * len(ok)))] if ok else float("nan"),
        "wall_s": wall,
        "peak_mb": peak_mb(pid),
    }


def flipped_example() -> bytes:
    """The example mirrored: an image the segmenter has not embedded yet."""
    buffer = io.BytesIO()
    ImageOps.mirror(Image.open(EXAMPLE).convert("RGB")).save(buffer, format="PNG")
    return buffer.getvalue()


def interactive(url: str, clicks: int) -> dict[str, Any]:
    """First request on a new image (upload + encoder) against clicks on it (decoder only)."""
    with httpx.Client(timeout=180) as client:
        # warm-up: loads the segmenter, so the timed upload measures the encoder alone
        client.post(f"{url}/v1/images", files={"file": EXAMPLE.read_bytes()}).raise_for_status()
        started = time.perf_counter()
        response = client.post(f"{url}/v1/images", files={"file": flipped_example()})
        first = time.perf_counter() - started
        response.raise_for_status()
        session = response.json()
        times = []
        for index in range(clicks):
            point = {"x": 20 + (index * 37) % 200, "y": 30 + (index * 53) % 200}
            started = time.perf_counter()
            client.post(
                f"{url}/v1/images/{session['image_id']}/prompt", json={"points": [point]}
            ).raise_for_status()
            times.append(time.perf_counter() - started)
    return {
        "first_ms": 1000 * first,
        "encoder_ms": session["embedding_ms"],
        "click_p50_ms": 1000 * statistics.median(times),
        "click_max_ms": 1000 * max(times),
        "clicks": clicks,
    }


def format_tables(levels: Sequence[dict[str, Any]], clicks: dict[str, Any]) -> str:
    head = "| clients | answered | 429 | lost | req/s | p50 ms | p95 ms | wall s | server peak MB |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in levels:
        lines.append(
            f"| {r['clients']} | {r['answered']} | {r['refused_429']} | {r['lost']} | "
            f"{r['req_per_s']:.2f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
            f"{r['wall_s']:.1f} | {r['peak_mb']:.0f} |"
        )
    lines += [
        "",
        "| first request on an image (upload + encoder) ms | encoder ms | click p50 ms "
        "| click max ms | speed-up |",
        "|---|---|---|---|---|",
        f"| {clicks['first_ms']:.0f} | {clicks['encoder_ms']:.0f} | {clicks['click_p50_ms']:.0f} "
        f"| {clicks['click_max_ms']:.0f} | {clicks['first_ms'] / clicks['click_p50_ms']:.1f}x |",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,4,16", help="concurrent clients per level")
    parser.add_argument("--requests", type=int, default=24, help="requests per level")
    parser.add_argument("--budget", type=float, default=90.0, help="seconds per level at most")
    parser.add_argument("--max-queue", type=int, default=8, help="the server's --max-queue")
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=None, help="real-size model cache")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    segmenter = ensure_model("sam2", args.cache or default_cache())
    process, url = start_server(args, segmenter)
    try:
        httpx.post(
            f"{url}/v1/segment",
            files={"file": EXAMPLE.read_bytes()},
            data={"text": EXPRESSIONS[0]},
            timeout=180,
        ).raise_for_status()
        levels = [load_level(url, process.pid, int(c), args) for c in args.levels.split(",")]
        clicks = interactive(url, args.clicks)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    print(format_tables(levels, clicks))
    if args.json:
        args.json.write_text(json.dumps({"levels": levels, "interactive": clicks}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
