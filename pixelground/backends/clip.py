"""Region-text scores and dense patch features from CLIP or SigLIP.

``ClipScorer`` loads transformers' CLIPModel or SiglipModel (chosen by the checkpoint's
``model_type``) and embeds image crops and texts into their joint space. Texts can be
wrapped in prompt templates and averaged over an ensemble of them, as CLIP's zero-shot
classifiers are built.

``embed_patches`` gives training-free dense features for open-vocabulary semantic
segmentation, as SCLIP, ClearCLIP and CASS do: all layers run as usual except the last,
whose attention is replaced by self-self ("correlative") attention, softmax(q qᵀ) +
softmax(k kᵀ) (SCLIP; ``"clearclip"`` uses q qᵀ alone), with the residual connection and
the feed-forward block dropped (ClearCLIP). The patch tokens then go through the final
layer norm and the visual projection into the text space. For SigLIP, whose image embedding
comes from an attention-pooling head, each patch goes through that head's value and output
projections and its MLP, i.e. the head with attention restricted to the patch itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from pixelground.backends.loading import load_pretrained
from pixelground.backends.vision_common import as_rgb, describe, load_model, to_model
from pixelground.core.errors import DependencyMissingError, InputError, require

#: Default prompt template; texts are embedded as "a photo of a {text}.".
DEFAULT_TEMPLATES = ("a photo of a {}.",)
#: A small ensemble of CLIP's ImageNet templates (the 7 its authors found best).
ENSEMBLE_TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)
DENSE_ATTENTION = ("sclip", "clearclip", "vanilla")
#: Text-embedding results kept per scorer (class lists repeat across images: CASS embeds
#: each name with 80 templates).
TEXT_MEMO_SIZE = 16
_CLASSES = {"clip": ("CLIPModel", "CLIPProcessor"), "siglip": ("SiglipModel", "SiglipProcessor")}


class ClipScorer:
    """Image-text similarity with CLIP (e.g. openai/clip-vit-base-patch16) or SigLIP."""

    def __init__(
        self,
        checkpoint: str = "openai/clip-vit-base-patch16",
        device: str | None = None,
        dtype: str | None = None,
        templates: Sequence[str] | None = None,
        ensemble: bool = False,
        dense_attention: str = "sclip",
        dense_size: int | None = None,
        batch_size: int = 32,
    ) -> None:
        """Load the model and processor.

        Args:
            checkpoint: hub id or local directory of a CLIP or SigLIP model and processor.
            device: None/"auto" picks cuda, then mps, then cpu.
            dtype: None/"auto" picks float16 on GPUs and float32 on cpu.
            templates: prompt templates with one ``{}``; default "a photo of a {}.".
            ensemble: use ENSEMBLE_TEMPLATES (ignored when ``templates`` is given).
            dense_attention: last-layer attention of :meth:`embed_patches`: "sclip"
                (q-q + k-k), "clearclip" (q-q) or "vanilla" (q-k, as the model was trained).
            dense_size: shorter image side, in pixels, for :meth:`embed_patches`; default the
                model's training resolution (224 for ViT-B/16).
            batch_size: images or texts per forward pass.

        Raises:
            InputError: a checkpoint that is neither CLIP nor SigLIP, or a bad option.
        """
        self._torch = require("torch", "models")
        transformers = require("transformers", "models")
        if dense_attention not in DENSE_ATTENTION:
            choices = ", ".join(DENSE_ATTENTION)
            raise InputError(f"unknown dense_attention {dense_attention!r}; use one of {choices}")
        config = load_pretrained(transformers.AutoConfig, str(checkpoint))
        self.kind = config.model_type
        if self.kind not in _CLASSES:
            raise InputError(
                f"checkpoint {checkpoint} is a {self.kind!r} model; the scorer takes CLIP or SigLIP"
            )
        try:
            self.loaded = load_model(*_CLASSES[self.kind], checkpoint, device, dtype)
        except ImportError as error:  # SiglipTokenizer needs sentencepiece and protobuf
            raise DependencyMissingError(
                f"loading {checkpoint} needs {error.name or 'a package'}: "
                "pip install sentencepiece protobuf"
            ) from error
        self.model = self.loaded.model
        self.processor = self.loaded.processor
        self.templates = tuple(templates or (ENSEMBLE_TEMPLATES if ensemble else DEFAULT_TEMPLATES))
        for template in self.templates:
            if template.count("{}") != 1:
                raise InputError(f"prompt template {template!r} needs exactly one {{}}")
        vision = config.vision_config
        self.patch_size = int(vision.patch_size)
        self.dense_size = int(dense_size or vision.image_size)
        self.dense_attention = dense_attention
        self.batch_size = max(1, int(batch_size))
        self.info = describe(self, self.loaded, model_type=self.kind)
        self._text_memo: dict[tuple, np.ndarray] = {}

    # ------------------------------------------------------------------ scales

    @property
    def logit_scale(self) -> float:
        """Multiplier of cosine similarities to logits (exp of the learned log-scale)."""
        return float(self.model.logit_scale.detach().float().exp().reshape(-1)[0])

    @property
    def logit_bias(self) -> float:
        """Added to scaled similarities (SigLIP's learned bias; 0 for CLIP)."""
        bias = getattr(self.model, "logit_bias", None)
        return 0.0 if bias is None else float(bias.detach().float().reshape(-1)[0])

    @property
    def dim(self) -> int:
        """D, the dimension of the joint embedding space."""
        config = self.model.config
        return int(getattr(config, "projection_dim", None) or config.vision_config.hidden_size)

    # ------------------------------------------------------------------ embeddings

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        """(N, D) L2-normalised float32 embeddings of N RGB images (e.g. region crops).

        Raises:
            InputError: an empty (zero-size) image.
        """
        arrays = [as_rgb(image) for image in images]
        for index, array in enumerate(arrays):
            if array.shape[0] == 0 or array.shape[1] == 0:
                raise InputError(f"image {index} is empty ({array.shape[1]}x{array.shape[0]})")
        chunks = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in range(0, len(arrays), self.batch_size):
            inputs = self.processor(
                images=arrays[start : start + self.batch_size],
                return_tensors="pt",
                input_data_format="channels_last",
            )
            with self._torch.inference_mode():
                output = self.model.get_image_features(**to_model(inputs, self.loaded))
            chunks.append(_normalized(_pooled(output)))
        return np.concatenate(chunks)

    def embed_texts(
        self, texts: Sequence[str], templates: Sequence[str] | None = None
    ) -> np.ndarray:
        """(T, D) L2-normalised float32 embeddings of T texts, averaged over prompt templates.

        The last TEXT_MEMO_SIZE results are remembered (same texts and templates: no
        forward pass).

        Args:
            texts: class names or phrases.
            templates: override the scorer's templates for this call; ``("{}",)`` embeds
                the raw texts.
        """
        templates = tuple(templates or self.templates)
        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t).strip() for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        key = (tuple(texts), templates)
        if key in self._text_memo:
            return self._text_memo[key].copy()
        prompts = [template.format(text) for text in texts for template in templates]
        embedded = self._embed_prompts(prompts).reshape(len(texts), len(templates), -1)
        mean = embedded.mean(axis=1)
        result = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        if len(self._text_memo) >= TEXT_MEMO_SIZE:
            self._text_memo.pop(next(iter(self._text_memo)))
        self._text_memo[key] = result
        return result.copy()

    def _embed_prompts(self, prompts: list[str]) -> np.ndarray:
        chunks = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            if self.kind == "siglip":  # trained on max-length padding without attention mask
                max_length = int(self.model.config.text_config.max_position_embeddings)
                tokens = self.processor.tokenizer(
                    batch,
                    padding="max_length",
                    max_length=max_length,
                    truncation=True,
                    return_tensors="pt",
                )
                inputs = {"input_ids": tokens["input_ids"]}
            else:
                inputs = self.processor.tokenizer(
                    batch, padding=True, truncation=True, return_tensors="pt"
                )
            with self._torch.inference_mode():
                output = self.model.get_text_features(**to_model(inputs, self.loaded))
            chunks.append(_normalized(_pooled(output)))
        return np.concatenate(chunks)

    def embed_patches(self, image: Any) -> np.ndarray:
        """Dense (h, w, D) L2-normalised patch embeddings in the text space.

        The image is resized so its shorter side is ``dense_size`` (both sides rounded to
        multiples of the patch size, position embeddings interpolated); patch (i, j) covers
        rows [i*H/h, (i+1)*H/h) and columns [j*W/w, (j+1)*W/w) of the image.

        Args:
            image: RGB uint8 (H, W, 3).
        """
        torch = self._torch
        pixel_values = self._dense_pixels(as_rgb(image))
        grid = (
            pixel_values.shape[-2] // self.patch_size,
            pixel_values.shape[-1] // self.patch_size,
        )
        with torch.inference_mode():
            tokens = self._dense_tokens(pixel_values)
        features = tokens[0].float().cpu().numpy().reshape(*grid, -1)
        return _normalized(features)

    def _dense_pixels(self, pixels: np.ndarray) -> Any:
        """(1, 3, h*p, w*p) normalised pixel values for the dense pass."""
        height, width = pixels.shape[:2]
        scale = self.dense_size / min(height, width)
        size = [
            max(1, round(side * scale / self.patch_size)) * self.patch_size
            for side in (width, height)
        ]
        resized = np.asarray(
            Image.fromarray(pixels).resize(tuple(size), Image.BICUBIC), dtype=np.float32
        )
        image_processor = self.processor.image_processor
        mean = np.asarray(image_processor.image_mean, dtype=np.float32)
        std = np.asarray(image_processor.image_std, dtype=np.float32)
        normalized = (resized / 255.0 - mean) / std
        tensor = self._torch.from_numpy(normalized.transpose(2, 0, 1).copy())[None]
        return tensor.to(self.loaded.device, self.loaded.dtype)

    def _dense_tokens(self, pixel_values: Any) -> Any:
        """(1, h*w, D) patch features of the modified last layer, projected to the text space."""
        vision = self.model.vision_model
        hidden = vision.embeddings(pixel_values, interpolate_pos_encoding=True)
        if self.kind == "clip":
            hidden = vision.pre_layrnorm(hidden)
        layers = vision.encoder.layers
        for layer in layers[:-1]:
            hidden = layer(hidden, None)
        last = layers[-1]
        hidden = _self_self_attention(
            last.self_attn, last.layer_norm1(hidden), self.dense_attention
        )
        hidden = vision.post_layernorm(hidden)
        if self.kind == "clip":
            return self.model.visual_projection(hidden[:, 1:])
        return _siglip_head_per_token(vision.head, hidden)


