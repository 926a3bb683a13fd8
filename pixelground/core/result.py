"""Result types: GroundedResult for images, VideoResult for videos, and their JSON form.

JSON schema version 1 (documented in docs/result-format.md):

    {"version": 1, "task": str, "image": {"path", "width", "height"}, "text": str,
     "regions": [{"id", "phrase", "span": [s, e], "label", "score", "box": [x0, y0, x1, y1],
                  "mask": {"size": [h, w], "counts": str}, "attributes": {...}}],
     "model": {...}}

Spans are [start, end) character offsets into ``text``; boxes are xyxy pixels; masks are
COCO RLE. ``to_dict`` followed by ``from_dict`` is lossless.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.core.files import write_text_atomic
from pixelground.core.masks import decode_rle, encode_rle, masks_to_boxes

SCHEMA_VERSION = 1
Span = tuple[int, int]


class JsonMixin:
    """``to_json``/``from_json`` for a result class with ``to_dict``/``from_dict``."""

    def to_json(self, path: str | Path | None = None, indent: int | None = None) -> str:
        """Serialise to a JSON string, and write it to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            write_text_atomic(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> Any:
        """Read from a JSON string or a path to a JSON file."""
        text = Path(source).read_text() if _is_path(source) else str(source)
        return cls.from_dict(json.loads(text))


@dataclass
class Region:
    """One grounded region of an image.

    Attributes:
        mask: (H, W) bool mask, or None for a box-only region.
        box: xyxy box in pixels; derived from the mask when not given.
        score: confidence in [0, 1].
        phrase: the words this region grounds.
        span: [start, end) character offsets of ``phrase`` in the result's text.
        label: a class or category name (semantic segmentation, region labels).
        id: identifier unique within its result.
        attributes: further JSON-serialisable facts (e.g. a region's short caption).
    """

    mask: np.ndarray | None = field(default=None, repr=False)
    box: tuple[float, float, float, float] | None = None
    score: float = 1.0
    phrase: str | None = None
    span: Span | None = None
    label: str | None = None
    id: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mask is not None:
            self.mask = np.asarray(self.mask).astype(bool, copy=False)
            if self.mask.ndim != 2:
                raise ValueError(f"a region mask must be (H, W), got {self.mask.shape}")
            if self.box is None:
                self.box = tuple(float(v) for v in masks_to_boxes(self.mask)[0])
        if self.box is not None:
            self.box = tuple(float(v) for v in self.box)
        if self.span is not None:
            self.span = (int(self.span[0]), int(self.span[1]))
        self.score = float(self.score)

    @property
    def area(self) -> int:
        """Number of mask pixels (0 without a mask)."""
        return int(self.mask.sum()) if self.mask is not None else 0

    def to_dict(self) -> dict[str, Any]:
        """This region as a JSON-ready dict (schema v1)."""
        out: dict[str, Any] = {
            "id": self.id,
            "phrase": self.phrase,
            "span": list(self.span) if self.span is not None else None,
            "label": self.label,
            "score": self.score,
            "box": list(self.box) if self.box is not None else None,
            "mask": encode_rle(self.mask)[0] if self.mask is not None else None,
        }
        if self.attributes:
            out["attributes"] = self.attributes
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Region:
        """Inverse of ``to_dict``."""
        mask = decode_rle(data["mask"]) if data.get("mask") else None
        span = data.get("span")
        box = data.get("box")
        return cls(
            mask=mask,
            box=tuple(box) if box is not None else None,
            score=data.get("score", 1.0),
            phrase=data.get("phrase"),
            span=tuple(span) if span is not None else None,
            label=data.get("label"),
            id=data.get("id"),
            attributes=dict(data.get("attributes", {})),
        )


@dataclass
class ImageInfo:
    """Where an image came from and its size in pixels."""

    width: int
    height: int
    path: str | None = None


@dataclass
class GroundedResult(JsonMixin):
    """Text plus the regions its phrases refer to, for one image.

    Attributes:
        task: the task that produced it (``"segment"``, ``"ground"``, ``"caption"``, ...).
        image: source path and size; every mask is (image.height, image.width).
        text: the text the spans index into (expression, caption, answer).
        regions: grounded regions; ids are assigned in order when missing.
        model: which models made it (preset name, hub ids, notes).
    """

    task: str
    image: ImageInfo
    text: str = ""
    regions: list[Region] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        used = {r.id for r in self.regions if r.id is not None}
        next_id = 0
        for region in self.regions:
            if region.id is None:
                while next_id in used:
                    next_id += 1
                region.id = next_id
                used.add(next_id)
            if region.mask is not None and region.mask.shape != (
                self.image.height,
                self.image.width,
            ):
                raise ValueError(
                    f"region mask {region.mask.shape} does not match the image "
                    f"{(self.image.height, self.image.width)}"
                )

    def __len__(self) -> int:
        return len(self.regions)

    def __iter__(self) -> Iterator[Region]:
        return iter(self.regions)

    def __getitem__(self, index: int | slice) -> Region | GroundedResult:
        if isinstance(index, slice):
            return replace(self, regions=self.regions[index])
        return self.regions[index]

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool masks; box-only regions give empty masks."""
        h, w = self.image.height, self.image.width
        out = np.zeros((len(self.regions), h, w), dtype=bool)
        for i, region in enumerate(self.regions):
            if region.mask is not None:
                out[i] = region.mask
        return out

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) float64 xyxy boxes; regions without a box give NaN."""
        return np.array(
            [r.box if r.box is not None else (np.nan,) * 4 for r in self.regions],
            dtype=np.float64,
        ).reshape(-1, 4)

    @property
    def scores(self) -> np.ndarray:
        """(N,) float64 scores."""
        return np.array([r.score for r in self.regions], dtype=np.float64)

    @property
    def phrases(self) -> list[str]:
        """The distinct phrases in order of first appearance."""
        return list(dict.fromkeys(r.phrase for r in self.regions if r.phrase is not None))

    def filter(
        self,
        min_score: float | None = None,
        phrase: str | None = None,
        predicate: Callable[[Region], bool] | None = None,
    ) -> GroundedResult:
        """Regions that pass every given condition, in a new result (regions are shared)."""

        def keep(region: Region) -> bool:
            if min_score is not None and region.score < min_score:
                return False
            if phrase is not None and region.phrase != phrase:
                return False
            return predicate is None or predicate(region)

        return replace(self, regions=[r for r in self.regions if keep(r)])

    def by_phrase(self) -> dict[str, list[Region]]:
        """Regions grouped by phrase, phrases in order of first appearance."""
        groups: dict[str, list[Region]] = {}
        for region in self.regions:
            if region.phrase is not None:
                groups.setdefault(region.phrase, []).append(region)
        return groups

    def union_mask(self, phrase: str | None = None) -> np.ndarray:
        """(H, W) union of the masks of all regions, or of one phrase's regions."""
        selected = self if phrase is None else self.filter(phrase=phrase)
        return (
            selected.masks.any(axis=0)
            if len(selected)
            else np.zeros((self.image.height, self.image.width), dtype=bool)
        )

    def label_map(self, labels: list[str], background: int = -1) -> np.ndarray:
        """(H, W) int32 map: index into ``labels`` of the region covering each pixel.

        Later regions overwrite earlier ones; uncovered pixels get ``background``.
        """
        index = {name: i for i, name in enumerate(labels)}
        out = np.full((self.image.height, self.image.width), background, dtype=np.int32)
        for region in self.regions:
            if region.mask is not None and region.label in index:
                out[region.mask] = index[region.label]
        return out

    def merge(self, other: GroundedResult) -> GroundedResult:
        """Regions of both results in one (same image); ids of ``other`` are renumbered."""
        if (other.image.height, other.image.width) != (self.image.height, self.image.width):
            raise ValueError("cannot merge results of images of different sizes")
        start = max((r.id for r in self.regions), default=-1) + 1
        moved = [replace(r, id=start + i) for i, r in enumerate(other.regions)]
        return replace(self, regions=[*self.regions, *moved])

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (schema v1)."""
        return {
            "version": SCHEMA_VERSION,
            "task": self.task,
            "image": {
                "path": self.image.path,
                "width": self.image.width,
                "height": self.image.height,
            },
            "text": self.text,
            "regions": [r.to_dict() for r in self.regions],
            "model": self.model,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroundedResult:
        """Inverse of ``to_dict``; raises InputError (a ValueError) on an unknown schema version."""
        check_version(data)
        image = data["image"]
        return cls(
            task=data["task"],
            image=ImageInfo(
                width=int(image["width"]), height=int(image["height"]), path=image.get("path")
            ),
            text=data.get("text", ""),
            regions=[Region.from_dict(r) for r in data.get("regions", [])],
            model=dict(data.get("model", {})),
        )


def check_version(data: dict[str, Any]) -> None:
    """Raise InputError (a ValueError) unless ``data`` is of a schema version this code reads."""
    version = data.get("version")
    if version != SCHEMA_VERSION:
        raise InputError(
            f"unsupported result version {version!r}; this pixelground reads version "
            f"{SCHEMA_VERSION}: use the pixelground release that wrote the file, or write it again"
        )


def _is_path(source: str | Path) -> bool:
    return isinstance(source, Path) or not str(source).lstrip().startswith("{")


@dataclass
class FrameMask:
    """One track's mask on one frame, kept as COCO RLE so long videos stay small in memory."""

    rle: dict[str, Any]
    box: tuple[float, float, float, float]
    score: float = 1.0

    @classmethod
    def from_mask(cls, mask: np.ndarray, score: float = 1.0) -> FrameMask:
        """Encode an (H, W) bool mask."""
        box = tuple(float(v) for v in masks_to_boxes(mask)[0])
        return cls(rle=encode_rle(mask)[0], box=box, score=float(score))

    @property
    def mask(self) -> np.ndarray:
        """The decoded (H, W) bool mask."""
        return decode_rle(self.rle)


@dataclass
class Track:
    """One object followed through a video.

    Attributes:
        id: stable track id, unique within its result.
        frames: frame index -> mask on that frame; frames where the object is absent are omitted.
        phrase, span, label, score: as for Region; span indexes the VideoResult's text.
        attributes: further JSON-serialisable facts.
    """

    id: int
    frames: dict[int, FrameMask] = field(default_factory=dict)
    phrase: str | None = None
    span: Span | None = None
    label: str | None = None
    score: float = 1.0
    attributes: dict[str, Any] = field(default_factory=dict)

    def add(self, frame_index: int, mask: np.ndarray, score: float = 1.0) -> None:
        """Record the (H, W) mask on a frame; empty masks mark the object absent and are skipped."""
        if mask.any():
            self.frames[int(frame_index)] = FrameMask.from_mask(mask, score)
        else:
            self.frames.pop(int(frame_index), None)

    def mask(self, frame_index: int, height: int, width: int) -> np.ndarray:
        """(H, W) mask on a frame; all False where the object is absent."""
        entry = self.frames.get(frame_index)
        return entry.mask if entry is not None else np.zeros((height, width), dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; frames sorted by index."""
        out: dict[str, Any] = {
            "id": self.id,
            "phrase": self.phrase,
            "span": list(self.span) if self.span is not None else None,
            "label": self.label,
            "score": self.score,
            "frames": [
                {"frame": i, "score": f.score, "box": list(f.box), "mask": f.rle}
                for i, f in sorted(self.frames.items())
            ],
        }
        if self.attributes:
            out["attributes"] = self.attributes
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Track:
        """Inverse of ``to_dict``."""
        span = data.get("span")
        frames = {
            int(f["frame"]): FrameMask(
                rle=f["mask"], box=tuple(f["box"]), score=f.get("score", 1.0)
            )
            for f in data.get("frames", [])
        }
        return cls(
            id=int(data["id"]),
            frames=frames,
            phrase=data.get("phrase"),
            span=tuple(span) if span is not None else None,
            label=data.get("label"),
            score=float(data.get("score", 1.0)),
            attributes=dict(data.get("attributes", {})),
        )


@dataclass
class VideoInfo:
    """Where a video came from, its frame size and frame count (after sampling)."""

    width: int
    height: int
    num_frames: int
    fps: float | None = None
    path: str | None = None
    frame_indices: list[int] | None = None  # source frame index of each sampled frame


@dataclass
class CaptionEvent:
    """Text about a time range of a video, e.g. one clip of a streaming region caption.

    Frames are [start_frame, end_frame] inclusive, in sampled-frame indices.
    """

    start_frame: int
    end_frame: int
    text: str
    track_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "text": self.text,
            "track_id": self.track_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptionEvent:
        """Inverse of ``to_dict``; keys it does not know are ignored."""
        track_id = data.get("track_id")
        return cls(
            start_frame=int(data["start_frame"]),
            end_frame=int(data["end_frame"]),
            text=data.get("text", ""),
            track_id=int(track_id) if track_id is not None else None,
        )


@dataclass
class VideoResult(JsonMixin):
    """Text plus tracked objects for one video; same conventions as GroundedResult."""

    task: str
    video: VideoInfo
    text: str = ""
    tracks: list[Track] = field(default_factory=list)
    events: list[CaptionEvent] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tracks)

    def __iter__(self) -> Iterator[Track]:
        return iter(self.tracks)

    def track(self, track_id: int) -> Track:
        """The track with this id; KeyError if there is none."""
        for track in self.tracks:
            if track.id == track_id:
                return track
        raise KeyError(f"no track with id {track_id}")

    def frame_masks(self, frame_index: int) -> dict[int, np.ndarray]:
        """Track id -> (H, W) mask, for the tracks present on a frame."""
        return {t.id: t.frames[frame_index].mask for t in self.tracks if frame_index in t.frames}

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (schema v1)."""
        v = self.video
        return {
            "version": SCHEMA_VERSION,
            "task": self.task,
            "video": {
                "path": v.path,
                "width": v.width,
                "height": v.height,
                "num_frames": v.num_frames,
                "fps": v.fps,
                "frame_indices": v.frame_indices,
            },
            "text": self.text,
            "tracks": [t.to_dict() for t in self.tracks],
            "events": [e.to_dict() for e in self.events],
            "model": self.model,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoResult:
        """Inverse of ``to_dict``."""
        check_version(data)
        v = data["video"]
        return cls(
            task=data["task"],
            video=VideoInfo(
                width=int(v["width"]),
                height=int(v["height"]),
                num_frames=int(v["num_frames"]),
                fps=v.get("fps"),
                path=v.get("path"),
                frame_indices=v.get("frame_indices"),
            ),
            text=data.get("text", ""),
            tracks=[Track.from_dict(t) for t in data.get("tracks", [])],
            events=[CaptionEvent.from_dict(e) for e in data.get("events", [])],
            model=dict(data.get("model", {})),
        )
