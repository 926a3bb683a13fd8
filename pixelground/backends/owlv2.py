"""OWLv2 open-vocabulary detection over transformers' Owlv2ForObjectDetection.

OWLv2's processor pads the image bottom-right to a square before resizing, so the model's
normalised boxes are relative to the padded square. The processor's post-processing scales
them by the longer image side (undoing the padding); we then clip them to the image.
Every predicted box is scored against every query; it takes the query it scores best on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pixelground.backends.base import Detection
from pixelground.backends.vision_common import (
    as_rgb,
    clean_queries,
    describe,
    load_model,
    make_detections,
    to_model,
)
from pixelground.core.errors import require


class Owlv2Detector:
    """Text-prompted boxes from OWLv2 (e.g. google/owlv2-base-patch16-ensemble)."""

    def __init__(
        self,
        checkpoint: str = "google/owlv2-base-patch16-ensemble",
        device: str | None = None,
        dtype: str | None = None,
        nms_threshold: float | None = 0.5,
    ) -> None:
        """Load the model and processor.

        Args:
            checkpoint: hub id or local directory (model and processor saved together).
            device: None/"auto" picks cuda, then mps, then cpu.
            dtype: None/"auto" picks float16 on GPUs and float32 on cpu.
            nms_threshold: per-query non-maximum suppression IoU (OWLv2 predicts one box per
                patch, so near-duplicates are common); None keeps every box.
        """
        self._torch = require("torch", "models")
        self.loaded = load_model(
            "Owlv2ForObjectDetection", "Owlv2Processor", checkpoint, device, dtype
        )
        self.model = self.loaded.model
        self.processor = self.loaded.processor
        self.nms_threshold = nms_threshold
        self.info = describe(self, self.loaded)

    def detect(self, image: Any, queries: Sequence[str], threshold: float = 0.2) -> list[Detection]:
        """Boxes of anything matching one of the queries.

        Args:
            image: RGB uint8 (H, W, 3).
            queries: T query texts, e.g. ["a black swan", "water"].
            threshold: minimum confidence (sigmoid of the box-query logit) in [0, 1].

        Returns:
            Detections best first; boxes xyxy in pixels of ``image``; ``query_index`` in [0, T).

        Raises:
            InputError: no query or an empty query.
        """
        pixels = as_rgb(image)
        queries = clean_queries(queries)
        height, width = pixels.shape[:2]
        inputs = self.processor(
            text=[queries],
            images=pixels,
            return_tensors="pt",
            truncation=True,
            input_data_format="channels_last",
        )
        inputs = to_model(inputs, self.loaded)
        with self._torch.inference_mode():
            outputs = self.model(**inputs)
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        result = self.processor.post_process_grounded_object_detection(
            outputs=outputs, threshold=threshold, target_sizes=[(height, width)]
        )[0]
        return make_detections(
            result["boxes"].cpu().numpy(),
            result["scores"].cpu().numpy(),
            result["labels"].cpu().numpy(),
            queries,
            height,
            width,
            self.nms_threshold,
        )
