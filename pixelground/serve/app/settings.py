"""Server settings: one flat dataclass whose defaults are the safe ones.

Every limit the server enforces lives here, so ``pixelground serve`` options, tests and
benchmarks set them the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: Environment variable read for the API key when ``--api-key`` is not given.
API_KEY_ENV = "PIXELGROUND_API_KEY"


@dataclass
class ServerSettings:
    """What the server loads and the limits it enforces.

    Attributes:
        preset: model preset name (``auto`` resolves to the best available one).
        models: role -> hub id or local directory overrides (as ``--model ROLE=SOURCE``).
        device: torch device or None for auto.
        dtype: torch dtype name or None.
        api_key: when set, every ``/v1`` route needs ``Authorization: Bearer KEY``.
        max_upload_mb: largest request body accepted (413 above it).
        max_pixels: largest image accepted, width * height (413 above it).
        max_active: requests running a model at once (1 on CPU: models are not re-entrant).
        max_queue: requests waiting for a slot; beyond it the server answers 429.
        request_timeout: seconds a request may wait and run before it is answered 504.
        retry_after: seconds suggested in the 429 ``Retry-After`` header.
        cache_size: images (with their embeddings) kept for interactive sessions.
        jobs_dir: folder of the on-disk job store (video jobs); None: a temp folder.
        job_ttl_hours: finished jobs older than this are deleted.
        jobs_quota_mb: the job store's disk quota; new jobs are refused (507) beyond it.
        max_video_frames: longest video (in frames) a job accepts.
        cors_origins: origins allowed by CORS; empty: CORS off.
    """

    preset: str = "auto"
    models: dict[str, str] = field(default_factory=dict)
    device: str | None = None
    dtype: str | None = None
    api_key: str | None = None
    max_upload_mb: float = 32.0
    max_pixels: int = 40_000_000
    max_active: int = 1
    max_queue: int = 8
    request_timeout: float = 300.0
    retry_after: int = 2
    cache_size: int = 16
    jobs_dir: Path | None = None
    job_ttl_hours: float = 24.0
    jobs_quota_mb: float = 2048.0
    max_video_frames: int = 3000
    cors_origins: tuple[str, ...] = ()

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    def with_env(self) -> ServerSettings:
        """These settings with the API key taken from PIXELGROUND_API_KEY when unset."""
        if self.api_key is None and os.environ.get(API_KEY_ENV):
            self.api_key = os.environ[API_KEY_ENV]
        return self
