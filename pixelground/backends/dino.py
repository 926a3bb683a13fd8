"""DINO keys for CASS: the last block's attention keys of a self-supervised ViT.

``DinoKeys`` loads transformers' ViTModel (facebook/dino-vitb8, the paper's model),
Dinov2Model (facebook/dinov2-base) or Dinov2WithRegistersModel
(facebook/dinov2-with-registers-base, the official code's DINOv2 option), chosen by the
checkpoint's ``model_type``, from a hub id or a local directory. It runs every block but
the last, then the last block's first LayerNorm and key projection: the keys the
official code takes from the last block's qkv.

Input preparation follows the official DINO wrapper: an RGB uint8 image, ToTensor and
ImageNet normalisation (the processor's mean and std), cropped to a multiple of the patch
size; DINOv2 checkpoints get the image resized to their square training side (518), as
the official ``dinov2_vitb14`` path, whose grid is fixed at 37 x 37.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pixelground.backends.loading import load_pretrained
from pixelground.backends.vision_common import as_rgb, describe, load_model
from pixelground.core.errors import InputError, require

_CLASSES = {
    "vit": "ViTModel",
    "dinov2": "Dinov2Model",
    "dinov2_with_registers": "Dinov2WithRegistersModel",
}


@dataclass
class Keys:
    """Keys of the last block of one image.

    Attributes:
        keys: (heads, prefix + rows * cols, head_dim) tensor; prefix tokens first (CLS,
            then registers), patches row-major.
        grid: (rows, cols) patch grid.
        prefix: number of leading non-patch tokens.
    """

    keys: Any
    grid: tuple[int, int]
    prefix: int


class DinoKeys:
    """Last-block keys of DINO ViT-B/8 (default), DINOv2 or DINOv2 with registers."""

    def __init__(
        self,
        checkpoint: str = "facebook/dino-vitb8",
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        """Load the model and image processor.

        Args:
            checkpoint: hub id or local directory of a ViT (DINO), DINOv2 or DINOv2 with
                registers checkpoint.
            device: None/"auto" picks cuda, then mps, then cpu.
            dtype: None/"auto" picks float16 on GPUs and float32 on cpu.

        Raises:
            InputError: a checkpoint of another model type.
        """
        self._torch = require("torch", "models")
        transformers = require("transformers", "models")
        config = load_pretrained(transformers.AutoConfig, str(checkpoint))
        self.kind = config.model_type
        if self.kind not in _CLASSES:
            raise InputError(
                f"checkpoint {checkpoint} is a {self.kind!r} model; the dino part takes "
                "ViT (DINO), DINOv2 or DINOv2-with-registers checkpoints"
            )
        self.loaded = load_model(
            _CLASSES[self.kind], "AutoImageProcessor", checkpoint, device, dtype
        )
        self.model = self.loaded.model
        self.patch_size = int(config.patch_size)
        self.num_heads = int(config.num_attention_heads)
        self.prefix = 1 + int(getattr(config, "num_register_tokens", 0) or 0)
        self.fixed_side = int(config.image_size) if self.kind != "vit" else None
        processor = self.loaded.processor
        self.mean = np.asarray(processor.image_mean, dtype=np.float32)
        self.std = np.asarray(processor.image_std, dtype=np.float32)
        self.info = describe(self, self.loaded, model_type=self.kind)

    @property
    def width(self) -> int:
        """heads x head_dim of the keys."""
        return int(self.model.config.hidden_size)

    def grid_for(self, side: int) -> tuple[int, int]:
        """(rows, cols) of the patch grid of a square ``side`` x ``side`` input."""
        side = self.fixed_side or side
        return side // self.patch_size, side // self.patch_size

    def keys(self, image: Any) -> Keys:
        """Keys of the last block for an RGB image (array, PIL image or path).

        Raises:
            InputError: an image smaller than one patch.
        """
        pixels = as_rgb(image)
        if self.fixed_side:
            side = self.fixed_side
            pixels = np.asarray(Image.fromarray(pixels).resize((side, side), Image.BICUBIC))
        rows, cols = (s // self.patch_size for s in pixels.shape[:2])
        if rows == 0 or cols == 0:
            raise InputError(
                f"image of {pixels.shape[1]}x{pixels.shape[0]} is smaller than a patch"
            )
        cropped = pixels[: rows * self.patch_size, : cols * self.patch_size]
        normalized = (cropped.astype(np.float32) / 255.0 - self.mean) / self.std
        tensor = self._torch.from_numpy(normalized.transpose(2, 0, 1).copy())[None]
        tensor = tensor.to(self.loaded.device, self.loaded.dtype)
        with self._torch.inference_mode():
            keys = self._last_keys(tensor)
        return Keys(keys=keys, grid=(rows, cols), prefix=self.prefix)

    def _last_keys(self, pixel_values: Any) -> Any:
        """(heads, tokens, head_dim) keys of the last block."""
        model = self.model
        if self.kind == "vit":
            hidden = model.embeddings(pixel_values, interpolate_pos_encoding=True)
        else:
            hidden = model.embeddings(pixel_values)
        layers = model.layers if self.kind == "vit" else model.encoder.layer
        for layer in layers[:-1]:
            hidden = layer(hidden)
        last = layers[-1]
        norm = last.layernorm_before if self.kind == "vit" else last.norm1
        keys = last.attention.k_proj(norm(hidden))[0]
        return keys.reshape(keys.shape[0], self.num_heads, -1).transpose(0, 1)
