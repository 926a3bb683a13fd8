"""Florence-2 over transformers' native Florence2ForConditionalGeneration + Florence2Processor.

One model answers several roles through task prompts: captions (``<CAPTION>``,
``<DETAILED_CAPTION>``, ``<MORE_DETAILED_CAPTION>``), region labels and descriptions
(``<REGION_TO_CATEGORY>``, ``<REGION_TO_DESCRIPTION>`` with the box as location tokens),
text-prompted boxes and phrase grounding (``<CAPTION_TO_PHRASE_GROUNDING>``) and referring
expression segmentation (``<REFERRING_EXPRESSION_SEGMENTATION>``, polygons rasterised to
masks). The processor turns a task token into its prompt; outputs are parsed by the pure
functions of :mod:`pixelground.backends.florence2_parsing`.

Scores: Florence-2 gives no box confidence. We assign each box its *localisation
confidence*: for each of its four location tokens, the probability the model put on
bins within ``loc_tolerance`` bins (default 10 = 1% of the image side) of the bin it
chose, read from the same decoding pass; the box score is the geometric mean of the
four. Neighbouring bins are near-synonyms, so the mass around the chosen bin (rather
than the chosen bin alone) measures how sure the model is of each edge. It is in [0, 1]
and comparable across boxes of one model, not a calibrated detection probability.

The microsoft/Florence-2-* hub repositories hold remote code; their conversions to the
native classes live under florence-community/. Those ids are mapped (and logged).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelground.backends.base import Detection, Phrase
from pixelground.backends.florence2_parsing import (
    NUM_BINS,
    box_to_location_tokens,
    clean_text,
    parse_phrase_boxes,
    parse_polygons,
)
from pixelground.backends.loading import load_pretrained, select_device, select_dtype
from pixelground.core.errors import InputError, PixelgroundError, require
from pixelground.core.masks import polygons_to_mask
from pixelground.core.media import load_image

logger = logging.getLogger(__name__)

#: Remote-code hub ids -> their transformers-native conversions (same weights).
NATIVE_CHECKPOINTS = {
    f"microsoft/Florence-2-{size}": f"florence-community/Florence-2-{size}"
    for size in ("base", "large", "base-ft", "large-ft")
}

CAPTION_TASKS = {False: "<CAPTION>", True: "<DETAILED_CAPTION>", "more": "<MORE_DETAILED_CAPTION>"}
DEFAULT_MAX_NEW_TOKENS = 1024


def native_checkpoint(checkpoint: str) -> str:
    """The checkpoint to load with the native classes (maps microsoft/ remote-code ids)."""
    native = NATIVE_CHECKPOINTS.get(str(checkpoint).rstrip("/"))
    if native:
        logger.info("loading %s (native conversion of %s)", native, checkpoint)
        return native
    return str(checkpoint)


@dataclass
class Generation:
    """One decoded Florence-2 answer.

    Attributes:
        text: decoded output with special and location tokens kept.
        loc_scores: localisation confidence of each generated ``<loc_>`` token, in order
            (empty unless scores were asked for).
    """

    text: str
    loc_scores: list[float] = field(default_factory=list)


@dataclass
class PhraseBoxes:
    """A phrase of a caption and the boxes Florence-2 grounded it to.

    Attributes:
        phrase: the phrase with its [start, end) span in the caption.
        boxes: (K, 4) float32 xyxy pixels.
        scores: (K,) float32 localisation confidences in [0, 1].
    """

    phrase: Phrase
    boxes: np.ndarray
    scores: np.ndarray


def _require_text(text: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{what} is empty; give some text, e.g. 'a black swan'")
    return text.strip()


class Florence2Backend:
    """Captioner, Detector, ReferringSegmenter and phrase grounder over Florence-2.

    Args:
        checkpoint: hub id or local directory of a transformers-native Florence-2
            (microsoft/Florence-2-* ids are mapped to florence-community/ conversions).
        device: "auto"/None, "cpu", "cuda", "cuda:N" or "mps".
        dtype: "float32", "float16", "bfloat16" or None (float16 on GPUs, float32 on CPU).
        max_new_tokens: decoding budget; None uses the checkpoint's generation config if
            it sets one, else 1024 (polygons of large objects are long).
        num_beams: beam width (3, as the Florence-2 examples use).
        loc_tolerance: bins either side of a chosen location bin counted as agreeing, for
            box scores (see the module docstring).
    """

    def __init__(
        self,
        checkpoint: str = "microsoft/Florence-2-base",
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int | None = None,
        num_beams: int = 3,
        loc_tolerance: int = 10,
    ) -> None:
        transformers = require("transformers", "models")
        self.device = select_device(device)
        self.dtype = select_dtype(self.device, dtype)
        source = native_checkpoint(checkpoint)
        try:
            self.processor = load_pretrained(transformers.Florence2Processor, source)
            model = load_pretrained(
                transformers.Florence2ForConditionalGeneration, source, dtype=self.dtype
            )
        except (ValueError, KeyError, TypeError) as error:
            raise PixelgroundError(
                f"{checkpoint} is not a transformers-native Florence-2 checkpoint ({error}); "
                "use florence-community/Florence-2-base or a directory saved by "
                "Florence2ForConditionalGeneration.save_pretrained"
            ) from error
        self._setup(model.to(self.device).eval(), max_new_tokens, num_beams, loc_tolerance)
        self.info.update(checkpoint=str(checkpoint), loaded=source)

    @classmethod
    def from_model(
        cls,
        model: Any,
        processor: Any,
        max_new_tokens: int | None = None,
        num_beams: int = 3,
        loc_tolerance: int = 10,
    ) -> Florence2Backend:
        """Wrap an in-memory Florence2ForConditionalGeneration and Florence2Processor.

        For models built here rather than loaded (e.g. real-size random-weight models in
        benchmarks); the model keeps its device and dtype.
        """
        backend = cls.__new__(cls)
        backend.processor = processor
        backend.device = str(model.device)
        backend.dtype = model.dtype
        backend._setup(model.eval(), max_new_tokens, num_beams, loc_tolerance)
        return backend

    def _setup(
        self, model: Any, max_new_tokens: int | None, num_beams: int, loc_tolerance: int
    ) -> None:
        self.model = model
        configured = getattr(model.generation_config, "max_new_tokens", None)
        self.max_new_tokens = max_new_tokens or configured or DEFAULT_MAX_NEW_TOKENS
        self.num_beams = int(num_beams)
        self.loc_tolerance = int(loc_tolerance)
        tokenizer = self.processor.tokenizer
        self._loc_ids = tokenizer.convert_tokens_to_ids([f"<loc_{i}>" for i in range(NUM_BINS)])
        self._bin_of = {token_id: i for i, token_id in enumerate(self._loc_ids)}
        post = getattr(self.processor, "post_processor_config", None) or {}
        self.banned_phrases = tuple(
            post.get("phrase_grounding", {}).get("banned_grounding_tokens", [])
        )
        self.info = {
            "class": "Florence2Backend",
            "checkpoint": "in-memory",
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    # ------------------------------------------------------------------ running

    def run(self, image: np.ndarray, task: str, text: str = "", scores: bool = False) -> Generation:
        """Run one Florence-2 task prompt.

        Args:
            image: (H, W, 3) uint8 RGB.
            task: a task token such as ``"<CAPTION>"`` or ``"<OD>"``.
            text: the task's input (a caption, an expression, region location tokens).
            scores: also compute the localisation confidence of each location token.

        Returns:
            Generation with the decoded text (special tokens kept).
        """
        torch = require("torch", "models")
        pixels = load_image(image).pixels
        from PIL import Image

        inputs = self.processor(
            text=task + text, images=Image.fromarray(pixels), return_tensors="pt"
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                num_beams=self.num_beams,
                do_sample=False,
                output_scores=scores,
                return_dict_in_generate=True,
            )
        sequence = out.sequences[0]
        decoded = self.processor.tokenizer.decode(sequence[1:], skip_special_tokens=False)
        loc_scores = self._loc_scores(out, sequence) if scores else []
        return Generation(decoded, loc_scores)

    def _loc_scores(self, out: Any, sequence: Any) -> list[float]:
        """Per generated location token: probability mass within ``loc_tolerance`` bins."""
        torch = require("torch", "models")
        beam_indices = getattr(out, "beam_indices", None)
        loc_ids = torch.tensor(self._loc_ids, device=out.scores[0].device)
        confidences = []
        for step, step_scores in enumerate(out.scores):
            token = int(sequence[step + 1]) if step + 1 < len(sequence) else -1
            if token not in self._bin_of:
                continue
            row = 0 if beam_indices is None else max(int(beam_indices[0, step]), 0)
            probs = torch.softmax(step_scores[row].float(), dim=-1)
            found = self._bin_of[token]
            lo, hi = max(found - self.loc_tolerance, 0), found + self.loc_tolerance + 1
            confidences.append(float(probs[loc_ids[lo:hi]].sum()))
        return confidences

    @staticmethod
    def _box_score(loc_scores: Sequence[float], loc_index: int, count: int = 4) -> float:
        values = loc_scores[loc_index : loc_index + count]
        if len(values) < count:
            return 0.0
        return float(math.exp(sum(math.log(max(v, 1e-12)) for v in values) / count))

    # ------------------------------------------------------------------ Captioner

    def caption(self, image: np.ndarray, detailed: bool | str = False) -> str:
        """A caption of the whole image.

        Args:
            image: (H, W, 3) uint8 RGB.
            detailed: False for one sentence, True for a detailed caption, ``"more"`` for
                a paragraph (``<MORE_DETAILED_CAPTION>``).
        """
        task = CAPTION_TASKS.get(detailed)
        if task is None:
            raise InputError(f"detailed must be False, True or 'more', got {detailed!r}")
        return clean_text(self.run(image, task).text)

    def describe_region(
        self, image: np.ndarray, box: Sequence[float], detailed: bool = False
    ) -> str:
        """A category (``<REGION_TO_CATEGORY>``) or a description of an xyxy pixel box.

        Raises:
            InputError: a box that is malformed or has no area inside the image.
        """
        pixels = load_image(image).pixels
        height, width = pixels.shape[:2]
        values = [float(v) for v in box]
        if len(values) != 4:
            raise InputError(f"a box is x0,y0,x1,y1; got {len(values)} numbers")
        x0, y0 = max(values[0], 0.0), max(values[1], 0.0)
        x1, y1 = min(values[2], float(width)), min(values[3], float(height))
        if x1 <= x0 or y1 <= y0:
            raise InputError(
                f"box {values} has no area inside the {width}x{height} image; give x0<x1, y0<y1"
            )
        task = "<REGION_TO_DESCRIPTION>" if detailed else "<REGION_TO_CATEGORY>"
        tokens = box_to_location_tokens((x0, y0, x1, y1), width, height)
        return clean_text(self.run(pixels, task, tokens).text)

    # ------------------------------------------------------------------ grounding

    def _grounded(self, pixels: np.ndarray, caption: str, allow_empty: bool) -> list[Any]:
        height, width = pixels.shape[:2]
        generation = self.run(pixels, "<CAPTION_TO_PHRASE_GROUNDING>", caption, scores=True)
        parsed = parse_phrase_boxes(
            generation.text, width, height, allow_empty=allow_empty, banned=self.banned_phrases
        )
        return [
            (item.phrase, _box(box.coords), self._box_score(generation.loc_scores, box.loc_index))
            for item in parsed
            for box in item.boxes
            if box.coords[0] != box.coords[2] and box.coords[1] != box.coords[3]  # has an area
        ]

    def detect(
        self,
        image: np.ndarray,
        queries: Sequence[str],
        threshold: float = 0.2,
        joined: bool = False,
    ) -> list[Detection]:
        """Boxes for text queries via ``<CAPTION_TO_PHRASE_GROUNDING>``.

        Args:
            image: (H, W, 3) uint8 RGB.
            queries: texts to find.
            threshold: minimum localisation confidence (see the module docstring).
            joined: one pass over ``"q1. q2. ..."`` with phrases mapped back to queries by
                word overlap (faster, less exact); default one pass per query, so every
                box belongs to its query without guessing.

        Returns:
            Detections with ``query_index`` and ``label`` (the phrase Florence-2 grounded);
            corners written in either order are sorted; boxes without area (equal x or
            equal y bins) are dropped.
        """
        pixels = load_image(image).pixels
        texts = [_require_text(q, "a detection query") for q in queries]
        found: list[Detection] = []
        if joined and texts:
            for phrase, box, score in self._grounded(pixels, ". ".join(texts), False):
                index = match_query(phrase, texts)
                if index is not None:
                    found.append(Detection(box, score, index, phrase))
        else:
            for index, text in enumerate(texts):
                for phrase, box, score in self._grounded(pixels, text, True):
                    found.append(Detection(box, score, index, phrase or text))
        return [d for d in found if d.score >= threshold]

    def ground_phrases(
        self, image: np.ndarray, caption: str, threshold: float = 0.0
    ) -> list[PhraseBoxes]:
        """Phrases of ``caption`` with their boxes (Florence-2 chooses the phrases).

        Args:
            image: (H, W, 3) uint8 RGB.
            caption: the text whose phrases to ground.
            threshold: drop boxes below this localisation confidence.

        Returns:
            One PhraseBoxes per grounded phrase found in the caption, in output order;
            spans index ``caption``. Phrases Florence-2 wrote that are not in the
            caption (not even their last word) are dropped.
        """
        pixels = load_image(image).pixels
        caption = _require_text(caption, "the caption")
        grouped: dict[tuple[str, int, int], list[tuple[Any, float]]] = {}
        cursor = 0
        for phrase, box, score in self._grounded(pixels, caption, False):
            span = find_span(caption, phrase, cursor)
            if span is None or score < threshold:
                continue
            cursor = span[1]
            grouped.setdefault((caption[span[0] : span[1]], *span), []).append((box, score))
        results = []
        for (text, start, end), items in grouped.items():
            boxes = np.array([b for b, _ in items], dtype=np.float32).reshape(-1, 4)
            scores = np.array([s for _, s in items], dtype=np.float32)
            results.append(PhraseBoxes(Phrase(text, start, end), boxes, scores))
        return results

    # ------------------------------------------------------------------ ReferringSegmenter

    def segment_expression(self, image: np.ndarray, expression: str) -> list[np.ndarray]:
        """(H, W) bool masks from ``<REFERRING_EXPRESSION_SEGMENTATION>`` polygons.

        Returns:
            One mask per object the model outlined; an empty list when it drew nothing.
        """
        pixels = load_image(image).pixels
        expression = _require_text(expression, "the referring expression")
        height, width = pixels.shape[:2]
        generation = self.run(pixels, "<REFERRING_EXPRESSION_SEGMENTATION>", expression)
        masks = [
            polygons_to_mask(obj.polygons, height, width)
            for obj in parse_polygons(generation.text, width, height)
        ]
        return [m for m in masks if m.any()]


def _box(coords: Sequence[float]) -> tuple[float, float, float, float]:
    """The box spanned by two corners (a model may write them in either order)."""
    x0, y0, x1, y1 = (float(v) for v in coords[:4])
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _words(text: str) -> list[str]:
    return [w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split() if w]


def match_query(phrase: str, queries: Sequence[str]) -> int | None:
    """The query a grounded phrase answers: exact (case-insensitive) match, else most shared words.

    Returns:
        Query index, or None when the phrase shares no word with any query.
    """
    target = _words(phrase)
    for i, query in enumerate(queries):
        if _words(query) == target:
            return i
    overlaps = [len(set(target) & set(_words(q))) / max(len(set(_words(q))), 1) for q in queries]
    if not overlaps or max(overlaps) == 0:
        return None
    return int(np.argmax(overlaps))


def find_span(text: str, phrase: str, start: int = 0) -> tuple[int, int] | None:
    """[start, end) of ``phrase`` in ``text`` (case-insensitive), searching from ``start`` first.

    Falls back to the phrase's last word (its head noun, usually) when the whole phrase
    is not in the text. None when neither is found.
    """
    lowered = text.lower()
    for needle in (phrase.strip().lower(), (_words(phrase) or [""])[-1]):
        if not needle:
            continue
        at = lowered.find(needle, start)
        if at < 0:
            at = lowered.find(needle)
        if at >= 0:
            return at, at + len(needle)
    return None