def _self_self_attention(attention: Any, hidden: Any, mode: str) -> Any:
    """SCLIP/ClearCLIP attention of a CLIP/SigLIP attention module on (B, N, C) tokens."""
    import torch

    batch, count, _ = hidden.shape
    shape = (batch, count, attention.num_heads, attention.head_dim)
    query = attention.q_proj(hidden).view(shape).transpose(1, 2)
    key = attention.k_proj(hidden).view(shape).transpose(1, 2)
    value = attention.v_proj(hidden).view(shape).transpose(1, 2)
    scale = attention.scale

    def softmax(a: Any, b: Any) -> Any:
        return torch.softmax((a @ b.transpose(-1, -2)) * scale, dim=-1)

    if mode == "sclip":
        weights = softmax(query, query) + softmax(key, key)
    elif mode == "clearclip":
        weights = softmax(query, query)
    else:
        weights = softmax(query, key)
    output = (weights @ value).transpose(1, 2).reshape(batch, count, -1)
    return attention.out_proj(output)


def _siglip_head_per_token(head: Any, hidden: Any) -> Any:
    """SigLIP's attention-pooling head applied to each token alone: (B, N, C) -> (B, N, C)."""
    import torch

    dim = hidden.shape[-1]
    attention = head.attention
    value_weight = attention.in_proj_weight[2 * dim :]
    value_bias = attention.in_proj_bias[2 * dim :] if attention.in_proj_bias is not None else None
    value = torch.nn.functional.linear(hidden, value_weight, value_bias)
    pooled = attention.out_proj(value)
    return pooled + head.mlp(head.layernorm(pooled))


def _pooled(output: Any) -> np.ndarray:
    """(N, D) float32 numpy from a get_*_features output (a tensor or a model output)."""
    tensor = output if hasattr(output, "detach") else output.pooler_output
    return tensor.detach().float().cpu().numpy()


def _normalized(array: np.ndarray) -> np.ndarray:
    """L2-normalise along the last axis (zero vectors stay zero)."""
    array = np.asarray(array, dtype=np.float32)
    return array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-12)
