"""What a backend is: small Protocols, one per role, and the plain data they exchange.

Images are RGB uint8 arrays of shape (H, W, 3). Boxes are xyxy pixels. Masks are bool
(H, W) arrays at the image's size. Tasks depend on these Protocols only, never on a
concrete model class.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pixelground.core.frames import FrameSource
from pixelground.core.prompts import Prompt

#: The minimum detector score tasks keep unless told otherwise (image and video tasks, the
#: Pipeline, the CLI and the evaluator all default to this one value).
DETECTION_THRESHOLD = 0.3


@dataclass
class MaskCandidates:
    """A segmenter's answer to one prompt.

    Attributes:
        masks: (K, H, W) bool candidate masks, best first when ``multimask`` was asked.
        scores: (K,) predicted IoU (quality) of each candidate, in [0, 1].
    """

    masks: np.ndarray
    scores: np.ndarray

    def best(self) -> tuple[np.ndarray, float]:
        """The highest-scoring (H, W) mask and its score."""
        i = int(np.argmax(self.scores))
        return self.masks[i], float(self.scores[i])


@dataclass
class Detection:
    """A text-prompted box.

    Attributes:
        box: xyxy pixels.
        score: confidence in [0, 1].
        query_index: index of the query text (phrase) this box answers.
        label: the text the detector matched.
    """

    box: tuple[float, float, float, float]
    score: float
    query_index: int
    label: str = ""


@dataclass
class Phrase:
    """A noun phrase found in a text: [start, end) character span, and whether it is plural."""

    text: str
    start: int
    end: int
    plural: bool = False


@dataclass
class GroundedText:
    """An end-to-end model's answer: text, the phrases in it, and one mask per phrase.

    Attributes:
        text: answer text with markup removed.
        phrases: grounded phrases with spans into ``text``.
        masks: one (H, W) bool mask per phrase (an empty mask where the model gave none).
        raw: the model's raw output, markup included.
    """

    text: str
    phrases: list[Phrase] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    raw: str = ""


@runtime_checkable
class Segmenter(Protocol):
    """Prompted segmentation (SAM, SAM2)."""

    def segment(
        self, image: np.ndarray, prompts: Sequence[Prompt], multimask: bool = False
    ) -> list[MaskCandidates]:
        """One MaskCandidates per prompt; K = 3 candidates when ``multimask``, else 1."""
        ...


@runtime_checkable
class Detector(Protocol):
    """Open-vocabulary, text-prompted box detection (OWLv2, Grounding DINO, Florence-2)."""

    def detect(
        self, image: np.ndarray, queries: Sequence[str], threshold: float = 0.2
    ) -> list[Detection]:
        """Boxes for any of the query texts, each tagged with its query index."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """Image-text similarity in a joint embedding space (CLIP, SigLIP)."""

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) L2-normalised embeddings of N RGB images (crops)."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(T, D) L2-normalised embeddings of T texts."""
        ...

    def embed_patches(self, image: np.ndarray) -> np.ndarray:
        """(h, w, D) L2-normalised dense patch embeddings in the text space (for dense labels)."""
        ...


@runtime_checkable
class Captioner(Protocol):
    """Image and region captioning (Florence-2, a VLM)."""

    def caption(self, image: np.ndarray, detailed: bool = False) -> str:
        """A one-sentence or a detailed caption of the whole image."""
        ...

    def describe_region(
        self, image: np.ndarray, box: Sequence[float], detailed: bool = False
    ) -> str:
        """A short label-like description, or a detailed one, of the region inside an xyxy box."""
        ...


@runtime_checkable
class VLM(Protocol):
    """A general image-text-to-text chat model (SmolVLM, Qwen2.5-VL)."""

    def chat(
        self, image: np.ndarray, question: str, history: Sequence[tuple[str, str]] = ()
    ) -> str:
        """Answer ``question`` about ``image`` given earlier (question, answer) turns."""
        ...


@runtime_checkable
class Parser(Protocol):
    """Finds noun phrases in a text (textblob, spaCy)."""

    def noun_phrases(self, text: str) -> list[Phrase]:
        """Noun phrases with [start, end) spans into ``text``, in order."""
        ...


@runtime_checkable
class GroundingModel(Protocol):
    """An end-to-end model that answers with text and [SEG] masks (Sa2VA, our own)."""

    def ground(self, image: np.ndarray, prompt: str) -> GroundedText:
        """Answer ``prompt`` about ``image``; every [SEG] yields one mask."""
        ...


@runtime_checkable
class ReferringSegmenter(Protocol):
    """A model that segments a referring expression directly (Florence-2 RES, Sa2VA)."""

    def segment_expression(self, image: np.ndarray, expression: str) -> list[np.ndarray]:
        """(H, W) bool masks of what the expression refers to (empty list: no target)."""
        ...


# Optional capabilities: a backend that has one of these methods can do more. Tasks check
# them with ``isinstance`` (the Protocols are runtime-checkable), never by attribute name.


@runtime_checkable
class MaskDescriber(Protocol):
    """A captioner that describes a region given by its mask (pixelground's own model)."""

    def describe_mask(self, image: np.ndarray, mask: np.ndarray) -> str:
        """A short description of the object under the (H, W) bool ``mask``."""
        ...


@runtime_checkable
class EmbeddingSegmenter(Protocol):
    """A segmenter whose image encoder can run ahead of the prompts (SAM: embed once, then
    answer every click on that image from the cached embedding)."""

    def embed(self, image: np.ndarray) -> Any:
        """The image embedding of an RGB uint8 (H, W, 3) image, cached for the last image."""
        ...


@runtime_checkable
class CaptionInstructed(Protocol):
    """A grounding model with its own grounded-caption instruction (pixelground's own model)."""

    @property
    def gcg_prompt(self) -> str:
        """The prompt to pass to ``ground`` for a grounded caption."""
        ...


@runtime_checkable
class TemperedScorer(Protocol):
    """A scorer whose image-text logits are cosine similarity times a learned scale (CLIP)."""

    @property
    def logit_scale(self) -> float:
        """The model's logit scale (CLIP: about 100)."""
        ...


@runtime_checkable
class VideoStreamer(Protocol):
    """A grounding model that decodes every frame of a streamed video itself (our [SEG] model)."""

    def stream_video_expression(
        self, frames: FrameSource, expression: str, chunk: int = 8
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield (frame indices, (S, t, H, W) bool masks of S objects) per chunk of t frames."""
        ...


@runtime_checkable
class PredictForward(Protocol):
    """Sa2VA's remote-code model: one call answers about an image or a list of video frames."""

    def predict_forward(self, **inputs: Any) -> dict[str, Any]:
        """``{"prediction": str, "prediction_masks": [one mask stack per [SEG]]}``."""
        ...


@runtime_checkable
class WrapsModel(Protocol):
    """A backend that exposes the model it wraps (Sa2VA's, to reach ``predict_forward``)."""

    model: Any


#: CLIP's logit scale, used for scorers that do not report their own.
DEFAULT_LOGIT_SCALE = 100.0


def logit_scale(scorer: Scorer) -> float:
    """The scorer's logit scale when it has one (TemperedScorer), else DEFAULT_LOGIT_SCALE."""
    return float(scorer.logit_scale) if isinstance(scorer, TemperedScorer) else DEFAULT_LOGIT_SCALE


def describe_backend(backend: Any) -> dict[str, Any]:
    """What a backend reports about itself for a result's ``model`` field."""
    info = getattr(backend, "info", None)
    return dict(info) if isinstance(info, dict) else {"class": type(backend).__name__}
