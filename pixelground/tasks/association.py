"""Region-text association: score entity masks against phrases or class names.

Used by entity-first phrase grounding (as ESG's GELLA associates entity masks to the
caption's phrases) and by entity-based open-vocabulary segmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pixelground.backends.base import Scorer, logit_scale
from pixelground.core.masks import masks_to_boxes

#: Texts that absorb regions belonging to no phrase (the "background" option).
BACKGROUND_TEXTS = ("background", "a blurry photo of nothing in particular")


def mask_crops(
    pixels: np.ndarray, masks: Sequence[np.ndarray], margin: float = 0.1, fill: int = 128
) -> list[np.ndarray]:
    """Crop each mask's box (plus a margin) with pixels outside the mask set to grey.

    Args:
        pixels: (H, W, 3) uint8 image.
        masks: (H, W) bool masks.
        margin: context added on each side, as a fraction of the box size.
        fill: grey level for pixels outside the mask.

    Returns:
        One (h, w, 3) uint8 crop per mask (at least 1 x 1).
    """
    height, width = pixels.shape[:2]
    crops = []
    for mask in masks:
        x0, y0, x1, y1 = masks_to_boxes(mask)[0]
        dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
        left, top = int(max(0, x0 - dx)), int(max(0, y0 - dy))
        right, bottom = int(min(width, np.ceil(x1 + dx))), int(min(height, np.ceil(y1 + dy)))
        right, bottom = max(right, left + 1), max(bottom, top + 1)
        crop = pixels[top:bottom, left:right].copy()
        crop[~mask[top:bottom, left:right]] = fill
        crops.append(crop)
    return crops


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def region_text_probabilities(
    scorer: Scorer,
    pixels: np.ndarray,
    masks: Sequence[np.ndarray],
    texts: Sequence[str],
    with_background: bool = True,
) -> np.ndarray:
    """Probability of each text for each region.

    Args:
        scorer: image-text embedding model.
        pixels: (H, W, 3) uint8 image.
        masks: R (H, W) bool masks.
        texts: T phrases or class names.
        with_background: add background texts as extra options (their columns are dropped).

    Returns:
        (R, T) float64 probabilities; each row sums to at most 1 (less when the background
        options take some of the mass).
    """
    if not len(masks) or not len(texts):
        return np.zeros((len(masks), len(texts)))
    options = [*texts, *BACKGROUND_TEXTS] if with_background else list(texts)
    image_embeddings = scorer.embed_images(mask_crops(pixels, masks))
    text_embeddings = scorer.embed_texts(options)
    scale = logit_scale(scorer)
    probabilities = softmax(scale * image_embeddings @ text_embeddings.T, axis=1)
    return probabilities[:, : len(texts)].astype(np.float64)


def assign_regions(
    probabilities: np.ndarray, plural: Sequence[bool], keep_ratio: float = 0.5
) -> list[list[int]]:
    """Which regions each text takes, from (R, T) probabilities.

    Each region goes to its most probable text (regions most probable for the background
    go nowhere). A singular text keeps its best region; a plural one every region assigned
    to it with at least ``keep_ratio`` of its best probability. A text no region chose still
    takes its single most probable region, so every phrase is grounded when regions exist.

    Returns:
        For each text, the region indices it takes, best first.
    """
    num_regions, num_texts = probabilities.shape
    if num_regions == 0:
        return [[] for _ in range(num_texts)]
    background = 1.0 - probabilities.sum(axis=1)
    best_text = probabilities.argmax(axis=1)
    assigned_to_text = probabilities.max(axis=1) >= background
    out: list[list[int]] = []
    for t in range(num_texts):
        column = probabilities[:, t]
        mine = [
            r
            for r in np.argsort(-column, kind="stable")
            if best_text[r] == t and assigned_to_text[r]
        ]
        if not mine:
            mine = [int(np.argmax(column))]
        if plural[t]:
            top = column[mine[0]]
            out.append([int(r) for r in mine if column[r] >= keep_ratio * top])
        else:
            out.append([int(mine[0])])
    return out
