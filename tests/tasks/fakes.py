"""Unit-test fakes for the code around models: deterministic geometry, no weights.

They implement the backend Protocols so task logic (selection, spans, fusion, labels)
can be tested exactly. Real backends are tested in tests/backends and end to end with
the tiny preset.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from pixelground.backends.base import Detection, MaskCandidates, Phrase
from pixelground.core.prompts import Prompt


class BoxSegmenter:
    """Box prompt -> the box filled; point prompt -> squares of half-size 8, 16, 32 around it."""

    def __init__(self):
        self.calls = 0

    def segment(self, image, prompts: Sequence[Prompt], multimask: bool = False):
        self.calls += 1
        height, width = image.shape[:2]
        out = []
        for prompt in prompts:
            prompt.validate(height, width)
            if prompt.mask is not None:
                masks, scores = [prompt.mask], [0.9]
            elif prompt.box is not None:
                b = prompt.box
                mask = np.zeros((height, width), dtype=bool)
                mask[int(b.y0) : int(np.ceil(b.y1)), int(b.x0) : int(np.ceil(b.x1))] = True
                masks, scores = [mask], [0.95]
            else:
                p = prompt.points[0]
                masks, scores = [], []
                for half, score in ((8, 0.6), (16, 0.8), (32, 0.9)):
                    mask = np.zeros((height, width), dtype=bool)
                    y, x = int(p.y), int(p.x)
                    mask[max(0, y - half) : y + half, max(0, x - half) : x + half] = True
                    masks.append(mask)
                    scores.append(score)
                if not multimask:
                    masks, scores = masks[-1:], scores[-1:]
            order = np.argsort(-np.asarray(scores))
            out.append(MaskCandidates(np.stack(masks)[order], np.asarray(scores)[order]))
        return out


class TableDetector:
    """Returns the boxes listed for each query text (keyed by lower-case text)."""

    def __init__(self, table: dict[str, list[tuple[tuple[float, float, float, float], float]]]):
        self.table = table
        self.info = {"class": "TableDetector"}

    def detect(self, image, queries, threshold=0.2):
        out = []
        for index, query in enumerate(queries):
            for box, score in self.table.get(query.lower(), []):
                if score >= threshold:
                    out.append(Detection(box=box, score=score, query_index=index, label=query))
        return out


class WordParser:
    """Noun phrases = maximal runs of words after 'the'/'a'/'an'/'two'/'all' up to a stop word."""

    STOP = {"on", "in", "of", "and", "with", "next", "to", "near", "is", "are", "."}

    def noun_phrases(self, text: str) -> list[Phrase]:
        phrases = []
        for match in re.finditer(
            r"\b(?:the|a|an|two|all)\b(?: (?!(?:on|in|of|and|with|next|to|near|is|are)\b)\w+)+",
            text,
        ):
            words = match.group(0)
            plural = words.split()[-1].endswith("s") or words.split()[0] in ("two", "all")
            phrases.append(Phrase(words, match.start(), match.end(), plural))
        return phrases


class HashScorer:
    """Embeds texts by hashing words; images by their mean colour mapped onto colour words."""

    DIM = 64
    COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    logit_scale = 10.0

    def _word_vector(self, word: str) -> np.ndarray:
        seed = int(hashlib.sha256(word.encode()).hexdigest()[:8], 16)
        v = np.random.default_rng(seed).normal(size=self.DIM)
        return v / np.linalg.norm(v)

    def embed_texts(self, texts):
        rows = []
        for text in texts:
            words = [w for w in re.findall(r"[a-z]+", text.lower()) if w in self.COLOURS] or [
                "none"
            ]
            v = sum(self._word_vector(w) for w in words)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows)

    def _colour_word(self, pixels: np.ndarray) -> str:
        mean = pixels.reshape(-1, 3).mean(axis=0)
        name = min(self.COLOURS, key=lambda c: np.linalg.norm(mean - np.array(self.COLOURS[c])))
        return name

    def embed_images(self, images):
        return np.stack(
            [self._word_vector(self._colour_word(self._foreground(im))) for im in images]
        )

    @staticmethod
    def _foreground(image: np.ndarray) -> np.ndarray:
        grey = (image == 128).all(axis=2)
        fg = image[~grey]
        return fg if len(fg) else image.reshape(-1, 3)

    def embed_patches(self, image):
        h, w = image.shape[0] // 16, image.shape[1] // 16
        out = np.zeros((h, w, self.DIM))
        for i in range(h):
            for j in range(w):
                patch = image[i * 16 : (i + 1) * 16, j * 16 : (j + 1) * 16]
                out[i, j] = self._word_vector(self._colour_word(patch))
        return out


class EchoCaptioner:
    """Captions name the mean colour; region descriptions name the box."""

    def caption(self, image, detailed=False):
        colour = HashScorer()._colour_word(image)
        return f"a {colour} square on a black background" + (
            " with sharp edges" if detailed else ""
        )

    def describe_region(self, image, box, detailed=False):
        x0, y0, x1, y1 = (int(v) for v in box)
        colour = HashScorer()._colour_word(image[y0:y1, x0:x1])
        return f"{colour} square"


class FixedVLM:
    def __init__(self, answer: str):
        self.answer = answer
        self.seen: list[tuple[str, tuple]] = []

    def chat(self, image, question, history=()):
        self.seen.append((question, tuple(history)))
        return self.answer


def colour_squares_image() -> np.ndarray:
    """A 128x192 black image with a red (10..40), a green (60..90) and a blue (120..150) square."""
    image = np.zeros((128, 192, 3), dtype=np.uint8)
    image[20:50, 10:40] = (255, 0, 0)
    image[20:50, 60:90] = (0, 255, 0)
    image[70:100, 120:150] = (0, 0, 255)
    return image
