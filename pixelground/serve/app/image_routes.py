"""Image task routes: one per task, each answering with the result JSON v1.

Each route calls the Pipeline method the CLI command calls, with the CLI's defaults, so
one request gives the same JSON as ``pixelground TASK ... -o``. The image comes as a
multipart ``file`` or as the ``image_id`` of an image uploaded with ``POST /v1/images``.
"""

import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse

from pixelground.backends.presets import can_chat
from pixelground.core.errors import InputError
from pixelground.core.media import LoadedImage, load_image
from pixelground.core.prompts import Box, Point
from pixelground.serve.app.errors import ApiError
from pixelground.serve.app.schemas import (
    CaptionForm,
    ChatForm,
    DescribeForm,
    EntitiesForm,
    ErrorBody,
    GroundForm,
    Result,
    SegmentForm,
    SemsegForm,
    TaskForm,
)
from pixelground.serve.app.security import check_upload_size, safe_name, sniff_image
from pixelground.serve.app.state import ServerState, server_state
from pixelground.tasks.common import clean_text
from pixelground.tasks.semseg import parse_classes

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Result, "description": "result JSON v1"},
    **{status: {"model": ErrorBody} for status in (400, 401, 404, 413, 415, 422, 429, 504)},
}
Upload = Annotated[UploadFile | None, File(description="the image (or give image_id)")]
State = Annotated[ServerState, Depends(server_state)]

router = APIRouter(prefix="/v1", tags=["image tasks"])


async def read_upload(file: UploadFile, state: ServerState) -> bytes:
    """The upload's bytes, refused (413) beyond the size limit without reading further."""
    limit = state.settings.max_upload_bytes
    data = await file.read(limit + 1)
    return check_upload_size(data, limit)


def decode_image(data: bytes, name: str | None, max_pixels: int) -> LoadedImage:
    """Sniff (415/413) then decode an uploaded image; ``path`` is the client's file name."""
    sniff_image(data, max_pixels)
    pixels = load_image(data, max_pixels=max_pixels).pixels
    return LoadedImage(pixels, path=safe_name(name, "upload"))


async def resolve_image(state: ServerState, form: TaskForm, file: UploadFile | None):
    """The request's image: the upload, or a stored image's, never both or neither."""
    if file is not None and form.image_id:
        raise ApiError(400, "ambiguous_image", "give either a file or an image_id, not both")
    if file is not None:
        data = await read_upload(file, state)
        return await state.limiter.run(decode_image, data, file.filename, state.settings.max_pixels)
    if form.image_id:
        return state.images.get(form.image_id).image
    raise ApiError(400, "missing_image", "upload the image as 'file' or give an 'image_id'")


async def run_task(state: ServerState, form: TaskForm, file: UploadFile | None, task) -> Any:
    """Resolve the image, run ``task(pipeline, image)`` under the limiter, answer its JSON."""
    image = await resolve_image(state, form, file)
    result = await state.limiter.run(task, state.pipeline, image)
    return JSONResponse(result.to_dict())


def mask_from_upload(data: bytes, image: LoadedImage, max_pixels: int) -> np.ndarray:
    """A region mask from a PNG (nonzero = region), of the image's size, as the CLI reads it."""
    sniff_image(data, max_pixels)
    mask = load_image(data, max_pixels=max_pixels).pixels.max(axis=2) > 0
    if mask.shape != (image.height, image.width):
        raise InputError(
            f"mask is {mask.shape[1]}x{mask.shape[0]}, the image is {image.width}x{image.height}"
        )
    return mask


@router.post("/segment", responses=RESPONSES, summary="referring segmentation")
async def segment(state: State, form: Annotated[SegmentForm, Form()], file: Upload = None):
    """Masks of what ``text`` refers to (none, one or several)."""
    clean_text(form.text, "expression")  # checked before any model loads, as the CLI does

    def task(pl, im):
        return pl.segment(im, form.text, form.threshold, compose=form.compose)

    return await run_task(state, form, file, task)


