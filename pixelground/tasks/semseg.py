"""Open-vocabulary semantic segmentation: class names in, a per-pixel label map out.

Three modes:
- ``"entity"``: entity masks (EntitySegmentation) are each classified by region-text
  scores against the class names; pixels no entity covers stay unlabelled.
- ``"dense"`` (training-free, as SCLIP/ClearCLIP/CASS): the scorer's dense patch
  embeddings are compared with the class-name embeddings at every patch, the (h, w, C)
  scores are upsampled bilinearly to (H, W) and the best class wins at each pixel.
- ``"cass"`` (CASS, CVPR 2025, training-free): dense mode's CLIP with its last block's
  attention rebuilt from CLIP's and DINO's key graphs (spectral object-level context
  distillation) and class-name embeddings adjusted by CLIP's object-presence prior, by
  sliding window; the official per-dataset settings are named settings
  (pixelground.tasks.cass_settings). Needs a ``dino`` backend. See docs/cass.md.
The result holds one region per class present (label = class name, mask = its pixels);
``result.label_map(classes)`` gives the (H, W) map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pixelground.backends.base import Scorer, Segmenter
from pixelground.backends.cass import CassEncoder
from pixelground.core.errors import InputError
from pixelground.core.media import ImageSource
from pixelground.core.result import GroundedResult, Region
from pixelground.tasks.association import region_text_probabilities
from pixelground.tasks.cass import CassSegmenter
from pixelground.tasks.cass_settings import class_entries, get_setting
from pixelground.tasks.common import image_info, load, model_info
from pixelground.tasks.entity import EntitySegmentation

MODES = ("entity", "dense", "cass")
MAX_CLASSES = 1000


def parse_classes(classes: str | Sequence[str]) -> list[str]:
    """Class names from a list or a comma-separated string; blanks and repeats removed."""
    items = classes.split(",") if isinstance(classes, str) else list(classes)
    names = list(dict.fromkeys(" ".join(str(c).split()) for c in items))
    names = [n for n in names if n]
    if not names:
        raise InputError('give at least one class name, e.g. --classes "sky,road,person"')
    if len(names) > MAX_CLASSES:
        raise InputError(f"{len(names)} class names given; the limit is {MAX_CLASSES}")
    return names


def upsample_channels(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of (h, w, C) scores to channels-first (C, height, width) float32."""
    out = np.empty((scores.shape[2], height, width), dtype=np.float32)
    for c in range(scores.shape[2]):
        channel = Image.fromarray(scores[:, :, c].astype(np.float32), mode="F")
        out[c] = np.asarray(channel.resize((width, height), Image.Resampling.BILINEAR))
    return out


