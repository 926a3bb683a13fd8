"""COCO panoptic format: a JSON of segments per image plus a folder of RGB-id PNGs.

The JSON holds ``images``, ``annotations`` (one per image: ``image_id``, ``file_name`` of the
PNG, ``segments_info`` = list of ``{"id", "category_id", "iscrowd", "area", "bbox"}``) and
``categories`` (``{"id", "name", "isthing", "color", ...}``). A pixel's segment id is
``R + 256 * G + 256**2 * B`` of its PNG colour (panopticapi ``rgb2id``); id 0 is VOID
(unlabelled). Prediction files use the same format (``iscrowd`` and ``area`` optional).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelground.core.errors import InputError
from pixelground.eval.datasets.png_decode import decode_rgb_words

OFFSET = 256 * 256 * 256
VOID = 0


def rgb2id(color: np.ndarray) -> np.ndarray:
    """Segment ids of an RGB-id image: (H, W, 3) -> (H, W) uint32 ``R + 256 G + 65536 B``.

    A 2-D array is returned unchanged (as uint32): it already holds ids.
    """
    array = np.asarray(color)
    if array.ndim == 2:
        return array.astype(np.uint32)
    if array.ndim != 3 or array.shape[2] < 3:
        raise InputError(f"an RGB-id panoptic image must be (H, W, 3), got {array.shape}")
    array = array[..., :3].astype(np.uint32)
    return array[..., 0] + 256 * array[..., 1] + 256 * 256 * array[..., 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb2id`: (H, W) ids < 2**24 -> (H, W, 3) uint8."""
    array = np.asarray(ids).astype(np.uint32)
    if array.size and array.max() >= OFFSET:
        raise InputError("panoptic segment ids must be below 256**3 to fit an RGB PNG")
    return np.stack([(array >> shift) & 255 for shift in (0, 8, 16)], axis=-1).astype(np.uint8)


def read_png_bytes(path: str | Path) -> bytes:
    """A panoptic PNG's bytes; InputError naming the file when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise InputError(f"cannot read panoptic PNG {path}: {error}") from error


def read_panoptic_png(path: str | Path, reuse: str | None = None) -> np.ndarray:
    """Read an RGB-id PNG as (H, W) uint32 segment ids ``R + 256 G + 65536 B``.

    Args:
        path: The PNG file.
        reuse: See :func:`decode_panoptic_png`.
    """
    return decode_panoptic_png(read_png_bytes(path), path, reuse)


def decode_panoptic_png(data: bytes, source: str | Path, reuse: str | None = None) -> np.ndarray:
    """(H, W) uint32 segment ids ``R + 256 G + 65536 B`` of an RGB-id PNG's bytes.

    An 8-bit RGB(A) PNG is decoded by :func:`png_decode.decode_rgb_words` (outside the GIL,
    no RGB image in between); other images, and every image when the C extension is not
    built, are converted to RGB by Pillow.

    Args:
        data: The file's bytes.
        source: The file, named in errors.
        reuse: A name: the ids may then be written to this thread's reusable buffer of that
            name (``thread_buffers.thread_buffer``), valid until the thread's next read with it.
    """
    ids = decode_rgb_words(data, reuse)
    if ids is not None:
        return ids
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read panoptic PNG {source}: {error}") from error
    ids = rgb[..., 2].astype(np.uint32)
    ids <<= 8
    ids |= rgb[..., 1]
    ids <<= 8
    ids |= rgb[..., 0]
    return ids


def write_panoptic_png(path: str | Path, ids: np.ndarray) -> None:
    """Write (H, W) segment ids as an RGB-id PNG."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(id2rgb(ids)).save(path)


@dataclass
class CocoPanoptic:
    """A COCO panoptic annotation (or prediction) file and its PNG folder.

    Attributes:
        categories: Category id -> category dict (``name``, ``isthing``, ...), file order.
        annotations: Image id -> annotation dict (``file_name``, ``segments_info``).
        png_dir: Folder of the RGB-id PNGs.
        images: Image id -> image dict (``file_name`` of the photo, ``height``, ``width``).
    """

    categories: dict[int, dict[str, Any]]
    annotations: dict[int, dict[str, Any]]
    png_dir: Path
    images: dict[int, dict[str, Any]] = field(default_factory=dict)

    def png_path(self, image_id: int) -> Path:
        """One image's RGB-id PNG."""
        return self.png_dir / self.annotation(image_id)["file_name"]

    def read_ids(self, image_id: int) -> np.ndarray:
        """(H, W) uint32 segment ids of one image."""
        return read_panoptic_png(self.png_path(image_id))

    def annotation(self, image_id: int) -> dict[str, Any]:
        """The annotation dict of an image."""
        if image_id not in self.annotations:
            raise InputError(f"image id {image_id} has no panoptic annotation")
        return self.annotations[image_id]

    def segments(self, image_id: int) -> dict[int, dict[str, Any]]:
        """Segment id -> segment info (``category_id``, ``iscrowd``, ``area``) of an image."""
        return {int(s["id"]): s for s in self.annotation(image_id)["segments_info"]}

    def masks(self, image_id: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Per-segment masks of one image: ((N, H, W) bool, N segment infos)."""
        ids = self.read_ids(image_id)
        infos = self.annotation(image_id)["segments_info"]
        if not infos:
            return np.zeros((0, *ids.shape), dtype=bool), []
        wanted = np.array([int(s["id"]) for s in infos], dtype=np.uint32)
        return ids[None] == wanted[:, None, None], list(infos)


def load_categories(source: str | Path | list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Categories from a list, a JSON list file, or a JSON file with a ``categories`` key."""
    if isinstance(source, (str, Path)):
        data = _read_json(Path(source))
        source = data["categories"] if isinstance(data, dict) else data
    return {int(c["id"]): c for c in source}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise InputError(f"{path} not found") from error
    except json.JSONDecodeError as error:
        raise InputError(f"{path} is not valid JSON: {error}") from error


def load_coco_panoptic(
    json_path: str | Path,
    png_dir: str | Path | None = None,
    categories: str | Path | list[dict[str, Any]] | None = None,
) -> CocoPanoptic:
    """Read a COCO panoptic JSON and locate its PNG folder.

    Args:
        json_path: The JSON file.
        png_dir: Folder of the PNGs; default the JSON path without ``.json`` (panopticapi's
            default).
        categories: Categories to use when the JSON has none (a list or a JSON file).

    Returns:
        The parsed file.
    """
    json_path = Path(json_path)
    data = _read_json(json_path)
    if not isinstance(data, dict) or "annotations" not in data:
        raise InputError(f"{json_path} is not a COCO panoptic file (no 'annotations')")
    folder = Path(png_dir) if png_dir is not None else json_path.with_suffix("")
    if not folder.is_dir():
        raise InputError(f"panoptic PNG folder {folder} does not exist")
    if categories is not None:
        cats = load_categories(categories)
    elif data.get("categories"):
        cats = load_categories(data["categories"])
    else:
        cats = {}
    annotations = {int(a["image_id"]): a for a in data["annotations"]}
    images = {int(i["id"]): i for i in data.get("images", [])}
    return CocoPanoptic(cats, annotations, folder, images)
