"""Referring expression segmentation: one target, several targets, or none.

Two strategies, chosen by the backends given:
- end to end: a ReferringSegmenter (Sa2VA, our [SEG] model) returns masks directly;
- detector first (Grounded-SAM): the detector boxes the expression, the segmenter turns
  the kept boxes into masks. A singular expression keeps its best box; a plural or
  quantified one ("all", "two", "cats") keeps every box above the threshold after NMS;
  no box above the threshold is the "no target" answer (an empty result).

With ``compose`` (opt-in), ordinals, extremes, relations to an anchor and sets are answered
from either strategy's answers to their parts, split into instances (tasks/compose.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pixelground.backends.base import (
    DETECTION_THRESHOLD,
    Detector,
    Parser,
    ReferringSegmenter,
    Segmenter,
)
from pixelground.core.errors import InputError
from pixelground.core.media import ImageSource
from pixelground.core.result import GroundedResult, Region
from pixelground.tasks.common import (
    boxes_to_masks,
    clean_text,
    image_info,
    inside_detections,
    load,
    model_info,
    select_detections,
    wants_many,
)
from pixelground.tasks.compose import compose


@dataclass
class ReferringSegmentation:
    """Segment what a referring expression names.

    Attributes:
        segmenter: turns boxes into masks (detector-first strategy).
        detector: boxes the expression (detector-first strategy).
        referring_segmenter: end-to-end alternative; used when given.
        parser: tells singular from plural expressions; reads compositional ones.
        threshold: minimum detector score for a box to count as a target.
        preset: preset name recorded in results.
        compose: answer ordinals, extremes, relations and sets by composing instances
            (tasks/compose.py; needs ``parser``); other expressions are answered as without.
    """

    segmenter: Segmenter | None = None
    detector: Detector | None = None
    referring_segmenter: ReferringSegmenter | None = None
    parser: Parser | None = None
    threshold: float = DETECTION_THRESHOLD
    preset: str | None = None
    compose: bool = False

    def __post_init__(self) -> None:
        if self.referring_segmenter is None and (self.segmenter is None or self.detector is None):
            raise InputError(
                "referring segmentation needs a referring segmenter, or a detector and a segmenter"
            )
        if self.compose and self.parser is None:
            raise InputError("compositional referring (compose) needs a phrase parser")

    def __call__(self, image: ImageSource, expression: str) -> GroundedResult:
        """Segment ``expression`` in ``image``.

        Args:
            image: path, bytes, PIL image or (H, W, 3) uint8 array.
            expression: e.g. "the man in the red jacket", "all dogs".

        Returns:
            GroundedResult (task "segment") whose text is the expression and whose regions
            (phrase = expression, span = whole text) hold (H, W) masks; empty for no target.
        """
        text = clean_text(expression, "expression")
        loaded = load(image)
        composed = None
        if self.compose:
            composed = compose(text, self.parser, lambda part: self._masks(loaded.pixels, part))
        if composed is None:
            regions = self._answer(loaded.pixels, text)
        else:
            regions = [
                Region(mask=m, phrase=text, span=(0, len(text)), attributes={"strategy": "compose"})
                for m in composed
                if m.any()
            ]
        return GroundedResult(
            task="segment",
            image=image_info(loaded),
            text=text,
            regions=regions,
            model=self._model_info(),
        )

    def _answer(self, pixels: Any, text: str) -> list[Region]:
        if self.referring_segmenter is not None:
            return self._end_to_end(pixels, text)
        return self._detector_first(pixels, text)

    def _masks(self, pixels: Any, text: str) -> list[Any]:
        return [region.mask for region in self._answer(pixels, text)]

    def _end_to_end(self, pixels: Any, text: str) -> list[Region]:
        masks = self.referring_segmenter.segment_expression(pixels, text)
        return [
            Region(mask=m, phrase=text, span=(0, len(text)), score=1.0) for m in masks if m.any()
        ]

    def _detector_first(self, pixels: Any, text: str) -> list[Region]:
        detections = inside_detections(
            self.detector.detect(pixels, [text], threshold=self.threshold), *pixels.shape[:2]
        )
        kept = select_detections(
            [d for d in detections if d.score >= self.threshold], wants_many(text, self.parser)
        )
        masks = boxes_to_masks(self.segmenter, pixels, [d.box for d in kept])
        return [
            Region(
                mask=mask,
                phrase=text,
                span=(0, len(text)),
                score=detection.score,
                attributes={"mask_quality": quality, "detector_box": list(detection.box)},
            )
            for detection, (mask, quality) in zip(kept, masks, strict=True)
            if mask.any()
        ]

    def _model_info(self) -> dict[str, Any]:
        info = model_info(
            self.preset,
            referring_segmenter=self.referring_segmenter,
            detector=None if self.referring_segmenter else self.detector,
            segmenter=None if self.referring_segmenter else self.segmenter,
        )
        if self.compose:
            info["strategy"] = "compose"
        return info
