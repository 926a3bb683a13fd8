"""RefCOCO / RefCOCO+ / RefCOCOg (refer pickles) and gRefCOCO (grefs json) loaders.

Official layout (lichengunc/refer, as LISA, GLaMM, Sa2VA and ReLA read it)::

    ROOT/refcoco/refs(unc).p        ROOT/refcoco+/refs(unc).p
    ROOT/refcocog/refs(umd).p       ROOT/refcocog/refs(google).p
    ROOT/grefcoco/grefs(unc).json   (or grefs(unc).p)
    ROOT/<dataset>/instances.json   COCO instances of the images the refs use

A ref is ``{"ref_id", "ann_id", "image_id", "split", "category_id", "sentences": [{"sent_id",
"sent", "raw", "tokens"}], ...}``; in gRefCOCO ``ann_id`` and ``category_id`` are lists and a
no-target expression has ``ann_id == [-1]``. Each *sentence* is one sample: the expression
``sent`` (lower-cased, as LISA feeds it), the image and the ground-truth mask(s). The merged
mask of a gRefCOCO sample is the union of its non-crowd annotations (``G_REFER.getMaskByRef``
with ``merge=True``).

Pickles are read with an unpickler that refuses every class, so a refs file can only hold plain
data (lists, dicts, strings, numbers) — never code.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle, polygons_to_mask

REFER_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd", "refclef": "unc"}
IMAGE_DIR_CANDIDATES = (
    ("images", "train2014"),
    ("images", "mscoco", "images", "train2014"),
    ("train2014",),
    ("coco", "train2014"),
)


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from a refs pickle: only plain data is allowed"
        )


def read_refs(path: str | Path) -> list[dict[str, Any]]:
    """Read a refs file: a refer pickle (``.p``, Python 2 or 3) or a JSON list."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"refs file not found: {path}")
    if path.suffix == ".json":
        return json.loads(path.read_text())
    data = path.read_bytes()
    try:
        refs = _PlainUnpickler(io.BytesIO(data)).load()
    except UnicodeDecodeError:  # Python 2 str holding non-ASCII bytes
        refs = _PlainUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError) as error:
        raise InputError(f"cannot read refs pickle {path}: {error}") from error
    if not isinstance(refs, list):
        raise InputError(f"{path} does not hold a list of refs")
    return refs


@dataclass
class CocoIndex:
    """Images and annotations of an instances.json, indexed by id."""

    images: dict[int, dict[str, Any]]
    annotations: dict[int, dict[str, Any]]
    categories: dict[int, str]

    @classmethod
    def read(cls, path: str | Path) -> CocoIndex:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"instances file not found: {path}")
        data = json.loads(path.read_text())
        return cls(
            images={img["id"]: img for img in data.get("images", [])},
            annotations={ann["id"]: ann for ann in data.get("annotations", [])},
            categories={c["id"]: c["name"] for c in data.get("categories", [])},
        )

    def mask(self, ann_id: int) -> np.ndarray:
        """(H, W) bool mask of one annotation (polygons or RLE)."""
        ann = self.annotations[ann_id]
        image = self.images[ann["image_id"]]
        h, w = int(image["height"]), int(image["width"])
        seg = ann.get("segmentation") or []
        if isinstance(seg, dict):
            return decode_rle(seg)
        if seg and isinstance(seg[0], dict):
            return np.any(decode_rle(seg), axis=0)
        return polygons_to_mask(seg, h, w)


@dataclass
class ReferSample:
    """One referring expression.

    Attributes:
        id: unique id ``"{ref_id}-{sent_id}"``.
        image_path: the image file.
        image_id: COCO image id.
        text: the expression (refer's normalised ``sent``).
        ann_ids: ids of the referred annotations (empty for a no-target expression).
        height, width: image size.
        no_target: gRefCOCO no-target expression.
        ref_id, sent_id: refer ids.
        category: category name of the first referred annotation (None for no-target).
    """

    id: str
    image_path: Path
    image_id: int
    text: str
    ann_ids: list[int]
    height: int
    width: int
    no_target: bool = False
    ref_id: int | None = None
    sent_id: int | None = None
    category: str | None = None
    _index: CocoIndex | None = field(default=None, repr=False, compare=False)

    def gt_masks(self) -> np.ndarray:
        """(K, H, W) bool, one per referred non-crowd annotation (K = 0 for no-target)."""
        masks = [
            self._index.mask(a)
            for a in self.ann_ids
            if not self._index.annotations[a].get("iscrowd", 0)
        ]
        if not masks:
            return np.zeros((0, self.height, self.width), dtype=bool)
        return np.stack(masks)

    def gt_mask(self) -> np.ndarray:
        """(H, W) bool union of the referred annotations (empty for no-target)."""
        return self.gt_masks().any(axis=0)


