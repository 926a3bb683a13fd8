"""CASS image side: CLIP patch features with the spectral last block, per crop.

``CassEncoder`` joins a ClipScorer (transformers' CLIPModel) and a DinoKeys backend and
gives, for one crop of a CLIP-normalised image, what the official ``encode_image`` gives:
the dense patch features of the last block rebuilt by spectral attention
(:mod:`pixelground.backends.cass_spectral`) and the crop's ordinary CLS embedding. It also
prepares images as the official test pipeline does (resize, CLIP normalisation) and
upsamples logits as the official code (bilinear, align_corners False).

Differences from the official pipeline, both small: the test-time resize uses PIL's
bilinear filter (mmcv uses OpenCV's), and DINO position embeddings of inputs that are not
224 x 224 (voc21's whole image) are interpolated by transformers' ViT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pixelground.backends.cass_spectral import Projections, SpectralSettings, spectral_attention
from pixelground.backends.clip import ClipScorer
from pixelground.backends.dino import DinoKeys
from pixelground.core.errors import InputError, require

#: ImageNet normalisation the official code inverts to rebuild DINO's input; its blue std
#: is 0.255, not 0.225 (a typo in the official code, kept: it is what the results used).
#: As the official torchvision Normalize(mean=-m/s, std=1/s), held in float32 as it does.
INVERSE_MEAN = np.array(
    [-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.255), strict=True)], np.float32
)
INVERSE_STD = np.array([1 / s for s in (0.229, 0.224, 0.255)], np.float32)
MAX_LONG_SIDE = 2048


@dataclass
class CropFeatures:
    """What one crop gives.

    Attributes:
        patches: (rows * cols, D) float32 raw patch features (before L2 normalisation),
            row-major.
        cls: (D,) float32 raw CLS embedding of the crop (unmodified last block).
        grid: (rows, cols).
    """

    patches: np.ndarray
    cls: np.ndarray
    grid: tuple[int, int]


class CassEncoder:
    """CLIP + DINO for CASS; ``scorer`` must be a CLIP (not SigLIP) ClipScorer.

    Args:
        scorer: the CLIP backend (its model, processor and text embeddings).
        dino: the DINO backend; its width (heads x head_dim) must equal CLIP's.
        dino_half: cast DINO keys to float16 as the official forward pass does.
    """

    def __init__(self, scorer: ClipScorer, dino: DinoKeys, dino_half: bool = True) -> None:
        self._torch = require("torch", "models")
        if scorer.kind != "clip":
            raise InputError("CASS needs a CLIP scorer (SigLIP has no CLS token to rebuild)")
        vision = scorer.model.vision_model
        width = int(vision.config.hidden_size)
        if dino.width != width:
            raise InputError(
                f"CASS needs DINO and CLIP of the same width; got DINO {dino.width} and "
                f"CLIP {width} (use facebook/dino-vitb8 with a ViT-B CLIP)"
            )
        self.scorer, self.dino, self.dino_half = scorer, dino, dino_half
        self.vision = vision
        self.patch_size = scorer.patch_size
        processor = scorer.processor.image_processor
        self.mean = np.asarray(processor.image_mean, dtype=np.float32)
        self.std = np.asarray(processor.image_std, dtype=np.float32)
        attention = vision.encoder.layers[-1].self_attn
        self.projections = Projections(
            attention.k_proj.weight,
            attention.k_proj.bias,
            attention.v_proj.weight,
            attention.v_proj.bias,
            attention.out_proj.weight,
            attention.out_proj.bias,
            int(attention.num_heads),
        )

    def prepare(self, pixels: np.ndarray, short_side: int) -> np.ndarray:
        """(3, H', W') float32 CLIP-normalised image, resized as the official test pipeline.

        The scale is min(2048 / long side, short_side / short side) (it may enlarge), sides
        rounded to the nearest pixel.
        """
        height, width = pixels.shape[:2]
        scale = min(MAX_LONG_SIDE / max(height, width), short_side / min(height, width))
        size = (max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5)))
        resized = np.asarray(Image.fromarray(pixels).resize(size, Image.BILINEAR), np.float32)
        normalized = (resized / 255.0 - self.mean) / self.std
        return np.ascontiguousarray(normalized.transpose(2, 0, 1))

    def crop_features(self, crop: np.ndarray, settings: SpectralSettings) -> CropFeatures:
        """Patch features (spectral last block) and CLS embedding of a (3, h, w) crop."""
        torch = self._torch
        keys = self.dino.keys(dino_input(crop))
        dino_keys = keys.keys.half() if self.dino_half else keys.keys.float()
        grid = (crop.shape[1] // self.patch_size, crop.shape[2] // self.patch_size)
        with torch.inference_mode():
            hidden = self._before_last(crop)
            last = self.vision.encoder.layers[-1]
            cls = self._project(last(hidden, None)[:, 0])
            tokens = last.layer_norm1(hidden)[0]
            attended = spectral_attention(
                tokens,
                self.projections,
                grid,
                dino_keys.to(tokens.device),
                keys.grid,
                settings,
                dino_prefix=keys.prefix,
            )
            patches = self._project(attended)
        return CropFeatures(_numpy(patches), _numpy(cls)[0], grid)

    def cls_embedding(self, image: np.ndarray) -> np.ndarray:
        """(D,) raw CLS embedding of a (3, h, w) CLIP-normalised image (the global vector)."""
        with self._torch.inference_mode():
            hidden = self._before_last(image)
            cls = self._project(self.vision.encoder.layers[-1](hidden, None)[:, 0])
        return _numpy(cls)[0]

    def _project(self, tokens: Any) -> Any:
        return self.scorer.model.visual_projection(self.vision.post_layernorm(tokens))

    def _before_last(self, image: np.ndarray) -> Any:
        """(1, 1 + N, width) hidden states entering the last block."""
        loaded = self.scorer.loaded
        pixel_values = self._torch.from_numpy(image)[None].to(loaded.device, loaded.dtype)
        hidden = self.vision.pre_layrnorm(self._embed(pixel_values))
        for layer in self.vision.encoder.layers[:-1]:
            hidden = layer(hidden, None)
        return hidden

    def _embed(self, pixel_values: Any) -> Any:
        """Patch + class embeddings with the official position-embedding interpolation."""
        torch = self._torch
        embeddings = self.vision.embeddings
        patches = embeddings.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = embeddings.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        tokens = torch.cat([cls, patches], dim=1)
        position = embeddings.position_embedding.weight
        if tokens.shape[1] != position.shape[0]:
            position = _interpolate_positions(position, pixel_values.shape[-2:], self.patch_size)
        return tokens + position.to(tokens.dtype)[None]

    def upsample(self, logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """(C, h, w) -> (C, *size) float32, bilinear with align_corners False (torch)."""
        tensor = self._torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))[None]
        out = self._torch.nn.functional.interpolate(
            tensor, size=size, mode="bilinear", align_corners=False
        )
        return out[0].numpy()


def dino_input(crop: np.ndarray) -> np.ndarray:
    """(s, s, 3) uint8 DINO input of a (3, h, w) CLIP-normalised crop, s = min(h, w).

    As the official code: ImageNet-style inverse normalisation (blue std 0.255),
    times 255, truncated to uint8, resized to a square with PIL's default filter.
    """
    restored = (crop.transpose(1, 2, 0) - INVERSE_MEAN) / INVERSE_STD
    image = Image.fromarray((restored * 255).astype(np.uint8))
    side = min(crop.shape[1:])
    return np.asarray(image.resize((side, side)))


def _interpolate_positions(position: Any, image_size: Any, patch_size: int) -> Any:
    """Official (DINO-style) bicubic resize of CLIP's square position grid to the image's.

    The scale factor is (rows + 0.1) / side, (cols + 0.1) / side, used as given
    (recompute_scale_factor False), as the official ``interpolate_pos_encoding``.
    """
    import torch

    side = int(math.sqrt(position.shape[0] - 1))
    rows, cols = (int(s) // patch_size for s in image_size)
    grid = position[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = torch.nn.functional.interpolate(
        grid.float(),
        mode="bicubic",
        scale_factor=((rows + 0.1) / side, (cols + 0.1) / side),
        align_corners=False,
        recompute_scale_factor=False,
    )
    if resized.shape[-2:] != (rows, cols):
        raise InputError(
            f"position embeddings resized to {tuple(resized.shape[-2:])}, not {rows, cols}"
        )
    flat = resized.permute(0, 2, 3, 1).reshape(rows * cols, -1).to(position.dtype)
    return torch.cat([position[:1], flat], dim=0)


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()
