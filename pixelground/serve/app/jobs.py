"""The on-disk job store of video jobs: one folder per random job id.

    JOBS_DIR/<id>/job.json      state, progress, parameters, error (written atomically)
    JOBS_DIR/<id>/input.<ext>   the uploaded video
    JOBS_DIR/<id>/result.json   VideoResult JSON, masks.zip (DAVIS PNGs), overlay.mp4

Ids are validated (32 hex characters) before any path is built, so no request can name a
file outside the store. Records are plain JSON, never unpickled. A restarted server marks
jobs that were queued or running as ``interrupted`` and still serves finished ones; finished
jobs older than the time-to-live are deleted, and new jobs are refused beyond the quota.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pixelground.core.files import atomic_open
from pixelground.serve.app.errors import ApiError
from pixelground.serve.app.security import ID_PATTERN, check_id, new_id

FINAL_STATES = ("done", "failed", "cancelled", "interrupted")
RECORD = "job.json"
#: Downloadable outputs of a finished job: name -> media type.
OUTPUTS = {
    "result.json": "application/json",
    "masks.zip": "application/zip",
    "overlay.mp4": "video/mp4",
}


@dataclass
class JobRecord:
    """One job's state, as stored in job.json.

    Attributes:
        id: random hex id.
        kind: ``track`` (text or box/points) or ``caption``.
        state: queued, running, done, failed, cancelled or interrupted.
        params: the request's parameters (text, prompts, sampling).
        video: the uploaded file's name (a label) and container.
        done: frames processed so far; total: frames planned (0 until known).
        error: ``{"code", "message"}`` when failed.
        created, updated: Unix times.
    """

    id: str
    kind: str
    state: str = "queued"
    params: dict[str, Any] = field(default_factory=dict)
    video: dict[str, str] = field(default_factory=dict)
    done: int = 0
    total: int = 0
    error: dict[str, str] | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it over ``path``."""
    with atomic_open(path, "wb") as out:
        out.write(data)


class JobStore:
    """Jobs on disk under ``root``.

    Args:
        root: the store's folder (created).
        ttl_hours: finished jobs older than this are deleted by :meth:`expire`.
        quota_bytes: :meth:`create` refuses new jobs (507) while the store is larger.
    """

    def __init__(self, root: Path, ttl_hours: float, quota_bytes: int) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl = float(ttl_hours) * 3600.0
        self.quota = int(quota_bytes)
        self._lock = threading.Lock()
        self._cancelled: set[str] = set()

    def folder(self, job_id: str) -> Path:
        """The folder of a well-formed job id (404 for anything else)."""
        return self.root / check_id(job_id, "job")

    def save(self, record: JobRecord) -> None:
        """Write ``record`` atomically."""
        record.updated = time.time()
        write_atomic(self.folder(record.id) / RECORD, json.dumps(asdict(record)).encode())

    def load(self, job_id: str) -> JobRecord:
        """The record of ``job_id``; 404 when there is none."""
        path = self.folder(job_id) / RECORD
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError) as error:
            raise ApiError(404, "not_found", f"no job with id {job_id!r}") from error
        return JobRecord(**{k: v for k, v in data.items() if k in JobRecord.__annotations__})

    def usage(self) -> int:
        """Bytes held by the store."""
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def create(self, kind: str, params: dict[str, Any], data: bytes, video: dict[str, str]):
        """A new queued job holding the uploaded ``data``; 507 beyond the disk quota."""
        if self.usage() + len(data) > self.quota:
            raise ApiError(
                507,
                "quota_exceeded",
                f"the job store is full (quota {self.quota:,} bytes): delete finished jobs "
                "or wait for them to expire",
            )
        record = JobRecord(id=new_id(), kind=kind, params=params, video=video)
        folder = self.folder(record.id)
        folder.mkdir()
        write_atomic(folder / f"input.{video['container']}", data)
        self.save(record)
        return record

    def input_path(self, record: JobRecord) -> Path:
        """The uploaded video of ``record``."""
        return self.folder(record.id) / f"input.{record.video['container']}"

    def output(self, job_id: str, name: str) -> Path:
        """A finished job's output file; 404 for unknown names, 409 before it exists."""
        if name not in OUTPUTS:
            raise ApiError(404, "not_found", f"no output {name!r}; outputs: {', '.join(OUTPUTS)}")
        record = self.load(job_id)
        path = self.folder(job_id) / name
        if record.state != "done" or not path.exists():
            raise ApiError(409, "not_ready", f"job {job_id} is {record.state}: no {name} yet")
        return path

    def ids(self) -> list[str]:
        """Ids of the jobs on disk (folders with a well-formed name)."""
        return sorted(p.name for p in self.root.iterdir() if ID_PATTERN.fullmatch(p.name))

    def recover(self) -> list[str]:
        """After a restart: queued or running jobs become ``interrupted``; returns their ids."""
        interrupted = []
        for job_id in self.ids():
            try:
                record = self.load(job_id)
            except ApiError:
                continue
            if not record.final:
                record.state = "interrupted"
                record.error = {"code": "interrupted", "message": "the server stopped mid-job"}
                self.save(record)
                interrupted.append(job_id)
        return interrupted

    def expire(self, now: float | None = None) -> list[str]:
        """Delete finished jobs older than the time-to-live; returns their ids."""
        now = time.time() if now is None else now
        removed = []
        for job_id in self.ids():
            try:
                record = self.load(job_id)
            except ApiError:
                continue
            if record.final and now - record.updated > self.ttl:
                shutil.rmtree(self.folder(job_id), ignore_errors=True)
                removed.append(job_id)
        return removed

    def cancel(self, job_id: str) -> JobRecord:
        """Ask a job to stop (a queued one stops at once); a finished one is deleted."""
        record = self.load(job_id)
        if record.final:
            shutil.rmtree(self.folder(job_id), ignore_errors=True)
            record.state = "deleted"
            return record
        with self._lock:
            self._cancelled.add(job_id)
        if record.state == "queued":
            record.state = "cancelled"
            self.save(record)
        return record

    def is_cancelled(self, job_id: str) -> bool:
        """Whether :meth:`cancel` was called for ``job_id``."""
        with self._lock:
            return job_id in self._cancelled
