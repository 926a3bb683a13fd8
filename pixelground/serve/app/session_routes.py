"""Interactive sessions, as SAM's demo does it: embed an image once, then decode prompts.

``POST /v1/images`` stores an image under a random id and runs the segmenter's image
encoder once; ``POST /v1/images/{id}/prompt`` turns clicks, a box and/or a previous mask
into one object's mask with the mask decoder only.
"""

import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import JSONResponse

from pixelground.backends.base import EmbeddingSegmenter, describe_backend
from pixelground.core.prompts import Box, Point, Prompt
from pixelground.core.result import GroundedResult, ImageInfo, Region
from pixelground.serve.app.image_routes import RESPONSES, decode_image, read_upload
from pixelground.serve.app.schemas import ImageSession, PromptRequest
from pixelground.serve.app.security import new_id
from pixelground.serve.app.sessions import Session
from pixelground.serve.app.state import ServerState, server_state
from pixelground.serve.app.wire import decode_client_rle

State = Annotated[ServerState, Depends(server_state)]
router = APIRouter(prefix="/v1", tags=["interactive"])


def has_prompted_segmenter(pipeline) -> bool:
    """Whether the preset has a segmenter part (clicks and boxes need one)."""
    return pipeline.preset.parts.get("segmenter") is not None


def embed(pipeline, session: Session) -> float | None:
    """Run the image encoder once for ``session``; its time in ms (None without encoder)."""
    if not has_prompted_segmenter(pipeline):
        return None
    segmenter = pipeline.backend("segmenter")
    if not isinstance(segmenter, EmbeddingSegmenter):
        return None
    start = time.perf_counter()
    session.embedding = segmenter.embed(session.image.pixels)
    return (time.perf_counter() - start) * 1000.0


def to_prompt(request: PromptRequest, max_pixels: int) -> Prompt:
    """The request's clicks, box and previous mask (strictly decoded) as one Prompt."""
    points = tuple(Point(p.x, p.y, p.positive) for p in request.points)
    box = Box(*request.box) if request.box is not None else None
    mask = None
    if request.mask is not None:
        mask = decode_client_rle(request.mask.size, request.mask.counts, max_pixels)
    return Prompt(points=points, box=box, mask=mask)


def decode(pipeline, session: Session, prompt: Prompt, multimask: bool) -> GroundedResult:
    """The mask decoder on the cached embedding (the encoder only if it was never run)."""
    segmenter = pipeline.require("segmenter", "interactive segmentation")
    if session.embedding is not None:
        (candidates,) = segmenter.segment_embedded(session.embedding, [prompt], multimask)
    else:
        (candidates,) = segmenter.segment(session.image.pixels, [prompt], multimask)
    image = session.image
    regions = [
        Region(mask=mask, score=float(score))
        for mask, score in zip(candidates.masks, candidates.scores, strict=True)
    ]
    model = {"preset": pipeline.preset.name, "segmenter": describe_backend(segmenter)}
    info = ImageInfo(width=image.width, height=image.height, path=image.path)
    return GroundedResult(task="interactive", image=info, regions=regions, model=model)


@router.post("/images", response_model=ImageSession, responses=RESPONSES, summary="upload")
async def upload_image(
    state: State, file: Annotated[UploadFile, File(description="the image")]
) -> ImageSession:
    """Keep an image for interactive prompts and task requests by id; embeds it once."""
    data = await read_upload(file, state)
    limit = state.settings.max_pixels
    image = await state.limiter.run(decode_image, data, file.filename, limit)
    session = Session(image)
    elapsed = await state.limiter.run(embed, state.pipeline, session)
    image_id = new_id()
    state.images.put(image_id, session)
    return ImageSession(
        image_id=image_id,
        name=image.path or "upload",
        width=image.width,
        height=image.height,
        interactive=session.embedding is not None,
        embedding_ms=elapsed,
    )


@router.post("/images/{image_id}/prompt", responses=RESPONSES, summary="click / box / mask")
async def prompt_image(state: State, image_id: str, request: PromptRequest) -> JSONResponse:
    """One object's mask (or 3 candidates, best first) from the cached embedding."""
    session = state.images.get(image_id)
    prompt = to_prompt(request, state.settings.max_pixels)
    result = await state.limiter.run(decode, state.pipeline, session, prompt, request.multimask)
    return JSONResponse(result.to_dict())
