"""Image chat: an answer in text; grounded phrases in the answer get masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pixelground.backends.base import VLM, GroundingModel
from pixelground.core.errors import InputError
from pixelground.core.media import ImageSource
from pixelground.core.result import GroundedResult
from pixelground.tasks.common import clean_text, image_info, load, model_info
from pixelground.tasks.gcg import regions_from_grounded_text
from pixelground.tasks.grounding import PhraseGrounding


@dataclass
class Chat:
    """Answer questions about an image.

    Attributes:
        vlm: the chat model (two-stage route).
        grounding: grounds the answer's noun phrases when ``ground_answer`` is asked.
        grounding_model: end-to-end alternative (Sa2VA): answers with [SEG] masks.
    """

    vlm: VLM | None = None
    grounding: PhraseGrounding | None = None
    grounding_model: GroundingModel | None = None
    preset: str | None = None

    def __call__(
        self,
        image: ImageSource,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        ground_answer: bool = True,
    ) -> GroundedResult:
        """Answer ``question`` about ``image``.

        Returns:
            GroundedResult (task "chat"): text = the answer; regions ground its phrases.
        """
        question = clean_text(question, "question")
        loaded = load(image)
        if self.grounding_model is not None:
            answer = self.grounding_model.ground(loaded.pixels, question)
            return GroundedResult(
                task="chat",
                image=image_info(loaded),
                text=answer.text,
                regions=regions_from_grounded_text(answer),
                model=model_info(self.preset, grounding_model=self.grounding_model),
            )
        if self.vlm is None:
            raise InputError("this preset has no chat model; choose a preset with one (default)")
        text = self.vlm.chat(loaded.pixels, question, history).strip()
        phrases = []
        if (
            ground_answer
            and self.grounding is not None
            and self.grounding.parser is not None
            and text
        ):
            phrases = self.grounding.parser.noun_phrases(text)
        if not phrases:
            return GroundedResult(
                task="chat",
                image=image_info(loaded),
                text=text,
                model=model_info(self.preset, vlm=self.vlm),
            )
        result = self.grounding.ground_phrases(loaded, text, phrases, task="chat")
        result.model["vlm"] = model_info(None, vlm=self.vlm)["vlm"]
        return result
