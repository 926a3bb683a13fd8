"""What the pixel-side backends (SAM, SAM2, OWLv2, Grounding DINO, CLIP/SigLIP) share.

Loading a model and its processor onto the selected device and dtype, turning any image
input into RGB uint8 (H, W, 3), a content key for caching per-image work, and turning a
detector's raw boxes into Detections.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelground.backends.base import Detection
from pixelground.backends.loading import load_pretrained, select_device, select_dtype
from pixelground.core.boxes import box_area, clip_boxes, nms
from pixelground.core.errors import InputError, require
from pixelground.core.media import load_image


def as_rgb(image: Any) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array from an array, a PIL image, a path or bytes.

    Raises:
        InputError: unreadable, corrupt or oversized image, or an array of the wrong shape.
    """
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3:
        if image.shape[2] == 3:
            return image
    return load_image(image).pixels


def image_key(pixels: np.ndarray) -> tuple[tuple[int, ...], str]:
    """A key that identifies an image by content: (shape, 128-bit BLAKE2b digest of the pixels)."""
    digest = hashlib.blake2b(np.ascontiguousarray(pixels).data, digest_size=16).hexdigest()
    return tuple(pixels.shape), digest


@dataclass
class Loaded:
    """A model in eval mode on its device, its processor, and where they came from."""

    model: Any
    processor: Any
    device: str
    dtype: Any
    checkpoint: str


def load_model(
    model_class: str | Any,
    processor_class: str | Any,
    checkpoint: str,
    device: str | None = None,
    dtype: str | None = None,
) -> Loaded:
    """Load a transformers model and processor with :func:`load_pretrained`.

    Args:
        model_class: a transformers class or its name (e.g. ``"Sam2Model"``).
        processor_class: a transformers processor class or its name.
        checkpoint: hub id or local directory written by ``save_pretrained``.
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        dtype: ``None``/``"auto"``, ``"float32"``, ``"float16"`` or ``"bfloat16"``.

    Raises:
        CheckpointMissingError: neither a local directory nor in the cache while offline.
        InputError: a device this machine does not have, or an unknown dtype.
    """
    transformers = require("transformers", "models")
    if isinstance(model_class, str):
        model_class = getattr(transformers, model_class)
    if isinstance(processor_class, str):
        processor_class = getattr(transformers, processor_class)
    device = select_device(device)
    torch_dtype = select_dtype(device, dtype)
    model = load_pretrained(model_class, str(checkpoint), dtype=torch_dtype)
    model = model.to(device).eval()
    processor = load_pretrained(processor_class, str(checkpoint))
    return Loaded(model, processor, device, torch_dtype, str(checkpoint))


def to_model(inputs: Any, loaded: Loaded) -> dict[str, Any]:
    """Processor outputs moved to the model's device; floating tensors cast to its dtype."""
    moved = {}
    for name, value in dict(inputs).items():
        if hasattr(value, "to"):
            value = value.to(loaded.device)
            if value.is_floating_point():
                value = value.to(loaded.dtype)
        moved[name] = value
    return moved


def describe(backend: Any, loaded: Loaded, **extra: Any) -> dict[str, Any]:
    """The ``info`` dict of a backend: class, checkpoint, device and dtype."""
    return {
        "class": type(backend).__name__,
        "checkpoint": loaded.checkpoint,
        "device": loaded.device,
        "dtype": str(loaded.dtype).replace("torch.", ""),
        **extra,
    }


def clean_queries(queries: Sequence[str]) -> list[str]:
    """Stripped query texts, in order.

    Raises:
        InputError: no query, or an empty one (its index would not mean anything).
    """
    if isinstance(queries, str):
        queries = [queries]
    cleaned = [" ".join(str(q).split()) for q in queries]
    if not cleaned:
        raise InputError("no query text given: pass at least one phrase to detect")
    for index, text in enumerate(cleaned):
        if not text:
            raise InputError(f"query {index} is empty: every query needs some text")
    return cleaned


def make_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    query_indices: np.ndarray,
    queries: Sequence[str],
    height: int,
    width: int,
    nms_threshold: float | None = None,
) -> list[Detection]:
    """Detections from raw boxes: clipped to the image, empty ones dropped, best first.

    Args:
        boxes: (N, 4) xyxy pixels of the original image.
        scores: (N,) confidences in [0, 1].
        query_indices: (N,) index of the query each box answers.
        queries: the query texts (labels of the detections).
        height: image height.
        width: image width.
        nms_threshold: if set, non-maximum suppression per query at this IoU.

    Returns:
        Detections sorted by decreasing score.
    """
    boxes = clip_boxes(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), height, width)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    query_indices = np.asarray(query_indices, dtype=np.int64).reshape(-1)
    keep = np.flatnonzero(box_area(boxes) > 0)
    if nms_threshold is not None:
        kept = []
        for query in np.unique(query_indices[keep]):
            members = keep[query_indices[keep] == query]
            kept.extend(members[nms(boxes[members], scores[members], nms_threshold)])
        keep = np.asarray(kept, dtype=np.int64)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    return [
        Detection(
            box=tuple(float(v) for v in boxes[i]),
            score=float(scores[i]),
            query_index=int(query_indices[i]),
            label=queries[int(query_indices[i])],
        )
        for i in keep
    ]
