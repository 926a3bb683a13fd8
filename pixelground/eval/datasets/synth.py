"""Splits of the procedural grounding benchmark (``pixelground synth``, docs/synth.md).

A split is ``DIR/<task>/<split>/`` with ``info.json`` (``"format": "pixelground.synth"``) and
``annotations.jsonl``, whose lines carry the ground truth as a pixelground result dict
(``"gt"``, JSON v1). What each evaluation task reads:

======================= ============ ==========================================================
evaluation task         split task   samples
======================= ============ ==========================================================
refer, grefer           ``refer``    one :class:`SynthReferSample` per expression; the ground
                                     truth is the union of the ``gt`` regions (empty and
                                     ``no_target`` true for a no-target expression)
gcg, caption            ``gcg``      one :class:`~pixelground.eval.datasets.glamm_gcg.GCGSample`
                                     per image: caption, phrases with spans, one mask each
rvos                    ``video``    MeViS layout (meta_expressions.json + mask_dict.json),
                                     read by :func:`~pixelground.eval.datasets.mevis.load_mevis`,
                                     with each expression's ``type`` from annotations.jsonl
======================= ============ ==========================================================

Every sample also carries the benchmark's expression ``type`` ("attribute", "relation",
"ordinal", "multi", "no_target"; video "motion", "multi", "attribute") so scores can be broken
down by it. A refer sample also lists its near misses (:class:`NearMiss`, from the split's
``scenes.jsonl``): the objects that differ from the expression's description in exactly one
attribute, so the scorer can tell which attributes a model ignores.

``synth:PATH`` may name the split folder itself, the task folder (``DIR/refer``, with
``--split``) or the benchmark root (``DIR``, with ``--split``; default ``test``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle
from pixelground.core.result import check_version
from pixelground.eval.datasets.glamm_gcg import GCGSample
from pixelground.eval.datasets.mevis import load_mevis

FORMAT = "pixelground.synth"
DEFAULT_SPLIT = "test"
#: The split task (folder under DIR) each evaluation task reads.
SPLIT_TASKS = {
    "refer": "refer", "grefer": "refer", "gcg": "gcg", "caption": "gcg", "rvos": "video",
    "vos": "video",
}  # fmt: skip


@dataclass
class NearMiss:
    """A non-target object that differs from an expression's description in one attribute.

    Attributes:
        attribute: the attribute it differs in ("colour", "kind", "size" or "texture").
        mask_rle: the object's visible mask (COCO RLE at the image's size).
    """

    attribute: str
    mask_rle: dict[str, Any] = field(repr=False)


def near_misses(
    description: dict[str, str], objects: list[dict[str, Any]], targets: list[int]
) -> list[NearMiss]:
    """The non-target ``objects`` (scenes.jsonl entries) that differ from ``description``
    (e.g. {"colour": "red", "kind": "circle"}) in exactly one of its attributes."""
    found = []
    for obj in objects:
        if obj["id"] in targets:
            continue
        differ = [key for key, value in description.items() if obj.get(key) != value]
        if len(differ) == 1:
            found.append(NearMiss(differ[0], obj["mask"]))
    return found


@dataclass
class SynthReferSample:
    """One referring expression of a synthetic scene.

    Attributes:
        id: the annotation id (``"<image>_<k>"``).
        image_path: the image file.
        text: the expression.
        height, width: image size.
        no_target: the expression names nothing in the scene.
        expression_type: "attribute", "relation", "ordinal", "multi" or "no_target".
        targets: referred object ids.
        mask_rles: one COCO RLE per referred object.
        near_misses: objects one attribute away from the expression's description.
        object_rles: every object of the scene: its id -> its visible mask (COCO RLE); empty
            when the split has no scenes.jsonl.
    """

    id: str
    image_path: Path
    text: str
    height: int
    width: int
    no_target: bool = False
    expression_type: str | None = None
    targets: list[int] = field(default_factory=list)
    mask_rles: list[dict[str, Any]] = field(default_factory=list, repr=False)
    near_misses: list[NearMiss] = field(default_factory=list, repr=False)
    object_rles: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def gt_masks(self) -> np.ndarray:
        """(N, H, W) bool: one mask per referred object ((0, H, W) for no target)."""
        if not self.mask_rles:
            return np.zeros((0, self.height, self.width), dtype=bool)
        return decode_rle(self.mask_rles)

    def gt_mask(self) -> np.ndarray:
        """(H, W) bool union of the referred objects (empty for no target)."""
        return self.gt_masks().any(axis=0)


def is_synth_split(path: Path) -> bool:
    """Whether ``path`` is a split folder written by ``pixelground synth``."""
    info = path / "info.json"
    if not info.is_file():
        return False
    try:
        return json.loads(info.read_text()).get("format") == FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def find_split(path: str | Path, task: str, split: str | None = None) -> Path:
    """The split folder for evaluation ``task`` under ``path`` (split, task or root folder).

    Raises:
        InputError: no split there, or a split of another task (e.g. a video split for refer).
    """
    if task not in SPLIT_TASKS:
        raise InputError(
            f"the synthetic benchmark has no {task} split; evaluate {', '.join(SPLIT_TASKS)}"
        )
    root, kind, name = Path(path), SPLIT_TASKS[task], split or DEFAULT_SPLIT
    for candidate in (root, root / name, root / kind / name):
        if is_synth_split(candidate):
            _check_task(candidate, task)
            return candidate
    raise InputError(
        f"no synthetic {kind} split at {root} (looked for info.json in {root}, {root / name} and "
        f"{root / kind / name}); write one with `pixelground synth DIR --task {kind} "
        f"--split {name}` and pass synth:DIR/{kind}/{name}"
    )


def _check_task(folder: Path, task: str) -> None:
    found = json.loads((folder / "info.json").read_text()).get("task")
    wanted = SPLIT_TASKS[task]
    if found != wanted:
        raise InputError(
            f"{folder} is a synthetic {found} split; {task} is evaluated on a {wanted} split "
            f"(DIR/{wanted}/<split>)"
        )


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of each non-blank line of a JSONL file."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{n}: not a JSON line ({error.msg})") from error


def _annotations(folder: Path) -> Iterator[dict[str, Any]]:
    path = folder / "annotations.jsonl"
    if not path.is_file():
        raise InputError(f"{path} not found: is {folder} a complete `pixelground synth` split?")
    for n, record in _json_lines(path):
        if not isinstance(record.get("gt"), dict):
            raise InputError(f"{path}:{n}: the line has no ground truth ('gt')")
        check_version(record["gt"])
        yield record


def _image_size(gt: dict[str, Any]) -> tuple[int, int]:
    image = gt.get("image") or {}
    return int(image.get("height", 0)), int(image.get("width", 0))


def _scene_objects(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Image name -> its objects, from the split's scenes.jsonl ({} when there is none)."""
    path = folder / "scenes.jsonl"
    if not path.is_file():
        return {}
    objects = {}
    for n, record in _json_lines(path):
        try:
            objects[str(record["image"])] = list(record["objects"])
        except (KeyError, TypeError) as error:
            raise InputError(f"{path}:{n}: not a scene line ({error})") from error
    return objects


