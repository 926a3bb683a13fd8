"""The annotation stages: plain functions from an image record to a new record.

Each :class:`Stage` names the backend roles it needs, so the engine runs only the stages a
preset can feed (a preset without a detector skips detection; the ``shapes`` model finds its
objects through its grounded caption). Stages call the Pipeline's tasks the way the CLI does.
Levels follow GLaMM's GranD: 1 objects and attributes, 2 relations (scene graph), 3 dense
grounded caption, 4 extra context. Level 1 lives here, levels 2-4 in ``scene_stages``.

A stage reads and writes JSON-ready records (masks as COCO RLE, see objects.py) and receives
the decoded image and a :class:`Context` (the Pipeline and the settings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pixelground.backends.base import DETECTION_THRESHOLD
from pixelground.core.media import LoadedImage
from pixelground.engine.objects import (
    depth_layers,
    make_object,
    merge_objects,
    object_masks,
)
from pixelground.pipeline import Pipeline
from pixelground.tasks.common import boxes_to_masks, inside_detections

Record = dict[str, Any]


@dataclass(frozen=True)
class Settings:
    """Everything that changes what the engine writes (recorded in the manifest).

    Attributes:
        levels: GranD levels to run (1 objects, 2 relations, 3 dense caption, 4 context).
        detect_threshold: detector confidence kept.
        points_per_side: entity segmentation grid (per view).
        entity_quality: entity masks kept from this predicted quality.
        max_objects: objects kept per image, best first (bounds the per-object stages).
        merge_iou: mask IoU above which two candidate objects are merged.
        match_iou: mask IoU at which a grounded phrase is matched to an object.
        relations_per_object: nearest neighbours each object is related to.
    """

    levels: tuple[int, ...] = (1, 2, 3)
    detect_threshold: float = DETECTION_THRESHOLD
    points_per_side: int = 8
    entity_quality: float = 0.7
    max_objects: int = 12
    merge_iou: float = 0.5
    match_iou: float = 0.5
    relations_per_object: int = 2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return {**asdict(self), "levels": list(self.levels)}


@dataclass
class Context:
    """What a stage may use besides the record: the Pipeline and the settings."""

    pipe: Pipeline
    settings: Settings


StageFn = Callable[[Record, LoadedImage, Context], Record]


@dataclass(frozen=True)
class Stage:
    """One step of the engine.

    Attributes:
        name: stable name (manifest, timings).
        level: the GranD level it belongs to.
        fn: record, image, context -> new record.
        roles: roles that must all be present.
        any_of: at least one of these roles must be present (empty: no condition).
        uses: optional roles it uses when present.
        finds_objects: the stage adds objects (a plan needs at least one such stage).
        batch_fn: optional form over a batch (records, images, context) -> records, for
            backends that take several images in one forward pass.
    """

    name: str
    level: int
    fn: StageFn
    roles: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    uses: tuple[str, ...] = field(default=())
    finds_objects: bool = False
    batch_fn: Callable[[list[Record], list[LoadedImage], Context], list[Record]] | None = None

    def runs_with(self, available: set[str]) -> bool:
        """Whether a preset with the ``available`` roles can run this stage."""
        wanted = set(self.any_of)
        return set(self.roles) <= available and (not wanted or bool(available & wanted))

    def load(self, pipe: Pipeline) -> None:
        """Load every backend this stage touches now, so per-image timings exclude loading."""
        for role in (*self.roles, *self.any_of, *self.uses):
            pipe.backend(role)

    def backends(self, pipe: Pipeline) -> dict[str, str]:
        """role -> "backend:checkpoint" of every role this stage touches in ``pipe``'s preset."""
        out = {}
        for role in (*self.roles, *self.any_of, *self.uses):
            part = pipe.preset.parts.get(role)
            if part is not None:
                out[role] = f"{part.backend}:{part.checkpoint}" if part.checkpoint else part.backend
        return out


def caption_objects(record: Record, image: LoadedImage, ctx: Context) -> Record:
    """Image caption and tags; an end-to-end grounding model also gives objects and phrases.

    With a grounding model (Sa2VA, the ``shapes`` model) the grounded caption's phrases are
    tags, objects (source "caption") and already-grounded phrases; otherwise the captioner's
    caption is parsed into noun-phrase tags.
    """
    pipe = ctx.pipe
    if pipe.backend("grounding_model") is not None:
        result = pipe.caption(image, grounded=True)
        objects = list(record["objects"])
        phrases = []
        for region in result.regions:
            phrases.append({"text": region.phrase, "span": list(region.span or ()), "object": None})
            objects.append(make_object(region.mask, region.score, [region.phrase or ""], "caption"))
            phrases[-1]["candidate"] = len(objects) - 1
        tags = [p["text"] for p in phrases if p["text"]]
        return {**record, "caption": result.text, "tags": list(dict.fromkeys(tags)),
                "objects": objects, "phrases": phrases}  # fmt: skip
    caption = pipe.caption(image).text
    parser = pipe.backend("parser")
    tags = [p.text for p in parser.noun_phrases(caption)] if parser and caption else []
    return {**record, "caption": caption, "tags": list(dict.fromkeys(tags))[:16]}


