"""The Python API: ``pixelground.load(preset)`` -> Pipeline with one method per task.

Backends load lazily, on the first task that needs them, and parts of a preset that
share a backend and checkpoint (Florence-2 as detector and captioner) share one instance.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from pixelground.backends.presets import (
    PACKAGE_PREFIX,
    ROLES,
    Part,
    Preset,
    get_preset,
    package_checkpoint,
)
from pixelground.backends.registry import backend_class
from pixelground.backends.tiny import ensure_tiny
from pixelground.core.errors import CheckpointMissingError, InputError
from pixelground.core.media import ImageSource
from pixelground.core.prompts import Box, Point
from pixelground.core.result import GroundedResult
from pixelground.tasks.chat import Chat
from pixelground.tasks.entity import EntitySegmentation
from pixelground.tasks.gcg import GroundedCaptioning
from pixelground.tasks.grounding import PhraseGrounding
from pixelground.tasks.referring import ReferringSegmentation
from pixelground.tasks.region import RegionUnderstanding
from pixelground.tasks.semseg import OpenVocabSegmentation

log = logging.getLogger(__name__)


def build_part(part: Part, device: str | None = None, dtype: str | None = None) -> Any:
    """Instantiate one part: resolve ``tiny:NAME`` and ``package:NAME`` checkpoints, then call
    the backend class."""
    cls = backend_class(part.backend)
    options = dict(part.options)
    if part.checkpoint is None:
        return cls(**options)
    checkpoint = part.checkpoint
    if checkpoint.startswith("tiny:"):
        checkpoint = str(ensure_tiny(checkpoint.removeprefix("tiny:")))
    elif checkpoint.startswith(PACKAGE_PREFIX):
        checkpoint = str(package_checkpoint(checkpoint))
    return cls(checkpoint, device=device, dtype=dtype, **options)


class Pipeline:
    """A preset's backends plus one method per image task, each returning GroundedResult.

    Args:
        preset: a Preset (see pixelground.backends.presets).
        device: ``"auto"``/None (cuda, then mps, then cpu), ``"cpu"``, ``"cuda:0"``, ``"mps"``.
        dtype: ``"float32"``, ``"float16"``, ``"bfloat16"`` or None for the device default.
    """

    def __init__(self, preset: Preset, device: str | None = None, dtype: str | None = None):
        self.preset = preset
        self.device = device
        self.dtype = dtype
        self._instances: dict[tuple, Any] = {}

    def __repr__(self) -> str:
        return f"Pipeline(preset={self.preset.name!r}, device={self.device!r})"

    def backend(self, role: str) -> Any:
        """The loaded backend for ``role``, or None when the preset has no such part."""
        if role not in ROLES:
            raise InputError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}")
        part = self.preset.parts.get(role)
        if part is None:
            return None
        if part.key not in self._instances:
            try:
                self._instances[part.key] = build_part(part, self.device, self.dtype)
            except CheckpointMissingError as error:
                raise CheckpointMissingError(
                    f"{role} of preset {self.preset.name!r}: {error}"
                ) from error
        return self._instances[part.key]

    def require(self, role: str, task: str) -> Any:
        """The backend for ``role``; InputError naming the task when the preset has none."""
        backend = self.backend(role)
        if backend is None:
            raise InputError(
                f"{task} needs a {role}, and preset {self.preset.name!r} has none; use a preset "
                f"with one (pixelground presets lists them) or add one with --model {role}=SOURCE"
            )
        return backend

    def __getattr__(self, name: str) -> Any:
        if name in ROLES:
            return self.backend(name)
        raise AttributeError(name)

    @property
    def meaningful(self) -> bool:
        """False for random-weight presets (their output means nothing)."""
        return self.preset.meaningful

    def _grounding(
        self,
        strategy: str = "detector",
        threshold: float = 0.3,
        entity_options: dict[str, Any] | None = None,
    ):
        return PhraseGrounding(
            entity_options=entity_options,
            segmenter=self.require("segmenter", "phrase grounding"),
            parser=self.backend("parser"),
            detector=self.require("detector", "phrase grounding")
            if strategy == "detector"
            else None,
            scorer=self.require("scorer", "entity-first grounding")
            if strategy == "entity"
            else None,
            strategy=strategy,
            threshold=threshold,
            preset=self.preset.name,
        )

    def _finish(self, result: GroundedResult) -> GroundedResult:
        result.model.setdefault("preset", self.preset.name)
        if not self.preset.meaningful:
            result.model["note"] = "random-weight models: this output is not meaningful"
        return result

    def segment(self, image: ImageSource, text: str, threshold: float = 0.3) -> GroundedResult:
        """Referring segmentation: masks of what ``text`` refers to (may be none or several)."""
        grounding_model = self.backend("grounding_model")
        task = ReferringSegmentation(
            segmenter=None if grounding_model else self.require("segmenter", "segment"),
            detector=None if grounding_model else self.require("detector", "segment"),
            referring_segmenter=grounding_model,
            parser=self.backend("parser"),
            threshold=threshold,
            preset=self.preset.name,
        )
        return self._finish(task(image, text))

    def ground(
        self,
        image: ImageSource,
        caption: str,
        strategy: str = "detector",
        threshold: float = 0.3,
        entity_options: dict[str, Any] | None = None,
    ) -> GroundedResult:
        """Phrase grounding: each phrase of ``caption`` (``<p>``-marked or parsed) gets masks.

        ``entity_options`` (entity strategy) are EntitySegmentation settings, e.g.
        ``{"points_per_side": 8}``.
        """
        grounding = self._grounding(strategy, threshold, entity_options)
        return self._finish(grounding(image, caption))

    def caption(
        self,
        image: ImageSource,
        grounded: bool = False,
        detailed: bool = False,
        strategy: str = "detector",
    ) -> GroundedResult:
        """A caption of the image; with ``grounded`` its phrases are tied to masks."""
        task = GroundedCaptioning(
            captioner=self.backend("captioner"),
            grounding=self._grounding(strategy)
            if grounded and self.preset.parts.get("segmenter")
            else None,
            grounding_model=self.backend("grounding_model") if grounded else None,
            detailed=detailed,
            preset=self.preset.name,
        )
        return self._finish(task(image, grounded=grounded))

    def describe(
        self,
        image: ImageSource,
        box: Box | Sequence[float] | None = None,
        point: Point | Sequence[float] | None = None,
        mask: np.ndarray | None = None,
    ) -> GroundedResult:
        """Region understanding: label, short caption and detailed caption of one region."""
        if box is not None and not isinstance(box, Box):
            box = Box(*box)
        if point is not None and not isinstance(point, Point):
            point = Point(*point)
        task = RegionUnderstanding(
            captioner=self.require("captioner", "describe"),
            segmenter=self.backend("segmenter"),
            preset=self.preset.name,
        )
        return self._finish(task(image, box=box, point=point, mask=mask))

    def entities(self, image: ImageSource, **options: Any) -> GroundedResult:
        """Entity segmentation: class-agnostic, non-overlapping masks of everything."""
        segmenter = self.require("segmenter", "entity segmentation")
        task = EntitySegmentation(segmenter, preset=self.preset.name, **options)
        return self._finish(task(image))

    def semseg(
        self,
        image: ImageSource,
        classes: str | Sequence[str | Sequence[str]],
        mode: str = "dense",
        setting: str | None = None,
    ) -> GroundedResult:
        """Open-vocabulary semantic segmentation into ``classes`` (one region per class present).

        Args:
            mode: ``"dense"``, ``"entity"`` or ``"cass"`` (needs the preset's ``dino`` part).
            setting: cass mode's named setting (an official dataset config, e.g.
                ``"voc21"``); classes ``"@NAME"`` use that setting's class-name file.
        """
        task = OpenVocabSegmentation(
            scorer=self.require("scorer", "semantic segmentation"),
            segmenter=self.require("segmenter", "entity-mode semseg") if mode == "entity" else None,
            mode=mode,
            preset=self.preset.name,
            dino=self.require("dino", "cass-mode semseg") if mode == "cass" else None,
            cass_setting=setting,
        )
        return self._finish(task(image, classes))

    def chat(
        self,
        image: ImageSource,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        ground_answer: bool = True,
    ) -> GroundedResult:
        """Answer a question about the image; grounded phrases in the answer get masks."""
        grounding_model = self.backend("grounding_model")
        task = Chat(
            vlm=None if grounding_model else self.backend("vlm"),
            grounding=self._grounding() if ground_answer and not grounding_model else None,
            grounding_model=grounding_model,
            preset=self.preset.name,
        )
        return self._finish(task(image, question, history, ground_answer=ground_answer))


def load(
    preset: str = "auto", device: str | None = None, dtype: str | None = None, **overrides: str
) -> Pipeline:
    """Load a preset by name; override any role with a hub id or local directory.

    Args:
        preset: ``auto``, ``default``, ``quality``, ``sa2va-1b``, ``sa2va-4b``, ``shapes``,
            ``tiny``.
        device: torch device or ``auto``.
        dtype: torch dtype name or None.
        **overrides: role=source, e.g. ``segmenter="/models/sam2"`` or
            ``detector="owlv2:google/owlv2-base-patch16-ensemble"``.

    Returns:
        A Pipeline whose backends load on first use.
    """
    chosen = get_preset(preset)
    if overrides:
        chosen = chosen.with_overrides(overrides)
    return Pipeline(chosen, device=device, dtype=dtype)