def load_synth_refer(folder: str | Path) -> list[SynthReferSample]:
    """The expressions of a synthetic ``refer`` split folder."""
    folder = Path(folder)
    scenes = _scene_objects(folder)
    samples = []
    for record in _annotations(folder):
        gt = record["gt"]
        height, width = _image_size(gt)
        regions = gt.get("regions", [])
        targets = [int(t) for t in record.get("targets", [])]
        description = (record.get("query") or {}).get("desc") or {}
        objects = scenes.get(str(record["image"]), [])
        samples.append(
            SynthReferSample(
                id=str(record["id"]),
                image_path=folder / record["image"],
                text=str(record["expression"]),
                height=height,
                width=width,
                no_target=bool(record.get("no_target", not regions)),
                expression_type=record.get("type"),
                targets=targets,
                mask_rles=[r["mask"] for r in regions if r.get("mask")],
                near_misses=near_misses(description, objects, targets),
                object_rles={int(o["id"]): o["mask"] for o in objects},
            )
        )
    return samples


def load_synth_gcg(folder: str | Path) -> list[Any]:
    """The images of a synthetic ``gcg`` split folder as GranD-f GCG samples."""
    folder = Path(folder)
    samples = []
    for record in _annotations(folder):
        gt = record["gt"]
        height, width = _image_size(gt)
        regions = [r for r in gt.get("regions", []) if r.get("mask")]
        samples.append(
            GCGSample(
                id=str(record["id"]),
                image_path=folder / record["image"],
                caption=str(gt.get("text", record.get("caption", ""))),
                phrases=[str(r.get("phrase", "")) for r in regions],
                spans=[tuple(r["span"]) if r.get("span") else None for r in regions],
                height=height,
                width=width,
                mask_rles=[[r["mask"]] for r in regions],
            )
        )
    return samples


def load_synth_video(folder: str | Path) -> list[Any]:
    """The expressions of a synthetic ``video`` split folder (MeViS layout, with types)."""
    folder = Path(folder)
    types = {str(r["id"]): r.get("type") for r in _annotations(folder)}
    expressions = load_mevis(folder)
    for expression in expressions:
        expression.expression_type = types.get(f"{expression.video}_{expression.exp_id}")
    return expressions


def load_synth(path: str | Path, task: str, split: str | None = None) -> list[Any]:
    """Samples of the synthetic split that evaluation ``task`` reads (see the module table)."""
    folder = find_split(path, task, split)
    kind = SPLIT_TASKS[task]
    if kind == "refer":
        return load_synth_refer(folder)
    if kind == "gcg":
        return load_synth_gcg(folder)
    return load_synth_video(folder)