@router.post("/ground", responses=RESPONSES, summary="phrase grounding")
async def ground(state: State, form: Annotated[GroundForm, Form()], file: Upload = None):
    """Masks for each phrase of ``caption``."""
    clean_text(form.caption, "caption")
    options = {"points_per_side": form.points_per_side}

    def task(pl, im):
        return pl.ground(im, form.caption, form.strategy, entity_options=options)

    return await run_task(state, form, file, task)


@router.post("/caption", responses=RESPONSES, summary="caption, optionally grounded (GCG)")
async def caption(state: State, form: Annotated[CaptionForm, Form()], file: Upload = None):
    """A caption; with ``grounded`` its phrases are tied to masks."""
    return await run_task(
        state, form, file, lambda pl, im: pl.caption(im, form.grounded, form.detailed)
    )


@router.post("/describe", responses=RESPONSES, summary="region understanding")
async def describe(
    state: State,
    form: Annotated[DescribeForm, Form()],
    file: Upload = None,
    mask: Annotated[UploadFile | None, File(description="mask PNG (nonzero = region)")] = None,
):
    """Label and captions of the region given by exactly one of box, point or mask."""
    if sum(v is not None for v in (form.box, form.point, mask)) != 1:
        raise InputError("describe needs exactly one of box=X0,Y0,X1,Y1, point=X,Y or a mask PNG")
    box = Box.parse(form.box) if form.box else None
    point = Point.parse(form.point) if form.point else None
    mask_data = await read_upload(mask, state) if mask is not None else None
    limit = state.settings.max_pixels

    def task(pl, im):
        for prompt in (box, point):  # outside the image: refused before any model loads
            if prompt is not None:
                prompt.validate(im.height, im.width)
        if mask_data is not None:
            return pl.describe(im, mask=mask_from_upload(mask_data, im, limit))
        # a box partly outside the image is clipped to it, as the CLI does
        region = box.clipped(im.height, im.width) if box is not None else None
        return pl.describe(im, box=region, point=point)

    return await run_task(state, form, file, task)


@router.post("/entities", responses=RESPONSES, summary="entity segmentation")
async def entities(state: State, form: Annotated[EntitiesForm, Form()], file: Upload = None):
    """Class-agnostic masks of everything."""
    return await run_task(
        state, form, file, lambda pl, im: pl.entities(im, points_per_side=form.points_per_side)
    )


@router.post("/semseg", responses=RESPONSES, summary="open-vocabulary semantic segmentation")
async def semseg(state: State, form: Annotated[SemsegForm, Form()], file: Upload = None):
    """One region per class of ``classes`` present in the image."""
    parse_classes(form.classes)
    return await run_task(
        state, form, file, lambda pl, im: pl.semseg(im, form.classes, form.mode, form.setting)
    )


@router.post("/chat", responses=RESPONSES, summary="ask a question about an image")
async def chat(state: State, form: Annotated[ChatForm, Form()], file: Upload = None):
    """The answer; its grounded phrases get masks unless ``ground`` is false."""
    clean_text(form.question, "question")
    if not can_chat(state.pipeline.preset):  # refused before any model loads, as the CLI does
        preset = state.pipeline.preset
        raise InputError(
            f"preset {preset.name!r} has no chat model (its parts: {', '.join(preset.parts)}); "
            "serve --preset default, or add one with --model vlm=vlm:HUB_ID_OR_DIR"
        )
    history = parse_history(form.history)

    def task(pl, im):
        return pl.chat(im, form.question, history, ground_answer=form.ground)

    return await run_task(state, form, file, task)


def parse_history(text: str | None, limit: int = 20) -> list[tuple[str, str]]:
    """Earlier chat turns from JSON ``[["question", "answer"], ...]``; InputError if malformed."""
    if not text:
        return []
    try:
        turns = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"history is not JSON: {error.msg}") from error
    if not isinstance(turns, list) or len(turns) > limit:
        raise InputError(f"history must be a list of at most {limit} [question, answer] pairs")
    for turn in turns:
        if not (
            isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn)
        ):
            raise InputError('each history turn must be ["question", "answer"]')
    return [(q, a) for q, a in turns]
