"""Sa2VA end to end: one model answers with text and a mask per ``[SEG]`` token.

Sa2VA (ByteDance/Sa2VA-1B|4B|8B) ships its model code in its hub repository, so loading
it runs that code (``trust_remote_code=True``). pixelground never does that on its own:
the user must pass ``trust_remote_code=True`` explicitly. The model is used as its README
shows: ``AutoModel`` + ``AutoTokenizer``, then
``model.predict_forward(image=PIL, text="<image>" + prompt, tokenizer=tokenizer)``, which
returns ``{"prediction": str, "prediction_masks": [array (1, H, W), ...]}`` with one mask
per ``[SEG]`` in the prediction. The answer's ``<p>phrase</p> [SEG]`` markup is parsed by
:mod:`pixelground.backends.sa2va_parsing`.

Note: some releases of Sa2VA's remote code move inputs with ``.cuda()``; those run on
CUDA only, whatever device is chosen here.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np

from pixelground.backends.base import GroundedText, Phrase
from pixelground.backends.loading import load_pretrained, select_device, select_dtype
from pixelground.backends.sa2va_parsing import extra_masks, masks_per_seg, parse_seg_answer
from pixelground.core.errors import InputError, PixelgroundError, require
from pixelground.core.media import load_image

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
SEGMENT_PROMPT = "Please segment {expression}."
GCG_PROMPT = (
    "Could you please give me a brief description of the image? Please respond with "
    "interleaved segmentation masks for the corresponding parts of the answer."
)


class Sa2VABackend:
    """GroundingModel and ReferringSegmenter over Sa2VA's ``predict_forward``.

    Args:
        checkpoint: hub id or local directory of a Sa2VA checkpoint.
        device: "auto"/None, "cpu", "cuda", "cuda:N" or "mps".
        dtype: "float32", "float16", "bfloat16" or None (float16 on GPUs, float32 on CPU).
        trust_remote_code: must be True: Sa2VA runs model code from its checkpoint.

    Raises:
        PixelgroundError: ``trust_remote_code`` was not given.
        CheckpointMissingError: the checkpoint is neither local nor cached while offline.
    """

    def __init__(
        self,
        checkpoint: str = "ByteDance/Sa2VA-1B",
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if trust_remote_code is not True:
            raise PixelgroundError(
                f"Sa2VA ({checkpoint}) runs Python code shipped inside its checkpoint "
                "(its model class is not part of transformers), so loading it executes that "
                "code. Read it, then opt in explicitly: Sa2VABackend(..., trust_remote_code=True), "
                "or choose a sa2va-* preset, which is that opt-in"
            )
        transformers = require("transformers", "models")
        self.device = select_device(device)
        self.dtype = select_dtype(self.device, dtype)
        model = load_pretrained(
            transformers.AutoModel,
            checkpoint,
            dtype=self.dtype,
            trust_remote_code=True,
        )
        tokenizer = load_pretrained(
            transformers.AutoTokenizer, checkpoint, trust_remote_code=True, use_fast=False
        )
        processor = None
        if "processor" in inspect.signature(model.predict_forward).parameters:
            # Sa2VA releases built on Qwen-VL take their processor too.
            try:
                processor = load_pretrained(
                    transformers.AutoProcessor, checkpoint, trust_remote_code=True
                )
            except (OSError, ValueError, PixelgroundError):
                logger.info("no processor in %s; predict_forward gets none", checkpoint)
        self._setup(model.to(self.device).eval(), tokenizer, processor, checkpoint)

    @classmethod
    def from_model(
        cls, model: Any, tokenizer: Any, processor: Any = None, checkpoint: str = "in-memory"
    ) -> Sa2VABackend:
        """Wrap an already loaded Sa2VA model (anything with Sa2VA's ``predict_forward``)."""
        backend = cls.__new__(cls)
        backend.device = str(getattr(model, "device", "cpu"))
        backend.dtype = getattr(model, "dtype", None)
        backend._setup(model, tokenizer, processor, checkpoint)
        return backend

    def _setup(self, model: Any, tokenizer: Any, processor: Any, checkpoint: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.processor = processor
        self.info = {
            "class": "Sa2VABackend",
            "checkpoint": str(checkpoint),
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    def predict(self, image: np.ndarray, prompt: str) -> dict[str, Any]:
        """Sa2VA's raw answer: ``{"prediction": str, "prediction_masks": list | None}``.

        Args:
            image: (H, W, 3) uint8 RGB.
            prompt: the instruction; ``<image>`` is put in front unless already there.
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("the prompt is empty; ask something, e.g. 'Please segment the swan.'")
        from PIL import Image

        text = prompt.strip()
        if not text.startswith(IMAGE_TOKEN):
            text = IMAGE_TOKEN + text
        kwargs: dict[str, Any] = {"tokenizer": self.tokenizer}
        if self.processor is not None:
            kwargs["processor"] = self.processor
        torch = require("torch", "models")
        with torch.inference_mode():
            out = self.model.predict_forward(
                image=Image.fromarray(load_image(image).pixels), text=text, **kwargs
            )
        if not isinstance(out, dict) or "prediction" not in out:
            raise PixelgroundError(
                "Sa2VA's predict_forward returned no 'prediction'; this checkpoint's remote "
                "code is not a Sa2VA release pixelground supports"
            )
        return out

    def ground(self, image: np.ndarray, prompt: str) -> GroundedText:
        """Answer ``prompt``; every marked phrase gets the mask of the [SEG] it owns.

        Returns:
            GroundedText: clean text, phrases with spans, one (H, W) bool mask per phrase
            (empty where the phrase owns no [SEG] or the model gave no mask). A [SEG] that
            no phrase owns (e.g. "Sure, [SEG].") becomes a phrase with empty text and an
            empty span at the position where it stood, so no mask is lost.
        """
        pixels = load_image(image).pixels
        height, width = pixels.shape[:2]
        out = self.predict(pixels, prompt)
        raw = str(out.get("prediction", ""))
        masks = out.get("prediction_masks")
        parsed = parse_seg_answer(raw)
        per_seg = masks_per_seg(masks, parsed.seg_count, height, width)
        given = len(masks) if masks is not None else 0
        if given != parsed.seg_count:
            logger.warning(
                "Sa2VA gave %d masks for %d [SEG] tokens; %s",
                given,
                parsed.seg_count,
                f"dropped {extra_masks(masks, parsed.seg_count)} extra"
                if given > parsed.seg_count
                else "the [SEG] tokens without one get empty masks",
            )
        empty = np.zeros((height, width), dtype=bool)
        entries = [
            (
                p.start,
                Phrase(p.text, p.start, p.end),
                per_seg[p.seg_index] if p.seg_index is not None else empty,
            )
            for p in parsed.phrases
        ]
        entries += [(at, Phrase("", at, at), per_seg[index]) for index, at in parsed.unowned]
        entries.sort(key=lambda e: e[0])
        return GroundedText(
            text=parsed.text,
            phrases=[e[1] for e in entries],
            masks=[e[2] for e in entries],
            raw=raw,
        )

    def grounded_caption(self, image: np.ndarray) -> GroundedText:
        """A grounded caption (GCG) with Sa2VA's own GCG instruction."""
        return self.ground(image, GCG_PROMPT)

    def segment_expression(self, image: np.ndarray, expression: str) -> list[np.ndarray]:
        """Masks for ``"Please segment {expression}."``: every [SEG]'s non-empty mask."""
        if not isinstance(expression, str) or not expression.strip():
            raise InputError("the referring expression is empty; e.g. 'the black swan'")
        pixels = load_image(image).pixels
        height, width = pixels.shape[:2]
        out = self.predict(pixels, SEGMENT_PROMPT.format(expression=expression.strip()))
        parsed = parse_seg_answer(str(out.get("prediction", "")))
        given = out.get("prediction_masks")
        # Here every mask answers the expression: keep them all even if the text lost a [SEG].
        count = max(parsed.seg_count, len(given) if given is not None else 0)
        masks = masks_per_seg(given, count, height, width)
        return [m for m in masks if m.any()]
