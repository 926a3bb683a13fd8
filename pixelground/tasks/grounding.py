"""Phrase grounding: every phrase of a caption gets its masks.

Phrases are marked by the user (``"<p>a dog</p> chases <p>two cats</p>"``) or found by a
noun-phrase parser. Two strategies, as the seed systems do:
- ``"detector"`` (Grounded-SAM): the detector boxes all phrases at once, each phrase keeps
  its best box (plurals: all boxes above the threshold after NMS), the segmenter makes masks;
- ``"entity"`` (ESG's GELLA): entity segmentation proposes masks, region-text scores
  associate each phrase with its masks (plurals take several).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelground.backends.base import (
    DETECTION_THRESHOLD,
    Detector,
    Parser,
    Phrase,
    Scorer,
    Segmenter,
)
from pixelground.core.errors import InputError
from pixelground.core.media import ImageSource
from pixelground.core.result import GroundedResult, Region
from pixelground.tasks.association import assign_regions, region_text_probabilities
from pixelground.tasks.common import (
    boxes_to_masks,
    clean_text,
    image_info,
    inside_detections,
    load,
    model_info,
    parse_marked_phrases,
    select_detections,
    wants_many,
)
from pixelground.tasks.entity import EntitySegmentation

STRATEGIES = ("detector", "entity")


@dataclass
class PhraseGrounding:
    """Ground the phrases of a caption in an image.

    Attributes:
        segmenter: makes masks (both strategies).
        parser: finds phrases when the caption has no ``<p>`` markup.
        detector: boxes phrases (detector strategy).
        scorer: region-text scores (entity strategy).
        strategy: ``"detector"`` or ``"entity"``.
        threshold: minimum detector score.
        entity_options: keyword arguments for EntitySegmentation (entity strategy).
    """

    segmenter: Segmenter
    parser: Parser | None = None
    detector: Detector | None = None
    scorer: Scorer | None = None
    strategy: str = "detector"
    threshold: float = DETECTION_THRESHOLD
    entity_options: dict[str, Any] | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InputError(
                f"unknown grounding strategy {self.strategy!r}; use one of {STRATEGIES}"
            )
        needed = {"detector": self.detector, "entity": self.scorer}[self.strategy]
        if needed is None:
            role = "detector" if self.strategy == "detector" else "scorer"
            raise InputError(f"the {self.strategy} grounding strategy needs a {role}")

    def __call__(self, image: ImageSource, caption: str) -> GroundedResult:
        """Ground ``caption``'s phrases in ``image``.

        Returns:
            GroundedResult (task "ground"), text = caption without markup, one or more
            regions per phrase with [start, end) spans into the text.
        """
        loaded = load(image)
        text, phrases = self.phrases(caption)
        return self.ground_phrases(loaded, text, phrases, task="ground")

    def phrases(self, caption: str) -> tuple[str, list[Phrase]]:
        """The clean caption and its phrases (marked ones, else the parser's)."""
        caption = clean_text(caption, "caption")
        text, phrases = parse_marked_phrases(caption)
        if not phrases:
            if self.parser is None:
                raise InputError("mark the phrases with <p>...</p>: no phrase parser is configured")
            phrases = self.parser.noun_phrases(text)
        if not phrases:
            raise InputError(
                f"found no noun phrase to ground in {text!r}; mark phrases with <p>...</p>"
            )
        return text, phrases

    def ground_phrases(
        self, loaded: Any, text: str, phrases: list[Phrase], task: str
    ) -> GroundedResult:
        """Ground given phrases (spans into ``text``) in a loaded image."""
        if self.strategy == "detector":
            regions = self._detector_first(loaded.pixels, phrases)
        else:
            regions = self._entity_first(loaded.pixels, phrases)
        return GroundedResult(
            task=task,
            image=image_info(loaded),
            text=text,
            regions=regions,
            model=model_info(
                self.preset,
                segmenter=self.segmenter,
                detector=self.detector if self.strategy == "detector" else None,
                scorer=self.scorer if self.strategy == "entity" else None,
                parser=self.parser,
            )
            | {"grounding_strategy": self.strategy},
        )

    def _detector_first(self, pixels: np.ndarray, phrases: list[Phrase]) -> list[Region]:
        # A phrase repeated in the text (a chat answer naming "the swan" twice) is detected
        # once: detectors are deterministic, and each query may cost a full decoder pass.
        queries = list(dict.fromkeys(p.text for p in phrases))
        query_of = {text: index for index, text in enumerate(queries)}
        detections = inside_detections(
            self.detector.detect(pixels, queries, threshold=self.threshold), *pixels.shape[:2]
        )
        regions: list[Region] = []
        for phrase in phrases:
            index = query_of[phrase.text]
            mine = [d for d in detections if d.query_index == index and d.score >= self.threshold]
            kept = select_detections(mine, phrase.plural or wants_many(phrase.text, None))
            masks = boxes_to_masks(self.segmenter, pixels, [d.box for d in kept])
            for detection, (mask, quality) in zip(kept, masks, strict=True):
                if mask.any():
                    regions.append(_phrase_region(phrase, mask, detection.score, quality))
        return regions

    def _entity_first(self, pixels: np.ndarray, phrases: list[Phrase]) -> list[Region]:
        entities = EntitySegmentation(self.segmenter, **(self.entity_options or {}))(pixels)
        masks = [r.mask for r in entities.regions]
        probabilities = region_text_probabilities(
            self.scorer, pixels, masks, [p.text for p in phrases]
        )
        plural = [p.plural or wants_many(p.text, None) for p in phrases]
        regions: list[Region] = []
        for phrase, chosen, column in zip(
            phrases, assign_regions(probabilities, plural), probabilities.T, strict=True
        ):
            for r in chosen:
                regions.append(
                    _phrase_region(phrase, masks[r], float(column[r]), entities.regions[r].score)
                )
        return regions


def _phrase_region(phrase: Phrase, mask: np.ndarray, score: float, quality: float) -> Region:
    return Region(
        mask=mask,
        phrase=phrase.text,
        span=(phrase.start, phrase.end),
        score=score,
        attributes={"mask_quality": float(quality)},
    )
