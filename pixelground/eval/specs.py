"""Ground-truth specs: ``FORMAT:PATH`` strings, the dataset formats and their default splits,
the format of a bare path guessed from the files it holds, and each format's loader
(:func:`load_samples`; :func:`pixelground.eval.run.load_dataset` first checks the format
against the task table).

This module sits below the task table (:mod:`pixelground.eval.tasks`), the scorers
(:mod:`pixelground.eval.scorers`) and :mod:`pixelground.eval.run`, which all read specs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pixelground.core.errors import InputError, UnknownNameError
from pixelground.eval.datasets.glamm_gcg import load_gcg
from pixelground.eval.datasets.mevis import load_mevis, load_refytvos
from pixelground.eval.datasets.png_narratives import load_png
from pixelground.eval.datasets.reasonseg import load_reasonseg
from pixelground.eval.datasets.refcoco import load_grefer, load_refer
from pixelground.eval.datasets.synth import is_synth_split, load_synth
from pixelground.eval.predictions import read_predictions
from pixelground.eval.scoring import records_as_samples

#: The dataset formats a ``FORMAT:PATH`` spec may name.
FORMATS = (
    "refcoco", "refcoco+", "refcocog", "grefcoco", "reasonseg", "gcg", "png", "mevis",
    "refytvos", "coco-captions", "records", "synth",
)  # fmt: skip
#: The split each format reads when none is given.
DEFAULT_SPLITS = {
    "refcoco": "val", "refcoco+": "val", "refcocog": "val", "grefcoco": "val",
    "reasonseg": "val", "gcg": "val", "png": "val2017", "mevis": "valid_u", "refytvos": "valid",
    "synth": "test",
}  # fmt: skip


def parse_dataset_spec(spec: str | Path) -> tuple[str | None, Path]:
    """``"FORMAT:PATH"`` -> (format, path); a bare path gives (None, path)."""
    text = str(spec)
    head, sep, tail = text.partition(":")
    if sep and head.lower() in FORMATS:
        return head.lower(), Path(tail).expanduser()
    if sep and head and "/" not in head and "\\" not in head and len(head) > 1:
        raise UnknownNameError(f"unknown dataset format {head!r}; use one of {', '.join(FORMATS)}")
    return None, Path(text).expanduser()


def infer_format(path: Path, task: str) -> str:
    """Guess the dataset format of ``path`` from the files it holds."""
    if path.is_file():
        if task == "caption" and _is_coco_captions(path):
            return "coco-captions"
        if task == "gcg":
            return "gcg"
        return "records"
    if not path.is_dir():
        raise InputError(f"ground truth not found: {path}")
    if _holds_synth(path):
        return "synth"
    names = {p.name for p in path.iterdir()}
    if any(n.startswith("grefs(") for n in names) or ("grefcoco" in names and task == "grefer"):
        return "grefcoco"
    if any(n.startswith("refs(") for n in names):
        return path.name if path.name in DEFAULT_SPLITS else "refcoco"
    refer_dirs = sorted({"refcoco", "refcoco+", "refcocog"} & names)
    if task == "refer" and len(refer_dirs) == 1:
        return refer_dirs[0]
    if any(n.endswith("_gcg_coco_caption_gt.json") for n in names):
        return "gcg"
    if any(n.startswith("png_coco_") for n in names):
        return "png"
    if "meta_expressions.json" in names or "valid_u" in names:
        return "mevis"
    if "meta_expressions" in names and (path / "meta_expressions").is_dir():
        return "refytvos"
    if any(n.endswith(".json") for n in names) and any(n.endswith(".jpg") for n in names):
        return "reasonseg"
    if task in ("refer", "grefer") and ({"refcoco", "refcoco+", "refcocog"} & names):
        raise InputError(f"{path} holds several refer datasets; say which, e.g. refcoco:{path}")
    raise InputError(
        f"cannot tell the dataset format of {path}; prefix it with one of {', '.join(FORMATS)}"
    )


def _holds_synth(path: Path) -> bool:
    """A split, task or root folder written by ``pixelground synth``."""
    if is_synth_split(path):
        return True
    folders = [p for p in path.iterdir() if p.is_dir()]
    folders += [
        q for p in folders if p.name in ("refer", "gcg", "region", "video") for q in p.iterdir()
    ]
    return any(is_synth_split(p) for p in folders)


def _is_coco_captions(path: Path) -> bool:
    if path.suffix != ".json":
        return False
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    anns = data.get("annotations") if isinstance(data, dict) else None
    return bool(anns) and isinstance(anns[0], dict) and "caption" in anns[0]


def load_samples(
    fmt: str,
    path: Path,
    task: str,
    split: str | None = None,
    image_dir: str | Path | None = None,
) -> list[Any]:
    """The ground-truth samples of a ``fmt`` dataset at ``path`` (the format's default split
    when ``split`` is None), as the format's loader returns them; the format is not checked
    against the task here."""
    split = split or DEFAULT_SPLITS.get(fmt)
    if fmt in ("refcoco", "refcoco+", "refcocog"):
        return load_refer(path, fmt, split, image_dir=image_dir)
    if fmt == "grefcoco":
        return load_grefer(path, split, image_dir=image_dir)
    if fmt == "reasonseg":
        return load_reasonseg(path, split)
    if fmt == "gcg":
        return load_gcg(path, split or "val", image_dir)
    if fmt == "png":
        return load_png(path, split or "val2017", image_dir)
    if fmt == "mevis":
        return load_mevis(path, split or "valid_u")
    if fmt == "refytvos":
        return load_refytvos(path, split or "valid")
    if fmt == "synth":
        return load_synth(path, task, split)
    if fmt == "records":
        return records_as_samples(read_predictions(path))
    raise InputError(f"{fmt} ground truth is read by the caption scorer only")