def find_image_dir(root: Path) -> Path:
    """The COCO train2014 folder under ``root`` in one of the usual layouts."""
    for parts in IMAGE_DIR_CANDIDATES:
        candidate = root.joinpath(*parts)
        if candidate.is_dir():
            return candidate
    return root.joinpath(*IMAGE_DIR_CANDIDATES[0])


def _dataset_dir(root: Path, dataset: str) -> Path:
    if (root / "instances.json").is_file():
        return root
    folder = root / dataset
    if not folder.is_dir():
        raise InputError(
            f"{root} holds neither {dataset}/ nor instances.json; pass the refer data root "
            "(the folder with refcoco/, refcoco+/, refcocog/, grefcoco/)"
        )
    return folder


def _samples(
    refs: list[dict[str, Any]], index: CocoIndex, image_dir: Path, split: str | None
) -> Iterator[ReferSample]:
    for ref in refs:
        if split is not None and ref.get("split") != split:
            continue
        ann_ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
        no_target = ann_ids == [-1] or bool(ref.get("no_target", False))
        ann_ids = [] if no_target else [int(a) for a in ann_ids]
        image = index.images.get(ref["image_id"])
        if image is None:
            raise InputError(
                f"ref {ref['ref_id']} names image {ref['image_id']} missing from instances.json"
            )
        category = None
        if ann_ids and ann_ids[0] in index.annotations:
            category = index.categories.get(index.annotations[ann_ids[0]].get("category_id"))
        for sent in ref["sentences"]:
            yield ReferSample(
                id=f"{ref['ref_id']}-{sent['sent_id']}",
                image_path=image_dir / image["file_name"],
                image_id=int(ref["image_id"]),
                text=str(sent.get("sent", sent.get("raw", ""))),
                ann_ids=ann_ids,
                height=int(image["height"]),
                width=int(image["width"]),
                no_target=no_target,
                ref_id=int(ref["ref_id"]),
                sent_id=int(sent["sent_id"]),
                category=category,
                _index=index,
            )


def load_refer(
    root: str | Path,
    dataset: str = "refcoco",
    split: str | None = "val",
    split_by: str | None = None,
    image_dir: str | Path | None = None,
) -> list[ReferSample]:
    """RefCOCO, RefCOCO+ or RefCOCOg expressions of one split.

    Args:
        root: refer data root (holding ``refcoco/`` etc.) or one dataset folder.
        dataset: "refcoco", "refcoco+", "refcocog" (or "refclef").
        split: "val", "testA", "testB", "test", "train"; None for all.
        split_by: "unc", "umd" or "google"; default unc (umd for refcocog).
        image_dir: folder with the COCO train2014 images; default: found under ``root``.
    """
    root = Path(root)
    folder = _dataset_dir(root, dataset)
    split_by = split_by or REFER_SPLIT_BY.get(dataset, "unc")
    refs = read_refs(folder / f"refs({split_by}).p")
    index = CocoIndex.read(folder / "instances.json")
    images = Path(image_dir) if image_dir is not None else find_image_dir(root)
    samples = list(_samples(refs, index, images, split))
    if not samples:
        raise InputError(f"no {dataset} expressions for split {split!r} in {folder}")
    return samples


def load_grefer(
    root: str | Path,
    split: str | None = "val",
    split_by: str = "unc",
    image_dir: str | Path | None = None,
) -> list[ReferSample]:
    """gRefCOCO expressions (multi-target and no-target) of one split; see :func:`load_refer`."""
    root = Path(root)
    folder = _dataset_dir(root, "grefcoco")
    path = folder / f"grefs({split_by}).p"
    if not path.is_file():
        path = folder / f"grefs({split_by}).json"
    refs = read_refs(path)
    index = CocoIndex.read(folder / "instances.json")
    images = Path(image_dir) if image_dir is not None else find_image_dir(root)
    samples = list(_samples(refs, index, images, split))
    if not samples:
        raise InputError(f"no gRefCOCO expressions for split {split!r} in {folder}")
    return samples
