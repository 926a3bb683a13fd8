"""What every route shares: settings, the pipeline, the limiter and the image cache."""

from __future__ import annotations

import threading
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
        jobs: the video job store.
        runner: the video job worker.
        model_lock: held by model calls of requests and jobs alike.
    """

    settings: ServerSettings
    pipeline: Any
    limiter: Limiter
    images: ImageStore
    jobs: Any = None
    runner: Any = None
    model_lock: threading.Lock = field(default_factory=threading.Lock)


def server_state(request: Request) -> ServerState:
    """The ServerState of the app serving ``request`` (a FastAPI dependency)."""
    return request.app.state.pixelground
