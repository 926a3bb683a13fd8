"""Pydantic models of every request and response (they make the OpenAPI schema).

Task routes answer with the result JSON v1 exactly as ``GroundedResult.to_dict`` writes it
(the CLI's ``-o`` file); :class:`Result` documents that shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pixelground.backends.base import DETECTION_THRESHOLD

ImageId = Field(
    default=None,
    description="id from POST /v1/images; give it or upload a file",
    max_length=64,
)


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable code, e.g. payload_too_large")
    message: str = Field(description="what went wrong and what to do")


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class Rle(BaseModel):
    """A COCO RLE mask: size [H, W] and compressed counts."""

    size: list[int]
    counts: str


class RegionModel(BaseModel):
    id: int | None = None
    phrase: str | None = None
    span: list[int] | None = None
    label: str | None = None
    score: float = 1.0
    box: list[float] | None = Field(default=None, description="xyxy pixels")
    mask: Rle | None = None
    attributes: dict[str, Any] | None = None


class ImageInfoModel(BaseModel):
    path: str | None = Field(default=None, description="the uploaded file's name")
    width: int
    height: int


class Result(BaseModel):
    """Result JSON v1 (docs/result-format.md), the same the CLI writes."""

    version: int = 1
    task: str
    image: ImageInfoModel
    text: str = ""
    regions: list[RegionModel] = []
    model: dict[str, Any] = {}


class TaskForm(BaseModel):
    """Fields every image task takes beside the optional ``file`` upload."""

    image_id: str | None = ImageId


class SegmentForm(TaskForm):
    text: str = Field(max_length=2000, description="referring expression")
    threshold: float = Field(
        default=DETECTION_THRESHOLD, ge=0.0, le=1.0, description="minimum detector score"
    )
    compose: bool | None = Field(
        default=None, description="answer ordinals, relations and sets by composing instances"
    )


class GroundForm(TaskForm):
    caption: str = Field(max_length=2000, description="caption; <p>-marked phrases or plain")
    strategy: Literal["detector", "entity"] = "detector"
    points_per_side: int = Field(default=16, ge=1, le=64)


class CaptionForm(TaskForm):
    grounded: bool = False
    detailed: bool = False


class DescribeForm(TaskForm):
    box: str | None = Field(default=None, description="X0,Y0,X1,Y1 pixels", max_length=200)
    point: str | None = Field(default=None, description="X,Y pixels", max_length=100)


class EntitiesForm(TaskForm):
    points_per_side: int = Field(default=16, ge=1, le=64)


class SemsegForm(TaskForm):
    classes: str = Field(max_length=4000, description='comma-separated, e.g. "sky,road"')
    mode: Literal["dense", "entity", "cass"] = "dense"
    setting: str | None = Field(
        default=None, max_length=64, description="cass mode: an official dataset config"
    )


class ChatForm(TaskForm):
    question: str = Field(max_length=4000)
    ground: bool = Field(default=True, description="ground the answer's phrases")
    history: str | None = Field(
        default=None,
        max_length=64_000,
        description='earlier turns as JSON: [["question", "answer"], ...] (at most 20)',
    )


class ImageSession(BaseModel):
    """An uploaded image kept for interactive prompts."""

    image_id: str
    name: str
    width: int
    height: int
    interactive: bool = Field(description="whether the preset has a prompted segmenter")
    embedding_ms: float | None = Field(description="image encoder time, ms (None: no encoder)")


class PointModel(BaseModel):
    x: float
    y: float
    positive: bool = True


class PromptRequest(BaseModel):
    """Clicks, a box and/or a previous mask: one object, decoded from the cached embedding."""

    model_config = ConfigDict(extra="forbid")
    points: list[PointModel] = Field(default=[], max_length=64)
    box: list[float] | None = Field(default=None, min_length=4, max_length=4)
    mask: Rle | None = Field(default=None, description="previous mask (COCO RLE)")
    multimask: bool = Field(default=False, description="3 candidates, best first")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    preset: str
    version: str
    meaningful: bool


class PresetPart(BaseModel):
    preset: str
    role: str
    backend: str
    checkpoint: str | None
    available: bool


class Presets(BaseModel):
    serving: str = Field(description="the preset this server runs")
    parts: list[PresetPart]


class JobForm(BaseModel):
    """A video job: ``track`` (text, or boxes / clicks on frames), ``caption`` or ``describe``
    (one box or point on a frame: the region's captions)."""

    kind: Literal["track", "caption", "describe"] = "track"
    text: str | None = Field(default=None, max_length=2000, description="track: what to follow")
    box: list[str] = Field(default=[], max_length=32, description="X0,Y0,X1,Y1@FRAME[:ID]")
    point: list[str] = Field(default=[], max_length=64, description="X,Y@FRAME[:ID]")
    neg_point: list[str] = Field(default=[], max_length=64, description="X,Y@FRAME[:ID]")
    grounded: bool = Field(default=False, description="caption: ground and track its phrases")
    stream: bool = Field(default=False, description="describe: clip by clip (8 frames each)")
    max_frames: int | None = Field(default=None, ge=1, description="use at most N frames")


class JobInfo(BaseModel):
    """A video job's state and progress."""

    id: str
    kind: str
    state: str = Field(description="queued, running, done, failed, cancelled, interrupted")
    done: int = Field(description="frames processed")
    total: int = Field(description="frames planned (0 until known)")
    progress: float
    video: str
    error: dict[str, str] | None = None
    downloads: dict[str, str] = {}
    events: str
