"""The FastAPI app: ``create_app(settings)`` wires routes, limits, errors and the page.

Routes under ``/v1`` need the API key when one is set; ``/healthz`` and the static page do
not. Swagger's pages are off (they load scripts from a CDN); the OpenAPI schema is served
at ``/openapi.json``.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

import pixelground
from pixelground.backends.presets import PRESETS, part_available
from pixelground.pipeline import load
from pixelground.serve.app import image_routes, session_routes, video_routes
from pixelground.serve.app.errors import install_error_handlers
from pixelground.serve.app.job_runner import JobRunner
from pixelground.serve.app.jobs import JobStore
from pixelground.serve.app.limits import BodyLimit, Limiter
from pixelground.serve.app.schemas import Health, PresetPart, Presets
from pixelground.serve.app.security import check_api_key
from pixelground.serve.app.sessions import ImageStore
from pixelground.serve.app.settings import ServerSettings
from pixelground.serve.app.state import ServerState

#: Headers on every response: no sniffing, no framing, scripts and data from this origin only.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
}


def web_dir() -> Path:
    """The static page's folder shipped in the package (pixelground/serve/web)."""
    return Path(str(resources.files("pixelground") / "serve" / "web"))


def preset_parts() -> list[PresetPart]:
    """Every preset's parts and whether each is available locally (as ``pixelground presets``)."""
    return [
        PresetPart(
            preset=preset.name,
            role=role,
            backend=part.backend,
            checkpoint=part.checkpoint,
            available=part_available(part),
        )
        for preset in PRESETS.values()
        for role, part in preset.parts.items()
    ]


def create_app(settings: ServerSettings | None = None, pipeline: Any = None) -> FastAPI:
    """The server app.

    Args:
        settings: limits and model choice (defaults: ServerSettings()).
        pipeline: a loaded Pipeline to serve; None loads ``settings.preset``.
    """
    settings = (settings or ServerSettings()).with_env()
    if pipeline is None:
        pipeline = load(
            settings.preset, device=settings.device, dtype=settings.dtype, **settings.models
        )
    app = FastAPI(
        title="pixelground",
        version=pixelground.__version__,
        description="Ground language in images and videos: text + pixel masks (COCO RLE).",
        docs_url=None,
        redoc_url=None,
    )
    app.state.pixelground = server_state(settings, pipeline)
    install_error_handlers(app)
    _add_routes(app, settings, pipeline)
    _add_middleware(app, settings)
    app.mount("/", StaticFiles(directory=web_dir(), html=True), name="web")
    return app


def server_state(settings: ServerSettings, pipeline: Any) -> ServerState:
    """The shared state: limiter, image cache, and the job store (recovered) with its worker."""
    state = ServerState(
        settings=settings, pipeline=pipeline, limiter=None, images=ImageStore(settings.cache_size)
    )
    state.limiter = Limiter(
        settings.max_active,
        settings.max_queue,
        settings.request_timeout,
        settings.retry_after,
        lock=state.model_lock,
    )
    root = settings.jobs_dir
    if root is None:  # a temp store, removed when the state goes away or at exit
        root = Path(tempfile.mkdtemp(prefix="pixelground-jobs-"))
        weakref.finalize(state, shutil.rmtree, root, True)
    state.jobs = JobStore(root, settings.job_ttl_hours, int(settings.jobs_quota_mb * 2**20))
    state.jobs.recover()
    state.jobs.expire()
    state.runner = JobRunner(state.jobs, pipeline, state.model_lock, settings.max_video_frames)
    return state


def _add_routes(app: FastAPI, settings: ServerSettings, pipeline: Any) -> None:
    def api_key(request: Request) -> None:
        check_api_key(request, settings.api_key)

    guarded = [Depends(api_key)]
    app.include_router(image_routes.router, dependencies=guarded)
    app.include_router(session_routes.router, dependencies=guarded)
    app.include_router(video_routes.router, dependencies=guarded)

    @app.get("/healthz", response_model=Health, tags=["server"])
    def healthz() -> Health:
        """Liveness: the server answers and which preset it runs."""
        return Health(
            preset=pipeline.preset.name,
            version=pixelground.__version__,
            meaningful=pipeline.meaningful,
        )

    @app.get("/v1/presets", response_model=Presets, dependencies=guarded, tags=["server"])
    def presets() -> Presets:
        """Every preset's parts and whether each is available locally."""
        return Presets(serving=pipeline.preset.name, parts=preset_parts())


def _add_middleware(app: FastAPI, settings: ServerSettings) -> None:
    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
