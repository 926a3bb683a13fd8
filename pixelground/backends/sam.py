"""SAM and SAM2 prompted segmentation over transformers' SamModel and Sam2Model.

One image embedding per image: :meth:`embed` runs the image encoder once and keeps the
embedding of the last image (keyed by its content), so a grid of point prompts sent in
batches, or clicks added one at a time, reuse it. Prompts of the same kind (same number of
points, with or without a box) are decoded together, ``batch_size`` at a time.

Coordinates follow pixelground's convention (x right, y down, pixels of the original
image) and are scaled to the model's input frame exactly as SamProcessor / Sam2Processor
scale them. A mask prompt is turned into the low-resolution mask logits SAM takes as
``input_masks`` (+10 inside, -10 outside, SAM2's mask-as-logits scale), in the same frame
as the model's own low-resolution output.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelground.backends.base import MaskCandidates
from pixelground.backends.vision_common import as_rgb, describe, image_key, load_model
from pixelground.core.errors import require
from pixelground.core.prompts import Prompt, validate_prompts

#: Mask-prompt logits: SAM2 maps a binary mask to logits with scale 20 and bias -10.
MASK_LOGIT_SCALE = 20.0
MASK_LOGIT_BIAS = -10.0
#: Upper bound on full-resolution float masks held at once while post-processing.
POSTPROCESS_MASKS = 8


@dataclass
class ImageEmbedding:
    """The image encoder's output for one image, reusable for any number of prompts.

    Attributes:
        key: (shape, content digest) of the image it was computed from.
        features: SAM: a (1, C, h, w) tensor; SAM2: a list of three feature maps, finest first.
        original_size: (H, W) of the image.
        input_size: (h, w) of the image inside the model's square input frame, before padding.
        frame_size: side of the model's square input frame (e.g. 1024).
    """

    key: tuple
    features: Any
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    frame_size: int


class _PromptedSegmenter(ABC):
    """Shared logic of SamSegmenter and Sam2Segmenter; subclasses name the classes."""

    model_class = ""
    processor_class = ""

    def __init__(
        self,
        checkpoint: str,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 64,
        mask_threshold: float = 0.0,
    ) -> None:
        """Load the model and processor.

        Args:
            checkpoint: hub id or local directory (model and processor saved together).
            device: None/"auto" picks cuda, then mps, then cpu.
            dtype: None/"auto" picks float16 on GPUs and float32 on cpu.
            batch_size: prompts decoded per mask-decoder call.
            mask_threshold: logit above which a pixel is inside the mask.
        """
        self._torch = require("torch", "models")
        self.loaded = load_model(self.model_class, self.processor_class, checkpoint, device, dtype)
        self.model = self.loaded.model
        self.processor = self.loaded.processor
        self.batch_size = max(1, int(batch_size))
        self.mask_threshold = float(mask_threshold)
        self.info = describe(self, self.loaded)
        self._cache: ImageEmbedding | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ embedding

    def embed(self, image: Any) -> ImageEmbedding:
        """The image embedding of ``image``, computed once and cached for the last image.

        Args:
            image: RGB uint8 (H, W, 3) array (or anything :func:`load_image` reads).
        """
        pixels = as_rgb(image)
        key = image_key(pixels)
        with self._lock:
            if self._cache is not None and self._cache.key == key:
                return self._cache
        embedding = self._compute_embedding(pixels, key)
        with self._lock:
            self._cache = embedding
        return embedding

    def clear_cache(self) -> None:
        """Forget the cached image embedding."""
        with self._lock:
            self._cache = None

    def _compute_embedding(self, pixels: np.ndarray, key: tuple) -> ImageEmbedding:
        inputs = self.processor(
            images=pixels, return_tensors="pt", input_data_format="channels_last"
        )
        pixel_values = inputs["pixel_values"].to(self.loaded.device, self.loaded.dtype)
        with self._torch.inference_mode():
            features = self.model.get_image_embeddings(pixel_values)
        height, width = pixels.shape[:2]
        frame = int(pixel_values.shape[-1])
        return ImageEmbedding(
            key, features, (height, width), self._input_size(inputs, frame), frame
        )

    @abstractmethod
    def _input_size(self, inputs: Any, frame: int) -> tuple[int, int]:
        """(h, w) of the image inside the model's input frame, before padding."""

    # ------------------------------------------------------------------ segment

    def segment(
        self, image: Any, prompts: Sequence[Prompt], multimask: bool = False
    ) -> list[MaskCandidates]:
        """Segment one object per prompt.

        Args:
            image: RGB uint8 (H, W, 3).
            prompts: points (positive/negative), a box and/or a (H, W) mask each.
            multimask: return the 3 candidate masks per prompt (best first) instead of 1.

        Returns:
            One MaskCandidates per prompt, in order: masks (K, H, W) bool, scores (K,)
            predicted IoU in [0, 1], sorted best first.

        Raises:
            InputError: no prompt, or a prompt outside the image.
        """
        pixels = as_rgb(image)
        prompts = list(prompts)
        validate_prompts(prompts, *pixels.shape[:2])
        return self.segment_embedded(self.embed(pixels), prompts, multimask)

    def segment_embedded(
        self, embedding: ImageEmbedding, prompts: Sequence[Prompt], multimask: bool = False
    ) -> list[MaskCandidates]:
        """Like :meth:`segment` on an embedding from :meth:`embed`: the mask decoder only.

        Interactive sessions keep embeddings of several images and call this per click.

        Raises:
            InputError: no prompt, or a prompt outside the embedded image.
        """
        prompts = list(prompts)
        validate_prompts(prompts, *embedding.original_size)
        results: list[MaskCandidates | None] = [None] * len(prompts)
        for indices in _group_by_kind(prompts):
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                logits, scores = self._decode(embedding, [prompts[i] for i in chunk], multimask)
                for i, candidates in zip(
                    chunk, self._to_candidates(logits, scores, embedding), strict=True
                ):
                    results[i] = candidates
        return [r for r in results if r is not None]

    def _decode(
        self, embedding: ImageEmbedding, prompts: list[Prompt], multimask: bool
    ) -> tuple[Any, Any]:
        """Run prompt encoder + mask decoder on prompts of one kind.

        Returns:
            Low-resolution mask logits (P, K, h, w) and IoU predictions (P, K), float32.
        """
        torch = self._torch
        device, dtype = self.loaded.device, self.loaded.dtype
        with_mask = prompts[0].mask is not None
        count = len(prompts)
        points, labels = _point_arrays(prompts)
        scale = self._coordinate_scale(embedding)
        kwargs: dict[str, Any] = {"multimask_output": multimask}
        # Mask prompts change the dense embedding, which SAM adds per image: one batch row
        # per prompt. Otherwise all prompts share one image row (point batch of P).
        shape = (count, 1) if with_mask else (1, count)
        if points.shape[1] > 0:
            kwargs["input_points"] = torch.tensor(points * scale, dtype=dtype).reshape(
                *shape, -1, 2
            )
            kwargs["input_labels"] = torch.tensor(labels, dtype=torch.int64).reshape(*shape, -1)
        if prompts[0].box is not None:
            boxes = np.stack([p.box.as_array() for p in prompts]) * np.tile(scale, 2)
            kwargs["input_boxes"] = torch.tensor(boxes, dtype=dtype).reshape(*shape, 4)
        if with_mask:
            kwargs["input_masks"] = self._mask_inputs(prompts, embedding)
            if "input_points" not in kwargs and "input_boxes" not in kwargs:
                kwargs["input_points"] = torch.zeros((count, 1, 1, 2), dtype=dtype)
                kwargs["input_labels"] = -torch.ones((count, 1, 1), dtype=torch.int64)
        kwargs = {k: v.to(device) if hasattr(v, "to") else v for k, v in kwargs.items()}
        rows = count if with_mask else 1
        with torch.inference_mode():
            outputs = self.model(image_embeddings=self._expand(embedding.features, rows), **kwargs)
        logits = outputs.pred_masks.float().reshape(count, -1, *outputs.pred_masks.shape[-2:])
        scores = outputs.iou_scores.float().reshape(count, -1)
        return logits, scores

    def _coordinate_scale(self, embedding: ImageEmbedding) -> np.ndarray:
        """(sx, sy): original pixels to the model's input frame, as the processors scale them."""
        (height, width), (in_h, in_w) = embedding.original_size, embedding.input_size
        return np.array([in_w / width, in_h / height], dtype=np.float64)

    @abstractmethod
    def _expand(self, features: Any, rows: int) -> Any:
        """The cached features repeated (as views) over ``rows`` batch rows."""

    def _mask_inputs(self, prompts: list[Prompt], embedding: ImageEmbedding) -> Any:
        """(P, 1, m, m) mask logits in the low-resolution frame of the model's own masks."""
        torch = self._torch
        functional = torch.nn.functional
        side = int(self.model.prompt_encoder.image_embedding_size[0]) * 4
        in_h, in_w = embedding.input_size
        height = max(1, round(in_h * side / embedding.frame_size))
        width = max(1, round(in_w * side / embedding.frame_size))
        masks = torch.from_numpy(np.stack([p.mask for p in prompts]).astype(np.float32))
        soft = functional.interpolate(
            masks[:, None],
            size=(height, width),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        logits = torch.full((len(prompts), 1, side, side), MASK_LOGIT_BIAS)
        logits[:, :, :height, :width] = soft * MASK_LOGIT_SCALE + MASK_LOGIT_BIAS
        return logits.to(self.loaded.dtype)

    def _to_candidates(
        self, logits: Any, scores: Any, embedding: ImageEmbedding
    ) -> list[MaskCandidates]:
        """Upscale logits (P, K, h, w) to (H, W) bool masks with the processor, best first."""
        per_prompt = logits.shape[1]
        step = max(1, POSTPROCESS_MASKS // per_prompt)
        candidates = []
        for start in range(0, logits.shape[0], step):
            masks = self._postprocess(logits[start : start + step].cpu(), embedding)
            for row, prompt_scores in zip(
                masks, scores[start : start + step].cpu().numpy(), strict=True
            ):
                order = np.argsort(-prompt_scores, kind="stable")
                candidates.append(
                    MaskCandidates(
                        masks=np.ascontiguousarray(row[order]),
                        scores=np.clip(prompt_scores[order], 0.0, 1.0).astype(np.float32),
                    )
                )
        return candidates

    @abstractmethod
    def _postprocess(self, logits: Any, embedding: ImageEmbedding) -> np.ndarray:
        """(n, K, H, W) bool masks from (n, K, h, w) float32 logits on cpu."""


class SamSegmenter(_PromptedSegmenter):
    """Segment Anything (v1): transformers SamModel + SamProcessor.

    The image is resized so its longest side fits the model frame (1024) and padded
    bottom-right; masks are cropped back and resized to the image by the processor.
    """

    model_class = "SamModel"
    processor_class = "SamProcessor"

    def __init__(
        self,
        checkpoint: str = "facebook/sam-vit-base",
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 64,
        mask_threshold: float = 0.0,
    ) -> None:
        super().__init__(checkpoint, device, dtype, batch_size, mask_threshold)

    def _input_size(self, inputs: Any, frame: int) -> tuple[int, int]:
        height, width = (int(v) for v in inputs["reshaped_input_sizes"][0])
        return height, width

    def _expand(self, features: Any, rows: int) -> Any:
        return features.expand(rows, -1, -1, -1)

    def _postprocess(self, logits: Any, embedding: ImageEmbedding) -> np.ndarray:
        frame = embedding.frame_size
        masks = self.processor.post_process_masks(
            [logits],
            [embedding.original_size],
            [embedding.input_size],
            mask_threshold=self.mask_threshold,
            pad_size={"height": frame, "width": frame},
        )
        return masks[0].numpy().astype(bool)


class Sam2Segmenter(_PromptedSegmenter):
    """Segment Anything 2 (image mode): transformers Sam2Model + Sam2Processor.

    The image is resized (without keeping the aspect ratio) to the square model frame
    (1024); masks are resized back to the image by the processor.
    """

    model_class = "Sam2Model"
    processor_class = "Sam2Processor"

    def __init__(
        self,
        checkpoint: str = "facebook/sam2.1-hiera-tiny",
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 64,
        mask_threshold: float = 0.0,
    ) -> None:
        super().__init__(checkpoint, device, dtype, batch_size, mask_threshold)

    def _input_size(self, inputs: Any, frame: int) -> tuple[int, int]:
        return frame, frame

    def _expand(self, features: Any, rows: int) -> Any:
        return [f.expand(rows, -1, -1, -1) for f in features]

    def _postprocess(self, logits: Any, embedding: ImageEmbedding) -> np.ndarray:
        masks = self.processor.post_process_masks(
            [logits], [embedding.original_size], mask_threshold=self.mask_threshold
        )
        return masks[0].numpy().astype(bool)


def _group_by_kind(prompts: list[Prompt]) -> list[list[int]]:
    """Indices of prompts that can share a decoder call: same point count, box and mask use."""
    groups: dict[tuple[int, bool, bool], list[int]] = defaultdict(list)
    for index, prompt in enumerate(prompts):
        groups[(len(prompt.points), prompt.box is not None, prompt.mask is not None)].append(index)
    return list(groups.values())


def _point_arrays(prompts: list[Prompt]) -> tuple[np.ndarray, np.ndarray]:
    """(P, n, 2) float xy and (P, n) labels (1 positive, 0 negative) of prompts with n points."""
    count = len(prompts[0].points)
    points = np.array(
        [[(p.x, p.y) for p in prompt.points] for prompt in prompts], dtype=np.float64
    ).reshape(len(prompts), count, 2)
    labels = np.array(
        [[1 if p.positive else 0 for p in prompt.points] for prompt in prompts], dtype=np.int64
    ).reshape(len(prompts), count)
    return points, labels
