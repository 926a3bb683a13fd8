"""Grounded caption generation (GCG): a caption whose phrases link to masks.

With an end-to-end grounding model (Sa2VA, our [SEG] model) the model writes the caption
with ``<p>phrase</p> [SEG]`` markup and one mask per [SEG]. Otherwise a captioner writes
the caption and phrase grounding (detector- or entity-first) grounds its noun phrases.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelground.backends.base import (
    Captioner,
    CaptionInstructed,
    GroundedText,
    GroundingModel,
)
from pixelground.core.errors import InputError
from pixelground.core.media import ImageSource
from pixelground.core.result import GroundedResult, Region
from pixelground.tasks.common import image_info, load, model_info
from pixelground.tasks.grounding import PhraseGrounding

#: The GCG instruction Sa2VA and GLaMM were trained with.
GCG_PROMPT = (
    "Could you please give me a brief description of the image? Please respond with "
    "interleaved segmentation masks for the corresponding parts of the answer."
)


def regions_from_grounded_text(answer: GroundedText) -> list[Region]:
    """One region per grounded phrase that has a non-empty mask."""
    return [
        Region(mask=mask, phrase=phrase.text, span=(phrase.start, phrase.end), score=1.0)
        for phrase, mask in zip(answer.phrases, answer.masks, strict=False)
        if mask is not None and mask.any()
    ]


@dataclass
class GroundedCaptioning:
    """Caption an image; optionally ground the caption's phrases.

    Attributes:
        captioner: writes the caption (two-stage route).
        grounding: grounds the caption's phrases (two-stage route).
        grounding_model: end-to-end alternative, used for grounded captions when given.
        detailed: ask the captioner for a detailed caption.
    """

    captioner: Captioner | None = None
    grounding: PhraseGrounding | None = None
    grounding_model: GroundingModel | None = None
    detailed: bool = False
    preset: str | None = None

    def __call__(self, image: ImageSource, grounded: bool = True) -> GroundedResult:
        """Caption ``image``.

        Returns:
            GroundedResult (task "caption"); with ``grounded`` its regions tie phrases of the
            caption (spans) to masks, else it has no regions.
        """
        loaded = load(image)
        if grounded and self.grounding_model is not None:
            prompt = (
                self.grounding_model.gcg_prompt
                if isinstance(self.grounding_model, CaptionInstructed)
                else GCG_PROMPT
            )
            answer = self.grounding_model.ground(loaded.pixels, prompt)
            return GroundedResult(
                task="caption",
                image=image_info(loaded),
                text=answer.text,
                regions=regions_from_grounded_text(answer),
                model=model_info(self.preset, grounding_model=self.grounding_model),
            )
        if self.captioner is None:
            raise InputError("this preset has no captioner; choose a preset with one (default)")
        caption = self.captioner.caption(loaded.pixels, detailed=self.detailed).strip()
        if not grounded:
            return GroundedResult(
                task="caption",
                image=image_info(loaded),
                text=caption,
                model=model_info(self.preset, captioner=self.captioner),
            )
        if self.grounding is None:
            raise InputError("grounded captions need phrase grounding backends (a segmenter)")
        phrases = self.grounding.parser.noun_phrases(caption) if self.grounding.parser else []
        result = self.grounding.ground_phrases(loaded, caption, phrases, task="caption")
        result.model["captioner"] = model_info(None, captioner=self.captioner)["captioner"]
        return result
