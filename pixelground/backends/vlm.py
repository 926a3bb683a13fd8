"""A general image-text-to-text chat model (SmolVLM / Idefics3, Qwen2.5-VL, ...).

Loaded with AutoModelForImageTextToText + AutoProcessor; prompts are built with the
processor's own chat template, so any family whose processor has one and accepts
``{"type": "image"}`` content works. Decoding is greedy (deterministic).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from pixelground.backends.loading import load_pretrained, select_device, select_dtype
from pixelground.core.errors import (
    DependencyMissingError,
    InputError,
    PixelgroundError,
    require,
)
from pixelground.core.media import load_image

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 256
CAPTION_PROMPTS = {
    False: "Describe this image in one sentence.",
    True: "Describe this image in detail.",
}
REGION_PROMPTS = {
    False: "What is the main object in this image? Answer with a short noun phrase.",
    True: "Describe the main object in this image in detail.",
}


class ChatVLM:
    """VLM and Captioner over a chat-templated image-text-to-text model.

    Args:
        checkpoint: hub id or local directory (e.g. HuggingFaceTB/SmolVLM-256M-Instruct,
            Qwen/Qwen2.5-VL-3B-Instruct).
        device: "auto"/None, "cpu", "cuda", "cuda:N" or "mps".
        dtype: "float32", "float16", "bfloat16" or None (float16 on GPUs, float32 on CPU).
        max_new_tokens: answer budget; None uses the checkpoint's generation config if it
            sets one, else 256.
        region_margin: context kept around a region's box when cropping it, as a fraction
            of the box size.
    """

    def __init__(
        self,
        checkpoint: str = "HuggingFaceTB/SmolVLM-256M-Instruct",
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int | None = None,
        region_margin: float = 0.1,
    ) -> None:
        transformers = require("transformers", "models")
        self.device = select_device(device)
        self.dtype = select_dtype(self.device, dtype)
        try:
            self.processor = load_pretrained(transformers.AutoProcessor, checkpoint)
        except ImportError as error:  # e.g. SmolVLM2's processor needs num2words
            raise DependencyMissingError(
                f"the processor of {checkpoint} needs a package that is not installed "
                f"({error}); pip install it and retry"
            ) from error
        if getattr(self.processor, "chat_template", None) is None:
            raise PixelgroundError(
                f"the processor of {checkpoint} has no chat template; use an instruction-tuned "
                "chat checkpoint (e.g. HuggingFaceTB/SmolVLM-256M-Instruct)"
            )
        model = load_pretrained(
            transformers.AutoModelForImageTextToText, checkpoint, dtype=self.dtype
        )
        self._setup(model.to(self.device).eval(), max_new_tokens, region_margin)
        self.info["checkpoint"] = str(checkpoint)

    @classmethod
    def from_model(
        cls,
        model: Any,
        processor: Any,
        max_new_tokens: int | None = None,
        region_margin: float = 0.1,
    ) -> ChatVLM:
        """Wrap an in-memory image-text-to-text model and its chat-templated processor.

        For models built here rather than loaded (e.g. real-size random-weight models in
        benchmarks); the model keeps its device and dtype.
        """
        backend = cls.__new__(cls)
        backend.processor = processor
        backend.device = str(model.device)
        backend.dtype = model.dtype
        backend._setup(model.eval(), max_new_tokens, region_margin)
        return backend

    def _setup(self, model: Any, max_new_tokens: int | None, region_margin: float) -> None:
        self.model = model
        configured = getattr(model.generation_config, "max_new_tokens", None)
        self.max_new_tokens = max_new_tokens or configured or DEFAULT_MAX_NEW_TOKENS
        self.region_margin = float(region_margin)
        self.info = {
            "class": "ChatVLM",
            "checkpoint": "in-memory",
            "model_class": type(model).__name__,
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    @staticmethod
    def messages(question: str, history: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
        """Chat messages: the image goes with the first user turn, then the turns in order."""
        turns = [*history, (question, None)]
        messages: list[dict[str, Any]] = []
        for i, (asked, answered) in enumerate(turns):
            content: list[dict[str, Any]] = [{"type": "image"}] if i == 0 else []
            content.append({"type": "text", "text": asked})
            messages.append({"role": "user", "content": content})
            if answered is not None:
                messages.append(
                    {"role": "assistant", "content": [{"type": "text", "text": answered}]}
                )
        return messages

    def chat(
        self, image: np.ndarray, question: str, history: Sequence[tuple[str, str]] = ()
    ) -> str:
        """Answer ``question`` about ``image`` after earlier (question, answer) turns.

        Args:
            image: (H, W, 3) uint8 RGB.
            question: the new question.
            history: earlier turns, oldest first.

        Returns:
            The answer text (special tokens removed, stripped).

        Raises:
            InputError: an empty question.
        """
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty; ask something, e.g. 'What is in the image?'")
        history = [(str(q), str(a)) for q, a in history]
        from PIL import Image

        prompt = self.processor.apply_chat_template(
            self.messages(question.strip(), history), add_generation_prompt=True
        )
        inputs = self.processor(
            text=prompt, images=[Image.fromarray(load_image(image).pixels)], return_tensors="pt"
        )
        return self._generate(inputs)

    def _generate(self, inputs: Any) -> str:
        torch = require("torch", "models")
        moved = {}
        for key, value in inputs.items():
            if hasattr(value, "to"):
                value = value.to(self.device)
                if torch.is_floating_point(value):
                    value = value.to(self.dtype)
            moved[key] = value
        with torch.inference_mode():
            out = self.model.generate(
                **moved, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1
            )
        new_tokens = out[0, moved["input_ids"].shape[1] :]
        return self.processor.decode(new_tokens, skip_special_tokens=True).strip()

    def caption(self, image: np.ndarray, detailed: bool = False) -> str:
        """A one-sentence or a detailed caption of the whole image."""
        return self.chat(image, CAPTION_PROMPTS[bool(detailed)])

    def describe_region(
        self, image: np.ndarray, box: Sequence[float], detailed: bool = False
    ) -> str:
        """Describe an xyxy pixel box: the crop (plus ``region_margin`` context) is shown alone.

        Raises:
            InputError: a box that is malformed or has no area inside the image.
        """
        pixels = load_image(image).pixels
        height, width = pixels.shape[:2]
        values = [float(v) for v in box]
        if len(values) != 4:
            raise InputError(f"a box is x0,y0,x1,y1; got {len(values)} numbers")
        x0, y0, x1, y1 = values
        pad_x, pad_y = (x1 - x0) * self.region_margin, (y1 - y0) * self.region_margin
        left, top = int(max(x0 - pad_x, 0)), int(max(y0 - pad_y, 0))
        right, bottom = int(min(np.ceil(x1 + pad_x), width)), int(min(np.ceil(y1 + pad_y), height))
        if right <= left or bottom <= top or x1 <= x0 or y1 <= y0:
            raise InputError(
                f"box {values} has no area inside the {width}x{height} image; give x0<x1, y0<y1"
            )
        return self.chat(pixels[top:bottom, left:right], REGION_PROMPTS[bool(detailed)])
