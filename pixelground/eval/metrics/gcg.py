"""Grounded caption generation (GCG) metrics as GLaMM's ``eval/gcg/evaluate.py`` computes them.

For each image the ground truth is a caption, its grounded phrases ("labels") and one mask per
phrase (same order); a prediction is a caption, its phrases and one mask per phrase.

- **AP50** — COCO segmentation AP at IoU 0.5 (``COCOeval(gt, dt, "segm")``, category 1 only),
  every predicted mask with score 1.0, so the ranking inside an image is the prediction order.
- **mIoU** — per image, the IoU matrix of predicted x ground-truth masks is paired greedily
  one-to-one (largest IoU first, its row and column removed) while the largest IoU is > 0;
  the image's value is the mean of the paired IoUs (0 when nothing pairs); mIoU is the mean
  over all ground-truth images (images without a prediction count 0).
- **mask recall** — per image, IoU matrix (ground truth x prediction) and phrase similarity
  matrix (cosine of phrase embeddings). Greedy: take the largest remaining IoU; if that IoU is
  below 0.5 *or* its phrase similarity is below 0.5, **stop** (the official early stop: lower
  IoU pairs are not examined even if their phrases match); else count a match and zero its row
  and column in both matrices. Recall = matches / number of ground-truth phrases, over images.
- **caption metrics** — METEOR, CIDEr-D, BLEU, ROUGE-L through :mod:`caption` (no SPICE).

Official edge cases kept: IoU of two empty masks is NaN (``0 / 0``), which ends the mIoU loop
(``np.max`` is NaN) and is *accepted* by the recall loop (NaN < 0.5 is false); an image whose
ground-truth phrase count differs from its mask count raises inside the official ``try`` and
contributes its phrases to the denominator but no match.

Phrase similarity uses a pluggable :class:`~pixelground.eval.metrics.phrase_encoders.TextEncoder`
(official: bert-base-uncased mean-pooled), or a given similarity: a callable or a fixed table
(:mod:`pixelground.eval.metrics.phrase_similarity`); the report's ``"phrase_encoder"`` says which.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelground.core.errors import InputError
from pixelground.core.masks import as_mask_stack, encode_rle, mask_iou
from pixelground.eval.metrics.caption import caption_scores
from pixelground.eval.metrics.phrase_encoders import TextEncoder, get_encoder
from pixelground.eval.metrics.phrase_similarity import (
    PhraseSimilarity,
    encoder_similarity,
    similarity_name,
)


@dataclass
class GCGImage:
    """Ground truth and prediction of one image.

    Attributes:
        image_id: the image's id (GranD-f: file name without extension).
        gt_masks: (N, H, W) bool, one per ground-truth phrase.
        gt_phrases: N ground-truth phrases ("labels").
        gt_caption: the reference caption.
        pred_masks: (M, H, W) bool predicted masks (M may be 0).
        pred_phrases: predicted phrases, normally M of them.
        pred_caption: the predicted caption; None when the image has no prediction.
    """

    image_id: str
    gt_masks: np.ndarray
    gt_phrases: list[str]
    gt_caption: str = ""
    pred_masks: np.ndarray | None = None
    pred_phrases: list[str] = field(default_factory=list)
    pred_caption: str | None = None

    def __post_init__(self) -> None:
        gt = np.asarray(self.gt_masks)
        if gt.ndim == 2:
            gt = gt[None]
        if gt.ndim != 3:
            raise InputError(f"image {self.image_id}: gt_masks must be (N, H, W), got {gt.shape}")
        self.gt_masks = gt.astype(bool, copy=False)

    def preds(self) -> np.ndarray:
        """(M, H, W) predicted masks; (0, H, W) when there are none."""
        h, w = self.gt_masks.shape[-2:]
        if self.pred_masks is None or len(self.pred_masks) == 0:
            return np.zeros((0, h, w), dtype=bool)
        preds = as_mask_stack(self.pred_masks)
        if preds.shape[1:] != (h, w):
            raise InputError(
                f"image {self.image_id}: predicted masks {preds.shape[1:]} differ from the "
                f"ground truth size {(h, w)}"
            )
        return preds


def official_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """GLaMM's ``compute_iou`` for all pairs: sum(and) / sum(or), NaN where both are empty."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return mask_iou(a, b, empty_value=np.nan)


