"""Runs video jobs one at a time in a worker thread, with the Pipeline's video methods.

``track`` with a text calls ``Pipeline.segment_video``, with boxes or clicks
(``X0,Y0,X1,Y1@FRAME``, ``X,Y@FRAME`` as ``pixelground track`` takes them)
``Pipeline.track``; ``caption`` calls ``Pipeline.caption_video`` and ``describe``
``Pipeline.describe_video``, with the CLI's defaults. Progress is
saved to the job record as frames are done; a cancelled job stops at the next frame.
Outputs are written atomically (temp name, then rename).
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError, PixelgroundError
from pixelground.core.prompts import Box, Point
from pixelground.core.result import VideoResult
from pixelground.serve.app.errors import error_code
from pixelground.serve.app.jobs import JobRecord, JobStore, write_atomic
from pixelground.video.frames import FrameSource, open_video
from pixelground.video.interactive import parse_at, prompts_from_cli
from pixelground.video.outputs import write_davis_masks, write_overlay_video

log = logging.getLogger("pixelground.server")
#: Seconds between progress writes to job.json.
PROGRESS_EVERY = 0.2


class JobCancelled(Exception):
    """Raised inside a job's frame callback when the job was cancelled."""


class Progress:
    """Per-frame callback: counts distinct frames, saves progress, stops cancelled jobs."""

    def __init__(self, store: JobStore, record: JobRecord) -> None:
        self.store, self.record = store, record
        self.seen: set[int] = set()
        self.last = 0.0

    def __call__(self, frame: Any) -> None:
        if self.store.is_cancelled(self.record.id):
            raise JobCancelled(self.record.id)
        self.seen.add(int(getattr(frame, "index", len(self.seen))))
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            self.record.done = min(len(self.seen), self.record.total or len(self.seen))
            self.store.save(self.record)


def open_frames(store: JobStore, record: JobRecord, max_frames: int) -> FrameSource:
    """The job's video, at most ``max_frames`` frames (the request may ask for fewer)."""
    asked = int(record.params.get("max_frames") or max_frames)
    return open_video(store.input_path(record), max_frames=min(asked, max_frames))


def run_track(pipeline: Any, frames: FrameSource, params: dict, progress: Progress):
    """``pixelground track``: by text, or by boxes and clicks on frames."""
    if params.get("text"):
        return pipeline.segment_video(frames, params["text"], on_frame=progress)
    prompts = prompts_from_cli(
        params.get("box", []), params.get("point", []), params.get("neg_point", [])
    )
    return pipeline.track(frames, prompts, on_frame=progress)


def run_caption(pipeline: Any, frames: FrameSource, params: dict, progress: Progress):
    """``pixelground caption VIDEO [--grounded]``."""
    return pipeline.caption_video(frames, bool(params.get("grounded")), on_frame=progress)


def describe_region(params: dict) -> tuple[Box | None, Point | None, int]:
    """The one ``box`` or ``point`` (``VALUE@FRAME``) of a describe job, and its frame."""
    given = [*params.get("box", []), *params.get("point", [])]
    if len(given) != 1:
        raise InputError("a describe job needs one box=X0,Y0,X1,Y1@FRAME or point=X,Y@FRAME")
    value, frame, track_id = parse_at(given[0]) if "@" in given[0] else (given[0], 0, None)
    if track_id is not None:
        raise InputError(f"describe follows one region: drop the :ID from {given[0]!r}")
    if params.get("box"):
        return Box.parse(value), None, frame
    return None, Point.parse(value), frame


def run_describe(pipeline: Any, frames: FrameSource, params: dict, progress: Progress):
    """``pixelground describe VIDEO --box X0,Y0,X1,Y1@FRAME [--stream]``."""
    box, point, frame = describe_region(params)
    if frame >= len(frames):
        raise InputError(f"frame {frame} is outside the video's {len(frames)} frames")
    clip_frames = 8 if params.get("stream") else None
    return pipeline.describe_video(
        frames,
        frame=frame,
        box=box,
        point=point,
        clip_frames=clip_frames,
        on_frame=progress,
    )


KINDS = {"track": run_track, "caption": run_caption, "describe": run_describe}


def write_outputs(folder: Path, result: VideoResult, frames: FrameSource) -> None:
    """result.json, masks.zip (DAVIS PNGs) and overlay.mp4, each written then renamed."""
    write_atomic(folder / "result.json", result.to_json().encode())
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        masks = write_davis_masks(result, Path(scratch) / "masks")
        temp_zip = Path(scratch) / "masks.zip"
        with zipfile.ZipFile(temp_zip, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(masks).rglob("*.png")):
                archive.write(path, path.relative_to(Path(scratch) / "masks"))
        os.replace(temp_zip, folder / "masks.zip")
        temp_mp4 = Path(scratch) / "overlay.mp4"
        write_overlay_video(result, frames, temp_mp4)
        os.replace(temp_mp4, folder / "overlay.mp4")


class JobRunner:
    """One worker thread running queued jobs in order.

    Args:
        store: the job store.
        pipeline: the server's Pipeline.
        model_lock: held while a job runs a model (shared with the request limiter).
        max_frames: the most frames a job may process.
    """

    def __init__(
        self, store: JobStore, pipeline: Any, model_lock: threading.Lock, max_frames: int
    ) -> None:
        self.store, self.pipeline = store, pipeline
        self.model_lock = model_lock
        self.max_frames = int(max_frames)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="pixelground-jobs", daemon=True)
        self._thread.start()

    def submit(self, job_id: str) -> None:
        """Queue a saved job."""
        self._queue.put(job_id)

    def stop(self) -> None:
        """Stop the worker after the current job."""
        self._queue.put(None)

    def _loop(self) -> None:
        while (job_id := self._queue.get()) is not None:
            try:
                self._run(job_id)
            except Exception:  # a job never kills the worker
                log.exception("job %s failed unexpectedly", job_id)

    def _run(self, job_id: str) -> None:
        record = self.store.load(job_id)
        if record.final or self.store.is_cancelled(job_id):
            return
        folder = self.store.folder(job_id)
        try:
            with self.model_lock:
                frames = open_frames(self.store, record, self.max_frames)
                record.state, record.total = "running", len(frames)
                self.store.save(record)
                result = KINDS[record.kind](
                    self.pipeline, frames, record.params, Progress(self.store, record)
                )
                write_outputs(folder, result, frames)
            record.state, record.done = "done", record.total
        except JobCancelled:
            record.state = "cancelled"
        except PixelgroundError as error:
            record.state = "failed"
            record.error = {"code": error_code(error), "message": str(error)}
        except Exception:
            log.exception("job %s failed", job_id)
            record.state = "failed"
            record.error = {"code": "internal_error", "message": "the job failed; see the log"}
        if folder.exists():
            self.store.save(record)
        if record.state == "cancelled":
            for name in ("result.json", "masks.zip", "overlay.mp4"):
                (folder / name).unlink(missing_ok=True)
