"""DAVIS-2016 / DAVIS-2017 annotation and result folders (one PNG per frame).

Formats:

* **DAVIS-2017** (and results in DAVIS layout written by any method): palette ("P") or
  grayscale ("L") PNGs whose pixel values are object ids, 0 = background; in ground truth the
  value 255 marks void pixels.
* **DAVIS-2016**: single-object grayscale ("L") PNGs with values {0, 255} where 255 is the
  *object*, not void.

``kind="auto"`` decides per frame: an "L"/"1" image whose values are all in {0, 255} is read as
DAVIS-2016 (object id 1), anything else as DAVIS-2017. Pass ``kind`` explicitly for the rare
files where that guess is wrong (e.g. a DAVIS-2017 grayscale frame holding only void).

Folder layouts accepted by :func:`find_sequence_dirs`: a DAVIS root
(``Annotations/480p/<seq>/``, or ``Annotations_unsupervised/480p/<seq>/`` for the unsupervised
task), a folder of sequence folders, or one sequence folder of PNGs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from pixelground.core.errors import InputError
from pixelground.eval.datasets.mask_png import (
    VOID_LABEL,
    check_paths,
    ordered_map,
    read_label_frame,
)
from pixelground.viz.colors import davis_palette


@dataclass
class VideoMasks:
    """The object masks of one sequence, stored as label maps.

    Attributes:
        labels: (T, H, W) unsigned ints, object ids 1..N, 0 = background (void pixels are 0).
        void: (T, H, W) bool void pixels (value 255 of DAVIS-2017 ground truth).
        frame_ids: T frame names (PNG stems, e.g. "00000").
        num_objects: N; ids above N in ``labels`` are not objects of this sequence.
        name: Sequence name.
    """

    labels: np.ndarray
    void: np.ndarray
    frame_ids: list[str]
    num_objects: int
    name: str = ""

    @property
    def objects(self) -> ObjectStack:
        """The N objects as a lazy sequence of (T, H, W) bool masks."""
        return ObjectStack(self.labels, self.num_objects)

    @property
    def masks(self) -> np.ndarray:
        """All object masks at once: (N, T, H, W) bool (N * T * H * W bytes)."""
        ids = np.arange(1, self.num_objects + 1, dtype=self.labels.dtype)
        return self.labels[None] == ids[:, None, None, None]

    def object_mask(self, object_id: int) -> np.ndarray:
        """(T, H, W) bool mask of object ``object_id`` (1-based)."""
        return self.labels == object_id

    def frames(self, index: slice | Sequence[int]) -> VideoMasks:
        """The same sequence restricted to some frames (e.g. ``slice(1, -1)``)."""
        ids = np.arange(len(self.frame_ids))[index]
        return replace(
            self,
            labels=self.labels[index],
            void=self.void[index],
            frame_ids=[self.frame_ids[i] for i in np.atleast_1d(ids)],
        )


class ObjectStack:
    """Lazy (N, T, H, W) view of label maps: item k is ``labels == k + 1``."""

    def __init__(self, labels: np.ndarray, num_objects: int):
        self._labels, self._num = labels, num_objects

    def __len__(self) -> int:
        return self._num

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self._num:
            raise IndexError(index)
        return self._labels == index + 1


def read_davis_frame(
    path: str | Path, kind: str = "auto", void_label: int | None = VOID_LABEL
) -> tuple[np.ndarray, np.ndarray]:
    """Read one DAVIS annotation or result PNG.

    Args:
        path: PNG file.
        kind: ``"auto"``, ``"davis2016"`` (nonzero = object 1) or ``"davis2017"`` (ids).
        void_label: Value marking void pixels in DAVIS-2017 files (ground truth), or None to
            read every value as an object id (results).

    Returns:
        ``(labels, void)``: (H, W) unsigned object ids with void set to 0, and (H, W) bool void.
    """
    frame = read_label_frame(path, kind, void_label)
    return frame.cleared(), frame.void()


def read_davis_sequence(
    folder: str | Path,
    frame_ids: Sequence[str] | None = None,
    kind: str = "auto",
    void_label: int | None = VOID_LABEL,
    num_objects: int | None = None,
    workers: int | None = None,
) -> VideoMasks:
    """Read a whole sequence folder (one PNG per frame, sorted by name) into memory.

    The scorers do not call this (they stream frames chunk by chunk, see
    :mod:`pixelground.eval.metrics.vos_folders`); it is for looking at a sequence.

    Args:
        folder: Folder of ``<frame>.png`` files.
        frame_ids: Only these frames, in this order (missing files are an error).
        kind: See :func:`read_davis_frame`.
        void_label: 255 for ground truth; None for results (every value is an object id).
        num_objects: N; default the largest id in the frames read (how davis2017 counts the
            objects of a result; for ground truth it uses the first frame only).
        workers: decoding threads (default :data:`DEFAULT_WORKERS`).

    Returns:
        The sequence as label maps.
    """
    folder = Path(folder)
    if frame_ids is None:
        paths = sorted(folder.glob("*.png"))
        if not paths:
            raise InputError(f"no PNG masks in {folder}")
    else:
        paths = check_paths(folder, frame_ids)
    labels, void, count = None, None, 0
    frames = ordered_map(lambda p: read_label_frame(p, kind, void_label), paths, workers)
    for index, frame in enumerate(frames):
        if labels is None:
            labels = np.empty((len(paths), *frame.labels.shape), dtype=frame.labels.dtype)
            void = np.zeros(labels.shape, dtype=bool)
        if frame.labels.shape != labels.shape[1:]:
            raise InputError(
                f"frames of {folder} have different sizes: {labels.shape[1:]} and "
                f"{frame.labels.shape} ({paths[index].name})"
            )
        labels[index] = frame.cleared()
        if frame.has_void:
            void[index] = frame.void()
        count = max(count, frame.max_id)
    count = count if num_objects is None else int(num_objects)
    return VideoMasks(labels, void, [p.stem for p in paths], count, folder.name)


def read_davis_ground_truth(folder: str | Path, kind: str = "auto") -> VideoMasks:
    """Ground truth as davis2017 reads it: N = the largest object id of the first frame."""
    sequence = read_davis_sequence(folder, kind=kind, void_label=VOID_LABEL)
    return replace(sequence, num_objects=int(sequence.labels[0].max()))


def find_sequence_dirs(
    root: str | Path, task: str = "semi-supervised", resolution: str = "480p"
) -> dict[str, Path]:
    """Map sequence name -> folder of PNGs under a DAVIS root or a folder of sequences.

    Args:
        root: A DAVIS root, a folder of sequence folders, or one sequence folder.
        task: ``"unsupervised"`` prefers ``Annotations_unsupervised`` in a DAVIS root.
        resolution: Subfolder of ``Annotations`` in a DAVIS root.

    Returns:
        Sequence folders sorted by name.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    if any(root.glob("*.png")):
        return {root.name: root}
    preferred = ["Annotations_unsupervised"] if task == "unsupervised" else []
    for folder in [*preferred, "Annotations"]:
        for base in (root / folder / resolution, root / folder):
            if base.is_dir() and _sequence_dirs(base):
                return _sequence_dirs(base)
    found = _sequence_dirs(root)
    if not found:
        raise InputError(
            f"no DAVIS sequences in {root}: expected <seq>/<frame>.png folders, a DAVIS root "
            "with Annotations/480p/, or one folder of PNGs"
        )
    return found


def _sequence_dirs(base: Path) -> dict[str, Path]:
    return {d.name: d for d in sorted(base.iterdir()) if d.is_dir() and any(d.glob("*.png"))}


def write_davis_frame(path: str | Path, labels: np.ndarray) -> None:
    """Write (H, W) object ids (0..255) as a palette PNG in the DAVIS colours."""
    array = np.asarray(labels)
    if array.ndim != 2 or array.size and (array.min() < 0 or array.max() > 255):
        raise InputError(f"labels must be (H, W) ids in 0..255, got shape {array.shape}")
    image = Image.fromarray(array.astype(np.uint8))
    image.putpalette(davis_palette())  # an "L" image with a palette becomes "P"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