def greedy_pair_miou(iou: np.ndarray) -> float:
    """GLaMM's ``compute_miou`` on a (pred x gt) IoU matrix: greedy one-to-one mean IoU."""
    iou = np.array(iou, dtype=np.float64)
    paired = []
    with np.errstate(invalid="ignore"):
        while iou.size > 0 and np.max(iou) > 0:
            row, col = np.unravel_index(np.argmax(iou, axis=None), iou.shape)
            paired.append(iou[row, col])
            iou = np.delete(np.delete(iou, row, axis=0), col, axis=1)
    return float(np.mean(paired)) if paired else 0.0


def match_with_phrases(
    ious: np.ndarray, sims: np.ndarray, iou_threshold: float = 0.5, sim_threshold: float = 0.5
) -> list[tuple[int, int]]:
    """GLaMM's ``find_best_matches``: (gt, pred) pairs, greedy by IoU with the early stop.

    Args:
        ious: (N_gt, M_pred) IoU matrix.
        sims: (N_gt_phrases, M_pred_phrases) phrase similarity matrix.

    Raises:
        IndexError: the two matrices disagree in shape where the loop looks (as officially).
    """
    ious = np.array(ious, dtype=np.float64)
    sims = np.array(sims, dtype=np.float64)
    matches: list[tuple[int, int]] = []
    while ious.size > 0:
        row, col = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[row, col] < iou_threshold or sims[row, col] < sim_threshold:
            break
        matches.append((int(row), int(col)))
        ious[row, :] = 0
        ious[:, col] = 0
        sims[row, :] = 0
        sims[:, col] = 0
    return matches


