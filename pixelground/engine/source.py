"""What to annotate: a folder or glob of images, a text file of paths, or a COCO json.

Each item is ``(id, path)``; the id is stable across runs (the path relative to the folder,
the line of the text file, or the COCO file name), so a rerun finds what is done.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pixelground.core.errors import InputError
from pixelground.core.media import IMAGE_SUFFIXES, list_images


@dataclass(frozen=True)
class Item:
    """One image to annotate: a stable id and its file."""

    id: str
    path: str


def _folder_items(root: Path) -> Iterator[Item]:
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        yield Item(str(path.relative_to(root)), str(path))


def _text_items(path: Path) -> Iterator[Item]:
    with path.open() as handle:
        for line in handle:
            name = line.strip()
            if name and not name.startswith("#"):
                file = Path(name) if Path(name).is_absolute() else path.parent / name
                yield Item(name, str(file))


def _coco_items(path: Path) -> Iterator[Item]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not a COCO json file: {error}") from error
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise InputError(f"{path} has no 'images' list; a COCO json source needs one")
    folder = path.parent
    for image in images:
        name = str(image["file_name"])
        candidates = [folder / name, folder / "images" / name]
        file = next((c for c in candidates if c.exists()), candidates[0])
        yield Item(name, str(file))


def iter_source(source: str | Path) -> Iterator[Item]:
    """The images of ``source`` in a fixed order (lazily, for folders and text files).

    Raises:
        InputError: the source does not exist or names no images.
    """
    text = str(source)
    path = Path(text)
    if path.is_dir():
        yield from _folder_items(path)
    elif path.is_file() and path.suffix.lower() == ".json":
        yield from _coco_items(path)
    elif path.is_file() and path.suffix.lower() in (".txt", ".lst"):
        yield from _text_items(path)
    elif path.is_file() or any(ch in text for ch in "*?["):
        for file in list_images(text):
            yield Item(file.name if path.is_file() else str(file), str(file))
    else:
        raise InputError(
            f"source not found: {source} (give a folder or glob of images, a .txt list of "
            "paths or a COCO .json)"
        )


def count_source(source: str | Path, limit: int | None = None) -> int:
    """How many images ``source`` names (at most ``limit``), for the progress bar."""
    total = 0
    for _ in iter_source(source):
        total += 1
        if limit is not None and total >= limit:
            break
    return total
