"""``pixelground serve``: the HTTP API and the web page, run by uvicorn.

Binds 127.0.0.1 unless ``--host`` says otherwise. The API key comes from ``--api-key`` or
the PIXELGROUND_API_KEY environment variable (prefer the variable: command lines are
visible to other users of the machine).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixelground.core.errors import InputError, require
from pixelground.serve.app.settings import ServerSettings
from pixelground.serve.commands.common import add_model_option, model_overrides


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """ServerSettings from the parsed ``serve`` options."""
    if args.max_upload_mb <= 0 or args.max_pixels <= 0:
        raise InputError("--max-upload-mb and --max-pixels must be positive")
    return ServerSettings(
        preset=args.preset,
        models=model_overrides(args.model),
        device=args.device,
        dtype=args.dtype,
        api_key=args.api_key,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
        max_active=args.max_active,
        max_queue=args.max_queue,
        request_timeout=args.timeout,
        cache_size=args.cache_size,
        jobs_dir=Path(args.jobs_dir) if args.jobs_dir else None,
        job_ttl_hours=args.job_ttl_hours,
        jobs_quota_mb=args.jobs_quota_mb,
        cors_origins=tuple(args.cors_origin),
    ).with_env()


def _serve(args: argparse.Namespace) -> int:
    uvicorn = require("uvicorn", "serve")
    # the app needs fastapi (the serve extra): imported only when serving, with a clear error
    factory = require("pixelground.serve.app.factory", "serve")
    settings = settings_from_args(args)
    app = factory.create_app(settings)
    pipeline = app.state.pixelground.pipeline
    print(
        f"pixelground: serving preset {pipeline.preset.name!r} on http://{args.host}:{args.port}"
        + (" (API key required)" if settings.api_key else ""),
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_keep_alive=5,
        limit_concurrency=max(64, 4 * (settings.max_active + settings.max_queue)),
        server_header=False,
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the CLI."""
    p = subparsers.add_parser("serve", help="run the HTTP API and the web page")
    p.add_argument("--preset", default="auto", help="model preset (pixelground presets)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default=None, help="float32, float16 or bfloat16")
    add_model_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1")
    p.add_argument("--max-upload-mb", type=float, default=32.0, help="request body limit (413)")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="image pixel limit (413)")
    p.add_argument("--max-active", type=int, default=1, help="model calls running at once")
    p.add_argument("--max-queue", type=int, default=8, help="requests waiting; more get 429")
    p.add_argument("--timeout", type=float, default=300.0, help="request time-out, seconds")
    p.add_argument("--cache-size", type=int, default=16, help="images kept for clicks (LRU)")
    p.add_argument("--jobs-dir", default=None, help="video job store folder (default: temp)")
    p.add_argument("--job-ttl-hours", type=float, default=24.0, help="finished jobs kept")
    p.add_argument("--jobs-quota-mb", type=float, default=2048.0, help="job store disk quota")
    p.add_argument(
        "--cors-origin", action="append", default=[], help="allow this origin (CORS off if none)"
    )
    p.set_defaults(handler=_serve)
