"""What every route shares: settings, the pipeline, the limiter and the image cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from pixelground.serve.app.limits import Limiter
from pixelground.serve.app.sessions import ImageStore
from pixelground.serve.app.settings import ServerSettings


@dataclass
class ServerState:
    """The app's shared objects (``app.state.pixelground``).

    Attributes:
        settings: the limits and model choice.
        pipeline: the loaded Pipeline (backends load on first use).
        limiter: admission control for model calls.
        images: interactive sessions (LRU).
        jobs: the video job store, or None when video jobs are off.
    """

    settings: ServerSettings
    pipeline: Any
    limiter: Limiter
    images: ImageStore
    jobs: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def server_state(request: Request) -> ServerState:
    """The ServerState of the app serving ``request`` (a FastAPI dependency)."""
    return request.app.state.pixelground
