"""Monocular depth over transformers' AutoModelForDepthEstimation (Depth Anything, DPT).

Depth Anything and DPT (MiDaS) predict relative inverse depth: larger values are nearer.
``estimate`` returns that map resized to the image, so callers rank regions by it without
caring about the model's scale; ``nearer_is_larger`` says which way the values run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pixelground.backends.vision_common import as_rgb, describe, load_model, to_model
from pixelground.core.errors import require


class DepthEstimator:
    """Relative depth maps from a depth-estimation checkpoint.

    Args:
        checkpoint: hub id (e.g. ``depth-anything/Depth-Anything-V2-Small-hf``,
            ``Intel/dpt-hybrid-midas``) or a local directory written by ``save_pretrained``.
        device: None/"auto" picks cuda, then mps, then cpu.
        dtype: None/"auto" picks float16 on GPUs and float32 on cpu.
        nearer_is_larger: True for models predicting inverse depth (Depth Anything, DPT).
    """

    def __init__(
        self,
        checkpoint: str = "depth-anything/Depth-Anything-V2-Small-hf",
        device: str | None = None,
        dtype: str | None = None,
        nearer_is_larger: bool = True,
    ) -> None:
        self._torch = require("torch", "models")
        self.loaded = load_model(
            "AutoModelForDepthEstimation", "AutoImageProcessor", checkpoint, device, dtype
        )
        self.nearer_is_larger = nearer_is_larger
        self.info: dict[str, Any] = describe(self, self.loaded, nearer_is_larger=nearer_is_larger)

    def estimate(self, image: Any) -> np.ndarray:
        """(H, W) float32 relative depth of one image (see ``nearer_is_larger``)."""
        return self.estimate_batch([image])[0]

    def estimate_batch(self, images: Sequence[Any]) -> list[np.ndarray]:
        """One (H_i, W_i) float32 relative depth map per image, in one forward pass.

        Args:
            images: RGB images (arrays (H, W, 3) uint8, PIL images, paths or bytes).

        Returns:
            Depth maps at each image's own size.
        """
        pixels = [as_rgb(image) for image in images]
        if not pixels:
            return []
        inputs = self.loaded.processor(images=pixels, return_tensors="pt")
        with self._torch.inference_mode():
            outputs = self.loaded.model(**to_model(inputs, self.loaded))
        sizes = [tuple(p.shape[:2]) for p in pixels]
        processed = self.loaded.processor.post_process_depth_estimation(outputs, target_sizes=sizes)
        return [
            item["predicted_depth"].float().cpu().numpy().astype(np.float32) for item in processed
        ]
