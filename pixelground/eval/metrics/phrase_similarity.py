"""Phrase similarity for GCG mask recall: from a text encoder, or given.

GLaMM's recall compares the phrases of a ground-truth mask and a predicted mask by the cosine
of their bert-base-uncased embeddings (:mod:`pixelground.eval.metrics.phrase_encoders`). To
reproduce a paper's matching exactly, or to plug in another text model, pass a similarity
instead: any callable ``similarity(gt_phrases, pred_phrases) -> (N, M) array``, or a fixed
table (:class:`SimilarityTable`, read from JSON by :meth:`SimilarityTable.from_json` and by
``pixelground score gcg --similarity-table FILE``).

JSON table formats (all map a (ground-truth phrase, predicted phrase) pair to a similarity):

* ``{"<gt phrase>": {"<pred phrase>": 0.83, ...}, ...}``
* ``[["<gt phrase>", "<pred phrase>", 0.83], ...]``
* ``[{"gt": "<gt phrase>", "pred": "<pred phrase>", "similarity": 0.83}, ...]``

A pair the table does not list scores ``default`` (0.0), except two identical phrases, which
score 1.0 as any cosine similarity would. Phrases are compared exactly (case and spaces).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.eval.metrics.phrase_encoders import TextEncoder, cosine_matrix

#: ``similarity(gt_phrases, pred_phrases)`` -> (N, M) float array.
PhraseSimilarity = Callable[[Sequence[str], Sequence[str]], np.ndarray]


class SimilarityTable:
    """A fixed similarity per (ground-truth phrase, predicted phrase) pair.

    Args:
        pairs: (gt phrase, pred phrase) -> similarity.
        default: similarity of pairs not listed (identical phrases score 1.0).
        name: what reports call it (``"phrase_encoder"`` of the GCG result).
    """

    def __init__(
        self, pairs: Mapping[tuple[str, str], float], default: float = 0.0, name: str = "table"
    ):
        self.pairs = {(str(g), str(p)): float(s) for (g, p), s in pairs.items()}
        self.default = float(default)
        self.name = name

    def __call__(self, gt_phrases: Sequence[str], pred_phrases: Sequence[str]) -> np.ndarray:
        """(N, M) similarities of N ground-truth phrases against M predicted phrases."""
        out = np.full((len(gt_phrases), len(pred_phrases)), self.default)
        for i, gt in enumerate(gt_phrases):
            for j, pred in enumerate(pred_phrases):
                out[i, j] = self.pairs.get((gt, pred), 1.0 if gt == pred else self.default)
        return out

    @classmethod
    def from_json(cls, source: str | Path | Any, default: float = 0.0) -> SimilarityTable:
        """Read a table from a JSON file (or already parsed JSON); formats in the module doc.

        Raises:
            InputError: the file is missing, not JSON, or not one of the formats.
        """
        name = "table"
        if isinstance(source, (str, Path)):
            path = Path(source)
            try:
                source = json.loads(path.read_text())
            except FileNotFoundError as error:
                raise InputError(f"similarity table {path} not found") from error
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise InputError(f"similarity table {path} is not JSON: {error}") from error
            name = f"table:{path.name}"
        return cls(_parse_pairs(source), default, name)


def _parse_pairs(data: Any) -> dict[tuple[str, str], float]:
    pairs: dict[tuple[str, str], float] = {}
    try:
        if isinstance(data, dict):
            for gt, row in data.items():
                for pred, value in dict(row).items():
                    pairs[(str(gt), str(pred))] = float(value)
        elif isinstance(data, list):
            for item in data:
                if isinstance(item, dict):
                    pairs[(str(item["gt"]), str(item["pred"]))] = float(item["similarity"])
                else:
                    gt, pred, value = item
                    pairs[(str(gt), str(pred))] = float(value)
        else:
            raise TypeError(type(data).__name__)
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(
            'a similarity table is {"gt phrase": {"pred phrase": s}}, [[gt, pred, s], ...] or '
            f'[{{"gt", "pred", "similarity"}}, ...] ({error})'
        ) from error
    return pairs


def encoder_similarity(encoder: TextEncoder, texts: Sequence[str]) -> PhraseSimilarity:
    """The cosine similarity of ``encoder``'s embeddings, with ``texts`` embedded once, up
    front (one batch), as GLaMM embeds every phrase before matching."""
    unique = sorted(set(texts))
    index = {text: i for i, text in enumerate(unique)}
    embeddings = encoder.embed(unique) if unique else np.zeros((0, 1))

    def similarity(gt_phrases: Sequence[str], pred_phrases: Sequence[str]) -> np.ndarray:
        if not gt_phrases or not pred_phrases:
            return np.zeros((len(gt_phrases), len(pred_phrases)))
        gi, pi = [index[p] for p in gt_phrases], [index[p] for p in pred_phrases]
        return cosine_matrix(embeddings[gi], embeddings[pi])

    return similarity


def similarity_name(similarity: PhraseSimilarity) -> str:
    """The name a report gives a similarity (its ``name`` attribute, else its function name)."""
    return str(getattr(similarity, "name", getattr(similarity, "__name__", "custom")))