def upsample_scores(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of (h, w, C) scores to (height, width, C) float32."""
    return np.ascontiguousarray(np.moveaxis(upsample_channels(scores, height, width), 0, 2))


def channel_argmax(stack: np.ndarray) -> np.ndarray:
    """(H, W) index of the largest of (C, H, W) channels (the first on ties), as np.argmax.

    One vectorised pass per channel: much faster than ``argmax(axis=0)`` over a few large
    planes, or any reduction along a short last axis.
    """
    return _winners(stack)[0]


def _winners(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) arg-max (first on ties) and max of (C, H, W) channels."""
    labels = np.zeros(stack.shape[1:], dtype=np.intp)
    best = stack[0].copy()
    for c in range(1, stack.shape[0]):
        better = stack[c] > best
        labels[better] = c
        np.maximum(best, stack[c], out=best)
    return labels, best


def winning_softmax(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max and the softmax probability of the winning channel, per pixel.

    Args:
        logits: (C, H, W) float scores.

    Returns:
        (H, W) labels (first channel on ties) and (H, W) float32 probabilities
        ``softmax(logits, axis=0)[label]`` = ``1 / sum_c exp(logits[c] - max)``, computed
        one plane at a time (no (C, H, W) probability array).
    """
    labels, best = _winners(logits)
    denominator = np.zeros(best.shape, dtype=np.float32)
    for plane in logits:
        denominator += np.exp(plane - best)
    return labels, 1.0 / denominator


@dataclass
class OpenVocabSegmentation:
    """Label every pixel with one of the given class names.

    Attributes:
        scorer: image-text embeddings (CLIP, SigLIP).
        segmenter: for entity mode.
        mode: ``"entity"``, ``"dense"`` or ``"cass"``.
        entity_options: keyword arguments for EntitySegmentation.
        dino: DINO keys backend, for cass mode.
        cass_setting: named CASS setting (see cass_settings.SETTINGS); None = default.
        cass_svd: ``"randomized"`` (official) or ``"exact"`` truncated SVD in cass mode.
    """

    scorer: Scorer
    segmenter: Segmenter | None = None
    mode: str = "dense"
    entity_options: dict[str, Any] | None = None
    preset: str | None = None
    dino: Any = None
    cass_setting: str | None = None
    cass_svd: str = "randomized"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"unknown semseg mode {self.mode!r}; use one of {MODES}")
        if self.mode == "entity" and self.segmenter is None:
            raise InputError("entity-mode semantic segmentation needs a segmenter")
        if self.mode == "cass" and self.dino is None:
            raise InputError("cass-mode semantic segmentation needs a dino backend")
        self._setting = get_setting(self.cass_setting)

    def __call__(self, image: ImageSource, classes: str | Sequence[str]) -> GroundedResult:
        """Segment ``image`` into ``classes``.

        Returns:
            GroundedResult (task "semseg") with one region per class present; the model
            field lists the classes in order so ``label_map`` can be rebuilt.
        """
        loaded = load(image)
        if self.mode == "cass":
            names, regions = self._cass(loaded.pixels, classes)
        else:
            names = parse_classes(classes)
        if self.mode == "dense":
            regions = self._dense(loaded.pixels, names)
        elif self.mode == "entity":
            regions = self._entity(loaded.pixels, names)
        return GroundedResult(
            task="semseg",
            image=image_info(loaded),
            text=", ".join(names),
            regions=regions,
            model=model_info(self.preset, scorer=self.scorer, segmenter=self.segmenter)
            | {"semseg_mode": self.mode, "classes": names}
            | ({"cass_setting": self._setting.name} if self.mode == "cass" else {}),
        )

    def _cass(
        self, pixels: np.ndarray, classes: str | Sequence[str | Sequence[str]]
    ) -> tuple[list[str], list[Region]]:
        """CASS: class names (first synonym, or "background") and regions."""
        entries = class_entries(classes, self._setting)
        if len(entries) > MAX_CLASSES:
            raise InputError(f"{len(entries)} class names given; the limit is {MAX_CLASSES}")
        background = list(self._setting.background)
        names = ["background" if e == background else e[0] for e in entries]
        segmenter = CassSegmenter(CassEncoder(self.scorer, self.dino), self._setting, self.cass_svd)
        prediction = segmenter(pixels, entries)
        regions = []
        for c, name in enumerate(names):
            mask = prediction.labels == c
            if mask.any():
                score = float(prediction.confidence[mask].mean(dtype=np.float64))
                regions.append(Region(mask=mask, label=name, phrase=name, score=score))
        return names, regions

    def _dense(self, pixels: np.ndarray, names: list[str]) -> list[Region]:
        height, width = pixels.shape[:2]
        patches = self.scorer.embed_patches(pixels)  # (h, w, D)
        texts = self.scorer.embed_texts(names)  # (C, D)
        scale = float(getattr(self.scorer, "logit_scale", 100.0))
        # Channels first, float32, plane by plane: C passes over large planes instead of
        # reductions along a short last axis; a class's score is the mean probability of
        # the winning class over its pixels, so only that probability is computed.
        logits = upsample_channels(scale * patches @ texts.T, height, width)
        labels, confidence = winning_softmax(logits)
        regions = []
        for c, name in enumerate(names):
            mask = labels == c
            if mask.any():
                score = float(confidence[mask].mean(dtype=np.float64))
                regions.append(Region(mask=mask, label=name, phrase=name, score=score))
        return regions

    def _entity(self, pixels: np.ndarray, names: list[str]) -> list[Region]:
        entities = EntitySegmentation(self.segmenter, **(self.entity_options or {}))(pixels)
        masks = [r.mask for r in entities.regions]
        if not masks:
            return []
        probabilities = region_text_probabilities(
            self.scorer, pixels, masks, names, with_background=False
        )
        best = probabilities.argmax(axis=1)
        regions = []
        for c, name in enumerate(names):
            members = np.flatnonzero(best == c)
            if len(members):
                mask = np.any([masks[i] for i in members], axis=0)
                score = float(probabilities[members, c].mean())
                regions.append(Region(mask=mask, label=name, phrase=name, score=score))
        return regions
