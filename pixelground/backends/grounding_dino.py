"""Grounding DINO open-set detection over transformers' GroundingDinoForObjectDetection.

The queries are joined into one caption, ``"a cat. a dog."`` (lower case, as the model was
trained), and every predicted box has a probability for every caption token. Each query's
score for a box is the mean probability over that query's tokens (the phrase-level scoring
of the official ``token_spans`` inference); the box takes its best query. Boxes are
normalised (cx, cy, w, h) relative to the unpadded image and are scaled to its pixels.
Query lists longer than the model's text window are split and run in several passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pixelground.backends.base import Detection
from pixelground.backends.vision_common import (
    as_rgb,
    clean_queries,
    describe,
    load_model,
    make_detections,
    to_model,
)
from pixelground.core.errors import InputError, require


class GroundingDinoDetector:
    """Text-prompted boxes from Grounding DINO (e.g. IDEA-Research/grounding-dino-tiny)."""

    def __init__(
        self,
        checkpoint: str = "IDEA-Research/grounding-dino-tiny",
        device: str | None = None,
        dtype: str | None = None,
        nms_threshold: float | None = None,
    ) -> None:
        """Load the model and processor.

        Args:
            checkpoint: hub id or local directory (model and processor saved together).
            device: None/"auto" picks cuda, then mps, then cpu.
            dtype: None/"auto" picks float16 on GPUs and float32 on cpu.
            nms_threshold: per-query non-maximum suppression IoU; None (the model's own
                behaviour, DETR-style set prediction) keeps every box.
        """
        self._torch = require("torch", "models")
        self.loaded = load_model(
            "GroundingDinoForObjectDetection", "GroundingDinoProcessor", checkpoint, device, dtype
        )
        self.model = self.loaded.model
        self.processor = self.loaded.processor
        self.tokenizer = self.processor.tokenizer
        self.nms_threshold = nms_threshold
        self.max_text_len = int(getattr(self.model.config, "max_text_len", 256))
        self.info = describe(self, self.loaded)

    def detect(self, image: Any, queries: Sequence[str], threshold: float = 0.2) -> list[Detection]:
        """Boxes of anything matching one of the queries.

        Args:
            image: RGB uint8 (H, W, 3).
            queries: T query texts, e.g. ["a black swan", "water"].
            threshold: minimum phrase score in [0, 1].

        Returns:
            Detections best first; boxes xyxy in pixels of ``image``; ``query_index`` in [0, T).

        Raises:
            InputError: no query, an empty query, or one longer than the model's text window.
        """
        pixels = as_rgb(image)
        queries = clean_queries(queries)
        phrases = [_phrase(q) for q in queries]
        height, width = pixels.shape[:2]
        boxes, scores, indices = [], [], []
        for chunk in self._chunks(phrases):
            chunk_boxes, chunk_scores = self._run(pixels, [phrases[i] for i in chunk])
            best = chunk_scores.argmax(axis=1)
            best_score = chunk_scores[np.arange(len(best)), best]
            keep = best_score > threshold
            boxes.append(chunk_boxes[keep])
            scores.append(best_score[keep])
            indices.append(np.asarray(chunk)[best[keep]])
        return make_detections(
            np.concatenate(boxes),
            np.concatenate(scores),
            np.concatenate(indices),
            queries,
            height,
            width,
            self.nms_threshold,
        )

    def _chunks(self, phrases: list[str]) -> list[list[int]]:
        """Indices of phrases grouped so each caption fits the text window ([CLS] ... [SEP])."""
        budget = self.max_text_len - 2
        chunks: list[list[int]] = [[]]
        used = 0
        for index, phrase in enumerate(phrases):
            length = len(self.tokenizer.tokenize(phrase)) + 1  # the "." after it
            if length > budget:
                raise InputError(
                    f"query {index} is too long for the detector ({length} tokens, at most "
                    f"{budget}); shorten it"
                )
            if used + length > budget:
                chunks.append([])
                used = 0
            chunks[-1].append(index)
            used += length
        return chunks

    def _run(self, pixels: np.ndarray, phrases: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass for one caption.

        Returns:
            Boxes (Q, 4) xyxy in pixels and phrase scores (Q, len(phrases)) of the Q queries.
        """
        torch = self._torch
        caption = ". ".join(phrases) + "."
        spans = _phrase_spans(phrases)
        inputs = self.processor(
            images=pixels, text=caption, return_tensors="pt", input_data_format="channels_last"
        )
        token_sets = self._phrase_tokens(caption, spans, inputs["input_ids"].shape[1])
        with torch.inference_mode():
            outputs = self.model(**to_model(inputs, self.loaded))
        probs = outputs.logits[0].float().sigmoid().cpu().numpy()  # (Q, max_text_len)
        scores = np.stack([probs[:, tokens].mean(axis=1) for tokens in token_sets], axis=1)
        height, width = pixels.shape[:2]
        cx, cy, w, h = outputs.pred_boxes[0].float().cpu().numpy().T
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return boxes * np.array([width, height, width, height]), scores

    def _phrase_tokens(
        self, caption: str, spans: list[tuple[int, int]], length: int
    ) -> list[np.ndarray]:
        """Token positions of each phrase (from the tokenizer's character offsets)."""
        encoding = self.tokenizer(caption, return_offsets_mapping=True)
        offsets = np.asarray(encoding["offset_mapping"][:length]).reshape(-1, 2)
        token_sets = []
        for start, end in spans:
            inside = (
                (offsets[:, 0] >= start) & (offsets[:, 1] <= end) & (offsets[:, 1] > offsets[:, 0])
            )
            positions = np.flatnonzero(inside)
            if positions.size == 0:
                raise InputError(
                    f"the detector's tokenizer found no token in {caption[start:end]!r}"
                )
            token_sets.append(positions)
        return token_sets


def _phrase(query: str) -> str:
    """A query as one caption phrase: lower case, no '.' (the phrase separator)."""
    text = " ".join(query.lower().replace(".", " ").split())
    if not text:
        raise InputError(f"query {query!r} has no text besides dots")
    return text


def _phrase_spans(phrases: list[str]) -> list[tuple[int, int]]:
    """[start, end) character spans of phrases in ``". ".join(phrases) + "."``."""
    spans, position = [], 0
    for phrase in phrases:
        spans.append((position, position + len(phrase)))
        position += len(phrase) + 2
    return spans
