"""CASS open-vocabulary semantic segmentation: sliding window, object presence, prediction.

The whole official ``CASS_segmentor.predict`` on one image: resize (setting's short
side), then either the whole image (voc21) or 224-pixel crops every 112 pixels. Each
crop's patch features come from CLIP with the spectral last block (backends/cass.py); its
query logits are the object-presence-adjusted patch-text similarities mixed with the
prior (tasks/cass_presence.py), upsampled to the crop and averaged where crops overlap.
The averaged logits are upsampled to the original image size and each pixel takes the
class with the highest softmax(40 * logits) over its names; below ``prob_thd`` it takes
class 0.

The object-presence prior comes from the whole image's CLS embedding, which the official
code recomputes for every crop; here it is computed once (same value).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pixelground.backends.cass import CassEncoder
from pixelground.backends.cass_spectral import SpectralSettings
from pixelground.tasks.cass_presence import cluster_classes, crop_logits, predict_classes
from pixelground.tasks.cass_settings import IMAGENET_TEMPLATES, CassSetting


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets of the official sliding window along one side (last crop flush)."""
    count = max(length - crop + stride - 1, 0) // stride + 1
    return [max(min(i * stride + crop, length) - crop, 0) for i in range(count)]


@dataclass
class CassPrediction:
    """Per-pixel result of one image.

    Attributes:
        labels: (H, W) class indices into the entries.
        confidence: (H, W) float32 softmax probability of the winning class.
        query_class: (Q,) class index of each query name.
        crops: number of crops run.
    """

    labels: np.ndarray
    confidence: np.ndarray
    query_class: np.ndarray
    crops: int


@dataclass
class CassSegmenter:
    """CASS on one image with a named setting.

    Attributes:
        encoder: CLIP + DINO.
        setting: the official config whose constants are used.
        svd: ``"randomized"`` (official) or ``"exact"`` truncated SVD.
        templates: prompt templates for class names (CLIP's 80 ImageNet ones).
    """

    encoder: CassEncoder
    setting: CassSetting
    svd: str = "randomized"
    templates: Sequence[str] = IMAGENET_TEMPLATES

    def spectral_settings(self) -> SpectralSettings:
        """Spectral constants of this setting (rescaling follows its name)."""
        return SpectralSettings(rescale=self.setting.rescale, svd=self.svd)

    def text_side(self, entries: list[list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Q, D) unit query embeddings, (Q,) query class, (Q,) cluster ids."""
        names = [name for entry in entries for name in entry]
        query_class = np.array([c for c, entry in enumerate(entries) for _ in entry])
        texts = self.encoder.scorer.embed_texts(names, self.templates)  # remembered per scorer
        return texts, query_class, cluster_classes(texts, self.setting.h_threshold)

    def __call__(self, pixels: np.ndarray, entries: list[list[str]]) -> CassPrediction:
        """Segment an RGB uint8 (H, W, 3) image into the class entries (synonym lists)."""
        texts, query_class, clusters = self.text_side(entries)
        image = self.encoder.prepare(pixels, self.setting.short_side)
        averaged, crops = self._window_logits(image, texts, clusters)
        height, width = pixels.shape[:2]
        labels, confidence = predict_classes(
            self._upsampled(averaged, (height, width)),
            query_class,
            self.setting.logit_scale,
            self.setting.prob_thd,
        )
        return CassPrediction(labels, confidence, query_class, crops)

    def _upsampled(self, logits: np.ndarray, size: tuple[int, int]) -> Iterator[np.ndarray]:
        for start in range(0, len(logits), 16):
            yield from self.encoder.upsample(logits[start : start + 16], size)

    def _window_logits(
        self, image: np.ndarray, texts: np.ndarray, clusters: np.ndarray
    ) -> tuple[np.ndarray, int]:
        """(Q, H', W') query logits averaged over the crops of the resized image."""
        setting = self.setting
        height, width = image.shape[1:]
        spectral = self.spectral_settings()
        if not setting.slide:
            return self._crop_logits(image, texts, clusters, spectral, None), 1
        whole = None if setting.prior_from_crop else self.encoder.cls_embedding(image)
        total = np.zeros((len(texts), height, width), dtype=np.float32)
        count = np.zeros((height, width), dtype=np.float32)
        crops = 0
        for top in window_starts(height, setting.crop, setting.stride):
            for left in window_starts(width, setting.crop, setting.stride):
                bottom, right = min(top + setting.crop, height), min(left + setting.crop, width)
                crop = image[:, top:bottom, left:right]
                total[:, top:bottom, left:right] += self._crop_logits(
                    crop, texts, clusters, spectral, whole
                )
                count[top:bottom, left:right] += 1
                crops += 1
        return total / count, crops

    def _crop_logits(
        self,
        crop: np.ndarray,
        texts: np.ndarray,
        clusters: np.ndarray,
        spectral: SpectralSettings,
        whole_cls: np.ndarray | None,
    ) -> np.ndarray:
        """(Q, h, w) logits of one (3, h, w) crop, upsampled to the crop's size."""
        features = self.encoder.crop_features(crop, spectral)
        cls = features.cls if whole_cls is None else whole_cls
        logits, _, _ = crop_logits(
            features.patches,
            texts,
            cls,
            clusters,
            self.setting.mean_vector_weight,
            self.setting.global_semantics_weight,
            self.setting.topk,
        )
        grid = logits.T.reshape(len(texts), *features.grid)
        return self.encoder.upsample(grid, crop.shape[1:])