def detect_objects(record: Record, image: LoadedImage, ctx: Context) -> Record:
    """Open-vocabulary detection of the tags, a box-prompted mask for every detection."""
    tags = record.get("tags") or []
    if not tags:
        return record
    pipe = ctx.pipe
    detections = pipe.detector.detect(image.pixels, tags, threshold=ctx.settings.detect_threshold)
    detections = inside_detections(detections, image.height, image.width)
    masks = boxes_to_masks(pipe.segmenter, image.pixels, [d.box for d in detections])
    objects = list(record["objects"])
    for detection, (mask, quality) in zip(detections, masks, strict=True):
        if mask.any():
            score = detection.score * quality
            objects.append(make_object(mask, score, [tags[detection.query_index]], "detector"))
    return {**record, "objects": objects}


def entity_objects(record: Record, image: LoadedImage, ctx: Context) -> Record:
    """Class-agnostic entity masks ("segment everything"), as candidate objects."""
    settings = ctx.settings
    result = ctx.pipe.entities(
        image, points_per_side=settings.points_per_side, quality_threshold=settings.entity_quality
    )
    objects = list(record["objects"])
    objects += [make_object(r.mask, r.score, [], "entity") for r in result.regions]
    return {**record, "objects": objects}


def merge(record: Record, image: LoadedImage, ctx: Context) -> Record:
    """Merge candidates by mask NMS (labels kept as a list); keep the best ``max_objects``.

    Phrases of a grounded caption that pointed at a candidate now point at its object id.
    """
    candidates = record["objects"]
    merged = merge_objects(candidates, image.height, image.width, ctx.settings.merge_iou)
    merged = merged[: ctx.settings.max_objects]
    phrases = []
    masks = object_masks(merged, image.height, image.width)
    for phrase in record.get("phrases", []):
        phrase = dict(phrase)
        index = phrase.pop("candidate", None)
        if index is not None and merged:
            mask = object_masks([candidates[index]], image.height, image.width)[0]
            ious = _ious(masks, mask)
            best = int(np.argmax(ious))
            phrase["object"] = merged[best]["id"] if ious[best] >= ctx.settings.match_iou else None
        phrases.append(phrase)
    return {**record, "objects": merged, "phrases": phrases}


def _ious(masks: np.ndarray, mask: np.ndarray) -> np.ndarray:
    inter = (masks & mask).reshape(len(masks), -1).sum(axis=1)
    union = masks.reshape(len(masks), -1).sum(axis=1) + mask.sum() - inter
    return inter / np.maximum(union, 1)


def attributes(record: Record, image: LoadedImage, ctx: Context) -> Record:
    """A short attribute phrase per object (region description of its mask)."""
    objects = []
    masks = object_masks(record["objects"], image.height, image.width)
    for obj, mask in zip(record["objects"], masks, strict=True):
        # label + short caption only: the detailed caption is not kept (one generation less)
        region = ctx.pipe.describe(image, mask=mask, detailed=False).regions[0]
        short = str(region.attributes.get("short_caption") or region.label or "").strip()
        obj = {**obj, "attribute": short or None}
        if not obj["labels"] and region.label:
            obj["labels"] = [region.label]
        objects.append(obj)
    return {**record, "objects": objects}


def depth(record: Record, image: LoadedImage, ctx: Context) -> Record:
    """A depth layer per object (foreground / midground / background) from the depth model."""
    return depth_batch([record], [image], ctx)[0]


def depth_batch(records: list[Record], images: list[LoadedImage], ctx: Context) -> list[Record]:
    """The depth stage over a batch: one forward pass of the depth model for all images."""
    estimator = ctx.pipe.depth
    maps = estimator.estimate_batch([image.pixels for image in images])
    nearer = getattr(estimator, "nearer_is_larger", True)
    out = []
    for record, image, depth_map in zip(records, images, maps, strict=True):
        masks = object_masks(record["objects"], image.height, image.width)
        layers = depth_layers(depth_map, masks, nearer)
        objects = [
            {**obj, "depth": value, "layer": layer}
            for obj, (value, layer) in zip(record["objects"], layers, strict=True)
        ]
        out.append({**record, "objects": objects})
    return out


LEVEL1 = (
    Stage(
        "caption",
        1,
        caption_objects,
        any_of=("grounding_model", "captioner"),
        uses=("parser",),
        finds_objects=True,
    ),
    Stage("detect", 1, detect_objects, roles=("detector", "segmenter"), finds_objects=True),
    Stage("entities", 1, entity_objects, roles=("segmenter",), finds_objects=True),
    Stage("merge", 1, merge),
    Stage("attributes", 1, attributes, roles=("captioner",), uses=("segmenter",)),
    Stage("depth", 1, depth, roles=("depth",), batch_fn=depth_batch),
)
