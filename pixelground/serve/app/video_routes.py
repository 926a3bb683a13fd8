"""Video jobs: upload a video and start a track or caption job, follow it, download it.

POST   /v1/jobs                     multipart: file (video) + kind (track, caption,
                                        describe), text | box/point
GET    /v1/jobs/{id}                state and progress
GET    /v1/jobs/{id}/events         server-sent events until the job ends
GET    /v1/jobs/{id}/frames/{n}     frame n of the video (PNG), for scrubbing
GET    /v1/jobs/{id}/result.json | masks.zip | overlay.mp4
DELETE /v1/jobs/{id}                cancel (a finished job: delete it)
"""

import asyncio
import io
import json
import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from PIL import Image

from pixelground.core.errors import InputError
from pixelground.serve.app.errors import ApiError
from pixelground.serve.app.image_routes import RESPONSES, read_upload
from pixelground.serve.app.job_runner import describe_region
from pixelground.serve.app.jobs import OUTPUTS, JobRecord
from pixelground.serve.app.schemas import JobForm, JobInfo
from pixelground.serve.app.security import safe_name, sniff_video
from pixelground.serve.app.state import ServerState, server_state
from pixelground.tasks.common import clean_text
from pixelground.video.frames import open_video
from pixelground.video.interactive import prompts_from_cli

State = Annotated[ServerState, Depends(server_state)]
router = APIRouter(prefix="/v1/jobs", tags=["video jobs"])
#: Seconds between state checks of an event stream.
EVENT_POLL = 0.25


def job_info(record: JobRecord) -> JobInfo:
    """The public view of a job record (with download links once done)."""
    base = f"/v1/jobs/{record.id}"
    return JobInfo(
        id=record.id,
        kind=record.kind,
        state=record.state,
        done=record.done,
        total=record.total,
        progress=record.done / record.total if record.total else 0.0,
        video=record.video.get("name", ""),
        error=record.error,
        downloads={name: f"{base}/{name}" for name in OUTPUTS} if record.state == "done" else {},
        events=f"{base}/events",
    )


def job_params(form: JobForm) -> dict:
    """The job's parameters, checked before the upload is stored (400 on a bad one)."""
    params = form.model_dump(exclude_none=True)
    if form.kind == "track":
        has_prompts = bool(form.box or form.point or form.neg_point)
        if bool(form.text) == has_prompts:
            raise InputError("a track job needs a text or box/point prompts (X0,Y0,X1,Y1@FRAME)")
        if form.text:
            params["text"] = clean_text(form.text, "expression")
        else:
            prompts_from_cli(form.box, form.point, form.neg_point)  # InputError if malformed
    if form.kind == "describe":
        describe_region(params)
    return params


@router.post("", status_code=202, response_model=JobInfo, responses=RESPONSES)
async def create_job(
    state: State,
    form: Annotated[JobForm, Form()],
    file: Annotated[UploadFile, File(description="the video (MP4/MOV, WebM/MKV, AVI)")],
) -> JobInfo:
    """Store the video and queue the job; follow it with GET or the events stream."""
    params = job_params(form)
    data = await read_upload(file, state)
    container = sniff_video(data)
    video = {"name": safe_name(file.filename, f"upload.{container}"), "container": container}
    state.jobs.expire()
    record = state.jobs.create(form.kind, params, data, video)
    state.runner.submit(record.id)
    return job_info(record)


@router.get("/{job_id}", response_model=JobInfo, responses=RESPONSES)
def get_job(state: State, job_id: str) -> JobInfo:
    """A job's state and progress."""
    return job_info(state.jobs.load(job_id))


@router.get("/{job_id}/events", responses=RESPONSES)
async def job_events(state: State, job_id: str) -> StreamingResponse:
    """Server-sent events: the job's state whenever it changes, until it ends."""
    state.jobs.load(job_id)  # 404 before the stream starts
    deadline = time.monotonic() + state.settings.request_timeout

    async def stream():
        last = None
        while time.monotonic() < deadline:
            try:
                info = job_info(state.jobs.load(job_id)).model_dump()
            except ApiError:  # deleted while followed
                yield 'event: progress\ndata: {"state": "deleted"}\n\n'
                return
            if info != last:
                last = info
                yield f"event: progress\ndata: {json.dumps(info)}\n\n"
            if info["state"] in ("done", "failed", "cancelled", "interrupted"):
                return
            await asyncio.sleep(EVENT_POLL)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def frame_png(path, index: int, max_frames: int) -> bytes:
    """Frame ``index`` of the video at ``path`` as PNG bytes (InputError past its end)."""
    frames = open_video(path, max_frames=max_frames)
    if not 0 <= index < len(frames):
        raise InputError(f"frame {index} is outside the video's {len(frames)} frames")
    buffer = io.BytesIO()
    Image.fromarray(frames.read(index)).save(buffer, format="PNG")
    return buffer.getvalue()


@router.get("/{job_id}/frames/{index}", responses=RESPONSES)
async def job_frame(state: State, job_id: str, index: int) -> Response:
    """One frame of the job's video (PNG), as the job samples it."""
    record = state.jobs.load(job_id)
    path = state.jobs.input_path(record)
    limit = min(int(record.params.get("max_frames") or 10**9), state.settings.max_video_frames)
    data = await state.limiter.run(frame_png, path, index, limit)
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/{job_id}/{name}", responses=RESPONSES)
def job_output(state: State, job_id: str, name: str) -> FileResponse:
    """A finished job's result.json, masks.zip (DAVIS PNGs) or overlay.mp4."""
    path = state.jobs.output(job_id, name)
    return FileResponse(path, media_type=OUTPUTS[name], filename=f"{job_id}-{name}")


@router.delete("/{job_id}", response_model=JobInfo, responses=RESPONSES)
def delete_job(state: State, job_id: str) -> JobInfo:
    """Cancel a queued or running job; delete a finished one."""
    record = state.jobs.cancel(job_id)
    if record.state == "deleted":
        return job_info(record)
    return job_info(state.jobs.load(job_id))