def gcg_ap50(images: Sequence[GCGImage]) -> float:
    """COCO segm AP@0.5 with all scores 1.0, as GLaMM (category 1, all ground-truth images)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    categories = [{"id": 1, "name": "object"}]
    gt: dict[str, Any] = {"images": [], "annotations": [], "categories": categories}
    dets: list[dict[str, Any]] = []
    for index, image in enumerate(images):
        h, w = image.gt_masks.shape[-2:]
        gt["images"].append({"id": index, "height": int(h), "width": int(w)})
        gt_rles = encode_rle(image.gt_masks) if len(image.gt_masks) else []
        for rle, mask in zip(gt_rles, image.gt_masks, strict=False):
            box = _xywh(mask)
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": index,
                    "category_id": 1,
                    "segmentation": rle,
                    "area": float(mask.sum()),
                    "bbox": box,
                    "iscrowd": 0,
                }
            )
        preds = image.preds()
        for rle in encode_rle(preds) if len(preds) else []:
            dets.append({"image_id": index, "category_id": 1, "segmentation": rle, "score": 1.0})
    if not dets or not gt["annotations"]:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        evaluator = COCOeval(coco_gt, coco_dt, "segm")
        evaluator.params.catIds = [1]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[1])


def _xywh(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    ]


def gcg_miou(images: Sequence[GCGImage]) -> tuple[float, list[float]]:
    """Mean over images of the greedy one-to-one mIoU; also the per-image values."""
    values = [greedy_pair_miou(official_iou_matrix(im.preds(), im.gt_masks)) for im in images]
    return (float(np.mean(values)) if values else 0.0), values


def gcg_recall(
    images: Sequence[GCGImage],
    encoder: TextEncoder | None = None,
    iou_threshold: float = 0.5,
    sim_threshold: float = 0.5,
    *,
    similarity: PhraseSimilarity | None = None,
) -> tuple[float, list[dict[str, int]]]:
    """Mask recall with phrase similarity, GLaMM's ``evaluate_recall_with_mapping``.

    Args:
        images: ground truth and prediction per image.
        encoder: a phrase encoder (cosine similarity of its embeddings), or
        similarity: a given similarity, ``similarity(gt_phrases, pred_phrases) -> (N, M)``
            (e.g. a :class:`~pixelground.eval.metrics.phrase_similarity.SimilarityTable`);
            exactly one of the two.
        iou_threshold, sim_threshold: the official 0.5 and 0.5.

    Returns:
        (recall, per-image {"matches", "gt_phrases"}).
    """
    if (encoder is None) == (similarity is None):
        raise InputError("gcg_recall needs a phrase encoder or a similarity (exactly one)")
    if similarity is None:
        texts = [p for im in images for p in (*im.gt_phrases, *im.pred_phrases)]
        similarity = encoder_similarity(encoder, texts)
    true_positives = actual_positives = 0
    per_image = []
    for image in images:
        actual_positives += len(image.gt_phrases)
        ious = official_iou_matrix(image.gt_masks, image.preds())
        sims = np.asarray(similarity(list(image.gt_phrases), list(image.pred_phrases)), float)
        try:
            matched = len(match_with_phrases(ious, sims, iou_threshold, sim_threshold))
        except IndexError:  # official: exception inside try -> image adds no match
            matched = 0
        true_positives += matched
        per_image.append({"matches": matched, "gt_phrases": len(image.gt_phrases)})
    recall = true_positives / actual_positives if actual_positives > 0 else 0.0
    return recall, per_image


def _add_caption_scores(
    out: dict[str, Any], per_sample: list[dict[str, Any]], images: Sequence[GCGImage]
) -> None:
    """METEOR, CIDEr-D, BLEU, ROUGE-L of the predicted captions (into ``out`` and each row)."""
    predicted = {im.image_id: im.pred_caption for im in images if im.pred_caption is not None}
    if not predicted:
        return
    scores = caption_scores({im.image_id: im.gt_caption for im in images}, predicted)
    by_id = {row["id"]: row for row in scores.pop("per_sample")}
    out.update(scores)
    for row in per_sample:
        row.update({k: v for k, v in by_id.get(row["id"], {}).items() if k != "id"})


def evaluate_gcg(
    images: Sequence[GCGImage],
    encoder: TextEncoder | str = "auto",
    captions: bool = True,
    iou_threshold: float = 0.5,
    sim_threshold: float = 0.5,
    similarity: PhraseSimilarity | None = None,
) -> dict[str, Any]:
    """All GCG metrics of GLaMM's evaluate.py (except SPICE).

    Args:
        images: ground truth and prediction per image (every ground-truth image).
        encoder: phrase encoder or its name ("auto", "bert", "minilm", "lexical"); not used
            (nor loaded) when ``similarity`` is given.
        captions: also compute caption metrics (needs Java and pycocoevalcap).
        iou_threshold, sim_threshold: the recall thresholds (0.5 and 0.5 officially).
        similarity: a given phrase similarity (a callable or a
            :class:`~pixelground.eval.metrics.phrase_similarity.SimilarityTable`).

    Returns:
        {"AP50", "mIoU", "recall", caption metrics..., "phrase_encoder" (the encoder's or the
         similarity's name), "count", "missing_predictions", "per_sample"}.
    """
    if not images:
        raise InputError("no GCG images to score")
    if similarity is None:
        text_encoder = get_encoder(encoder)
        name = getattr(text_encoder, "name", type(text_encoder).__name__)
        recall, per_recall = gcg_recall(images, text_encoder, iou_threshold, sim_threshold)
    else:
        name = similarity_name(similarity)
        recall, per_recall = gcg_recall(
            images, None, iou_threshold, sim_threshold, similarity=similarity
        )
    miou, per_miou = gcg_miou(images)
    out: dict[str, Any] = {"AP50": gcg_ap50(images), "mIoU": miou, "recall": recall}
    per_sample = [
        {"id": im.image_id, "mIoU": m, **r, "pred_masks": len(im.preds())}
        for im, m, r in zip(images, per_miou, per_recall, strict=True)
    ]
    if captions:
        _add_caption_scores(out, per_sample, images)
    missing = sum(im.pred_caption is None and im.pred_masks is None for im in images)
    out.update(phrase_encoder=name, count=len(images), missing_predictions=missing)
    out["per_sample"] = per_sample
    return out
