"""CASS object presence: the text side, as the official ``CASS_segmentor`` computes it.

CLIP's image-level class scores (the object-presence prior) say which classes are likely
in the image. Class names whose text embeddings are close (Ward clustering) form a
cluster; in each cluster the class with the highest prior has its text embedding moved
toward the mean of the image's two patch features that match it best. The patch-text
similarities with these adjusted embeddings are then mixed with the prior by gamma.

Shapes: C query names (a class with synonyms has several), D embedding width, N patches
of a (rows, cols) grid in row-major order. Arrays are float32 numpy, as the official
tensors; the functions are plain and stateless.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def _unit(array: np.ndarray, axis: int = -1) -> np.ndarray:
    """L2-normalise along ``axis`` (eps 1e-12, as torch's F.normalize)."""
    norm = np.linalg.norm(array, axis=axis, keepdims=True)
    return (array / np.maximum(norm, 1e-12)).astype(np.float32)


def cluster_classes(text_embeddings: np.ndarray, h_threshold: float) -> np.ndarray:
    """(C,) int cluster ids 0..K-1 of the (C, D) text embeddings.

    Cosine distances (diagonal 0), Ward linkage on their condensed form, flat clusters at
    distance <= h_threshold, ids minus one (scipy's numbering, as the official code).
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    count = len(text_embeddings)
    if count == 1:
        return np.zeros(1, dtype=np.int32)
    unit = _unit(np.asarray(text_embeddings, dtype=np.float32))
    distances = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    distances = (distances + distances.T) / 2  # exact symmetry for squareform
    tree = linkage(squareform(distances, checks=False), method="ward")
    return (fcluster(tree, t=h_threshold, criterion="distance") - 1).astype(np.int32)


def presence_prior(cls_embedding: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """(C,) object-presence prior: the L2-normalised (D,) CLS embedding @ text embeddingsᵀ."""
    return (_unit(np.asarray(cls_embedding, np.float32)) @ text_embeddings.T).astype(np.float32)


@dataclass
class Adjustment:
    """The text adjustment of one crop and what it was built from (golden-fixture names).

    Attributes:
        adjusted_text_features: (C, D) text embeddings, each cluster's chosen row replaced.
        selected_classes: (K,) chosen query per cluster (highest prior, first on ties).
        topk_indices, topk_values: (K, topk) best-matching patches per chosen query.
        mean_vectors: (K, D) unit mean of those patches' unit features.
        adjusted_embeddings: (K, D) the replacement rows.
    """

    adjusted_text_features: np.ndarray
    selected_classes: np.ndarray
    topk_indices: np.ndarray
    topk_values: np.ndarray
    mean_vectors: np.ndarray
    adjusted_embeddings: np.ndarray


def adjust_text(
    patch_features: np.ndarray,
    text_embeddings: np.ndarray,
    prior: np.ndarray,
    clusters: np.ndarray,
    alpha: float,
    topk: int = 2,
) -> Adjustment:
    """Move each cluster's most present class toward the image (official ``hierarchical_prompt``).

    Args:
        patch_features: (N, D) unit patch features.
        text_embeddings: (C, D) unit text embeddings (unadjusted).
        prior: (C,) object-presence prior.
        clusters: (C,) cluster ids 0..K-1.
        alpha: mean_vector_weight.
        topk: patches averaged per cluster.
    """
    adjusted = text_embeddings.astype(np.float32, copy=True)
    k = min(topk, len(patch_features))
    picked, indices, values, means, rows = [], [], [], [], []
    for cluster in range(int(clusters.max()) + 1):
        members = np.flatnonzero(clusters == cluster)
        chosen = int(members[int(np.argmax(prior[members]))])
        text = _unit(text_embeddings[chosen])
        similarity = patch_features @ text
        order = np.argsort(-similarity, kind="stable")[:k]
        mean = _unit(patch_features[order].mean(axis=0))
        row = _unit((1 - alpha) * text + alpha * mean)
        adjusted[chosen] = row
        picked.append(chosen)
        indices.append(order)
        values.append(similarity[order])
        means.append(mean)
        rows.append(row)
    return Adjustment(
        adjusted, np.array(picked), np.array(indices), np.array(values), np.array(means),
        np.array(rows),
    )  # fmt: skip


def crop_logits(
    patch_features: np.ndarray,
    text_embeddings: np.ndarray,
    cls_embedding: np.ndarray,
    clusters: np.ndarray,
    alpha: float,
    gamma: float,
    topk: int = 2,
) -> tuple[np.ndarray, Adjustment, np.ndarray]:
    """(N, C) logits of one crop: (1 - gamma) patch-text similarity + gamma prior.

    Args:
        patch_features: (N, D) raw dense features (normalised here).
        text_embeddings: (C, D) unit text embeddings.
        cls_embedding: (D,) raw CLS embedding the prior comes from (crop's or image's).
        clusters: (C,) cluster ids of the text embeddings.
        alpha: mean_vector_weight; gamma: global_semantics_weight; topk: as adjust_text.

    Returns:
        (N, C) float32 logits, the Adjustment, and the (C,) prior (computed with the
        unadjusted text embeddings, as the official code does).
    """
    features = _unit(np.asarray(patch_features, np.float32))
    prior = presence_prior(cls_embedding, text_embeddings)
    adjustment = adjust_text(features, text_embeddings, prior, clusters, alpha, topk)
    similarity = features @ adjustment.adjusted_text_features.T
    logits = similarity * np.float32(1 - gamma) + prior[None, :] * np.float32(gamma)
    return logits.astype(np.float32), adjustment, prior


def predict_classes(
    planes: Iterable[np.ndarray], query_class: np.ndarray, logit_scale: float, prob_thd: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel classes from query logit planes (official ``postprocess_result``).

    Official: softmax(logit_scale * logits) over queries, max over each class's names,
    argmax, and class 0 where the best probability is below ``prob_thd``. Computed in one
    streaming pass over the planes, never holding them all: the winning class is the
    class of the query with the largest logit (queries are grouped by class in order, so
    ties go to the lowest class as the official argmax), and its probability is
    1 / sum_q exp(scale * (logit_q - max)), accumulated online.

    Args:
        planes: C (H, W) float32 logit planes, one per query name (e.g. a (C, H, W) array).
        query_class: (C,) class index of each query name.
        logit_scale: softmax temperature (40 in CASS).
        prob_thd: probability threshold for class 0.

    Returns:
        (H, W) int class indices and (H, W) float32 probability of the winning class.
    """
    scale = np.float32(logit_scale)
    best = labels = denominator = None
    for query, plane in enumerate(planes):
        if best is None:
            best = np.array(plane, dtype=np.float32)
            labels = np.full(best.shape, query_class[0], dtype=np.intp)
            denominator = np.ones(best.shape, dtype=np.float32)
            continue
        better = plane > best
        new_best = np.where(better, plane, best)
        denominator = denominator * np.exp((best - new_best) * scale)
        denominator += np.exp((plane - new_best) * scale)
        labels[better] = query_class[query]
        best = new_best
    probability = (1.0 / denominator).astype(np.float32)
    labels[probability < prob_thd] = 0
    return labels, probability
