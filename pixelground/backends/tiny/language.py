"""Tiny random-weight language-side models of the real transformers classes.

Each builder writes a model AND its processor with ``save_pretrained`` into a directory,
so tests and the ``tiny`` preset load them back through the backends' normal
constructors (``from_pretrained`` on a local directory, the path users take). Nothing is
downloaded: tokenizers are byte-level BPEs trained here, in milliseconds, on a few
sentences (every byte is in the alphabet, so any text tokenizes), with the special and
markup tokens the real processors expect added on top.

The weights are random, so outputs are random text. Deliberate changes to make tests
meaningful: the end-of-sequence row of the output projection is zeroed, so decoding
almost never stops early and always exercises the output parsers up to
``max_new_tokens`` (24, set in the saved generation config); Florence-2's last decoder
norm is scaled up so its token distributions are peaked, as a trained model's are, and
its boxes get scores that pass usual detection thresholds.

``real_size_config(name)`` returns configs with the published architectures, for speed
and memory benchmarks at real size (random weights, same compute).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pixelground.core.errors import UnknownNameError, require

SEED = 0
TINY_MAX_NEW_TOKENS = 24
CONFIDENCE = 30.0

#: Sentences the tiny BPEs are trained on (task prompts and caption-like words).
CORPUS = (
    "What does the image describe?",
    "Describe in detail what is shown in the image.",
    "Describe with a paragraph what is shown in the image.",
    "Locate the phrases in the caption: a black swan swims on the water",
    "Locate the objects with category name in the image.",
    "What does the region describe? What is the region? What is the polygon mask of region",
    "Locate a black swan in the image with mask",
    "User: What is in this image? Assistant: a black swan swims on the dark water.",
    "a person, a dog and two cats sit on the green grass near the red car.",
)

FLORENCE_MARKUP = (
    "<od>", "</od>", "<ocr>", "</ocr>", "<cap>", "</cap>", "<ncap>", "</ncap>", "<dcap>",
    "</dcap>", "<grounding>", "</grounding>", "<seg>", "</seg>", "<sep>", "<region_cap>",
    "</region_cap>", "<region_to_desciption>", "</region_to_desciption>", "<proposal>",
    "</proposal>", "<poly>", "</poly>", "<and>",
)  # fmt: skip

FLORENCE_PARSE_TASKS = (
    "ocr", "phrase_grounding", "pure_text", "description_with_bboxes",
    "description_with_polygons", "polygons", "bboxes", "description_with_bboxes_or_polygons",
)  # fmt: skip

#: A few of the phrases the released Florence-2 processors refuse to ground.
FLORENCE_BANNED_GROUNDING = ("it", "they", "them", "this", "that", "the image", "image")

SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

QWEN_VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _bpe(special_tokens: Sequence[str], vocab_size: int = 420) -> tuple[dict, list]:
    """Train a byte-level BPE on CORPUS: (vocab, merges) for a transformers tokenizer."""
    tokenizers = require("tokenizers", "models")
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(CORPUS) * 2,
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(special_tokens),
        show_progress=False,
    )
    merges = [tuple(m) for m in json.loads(bpe._tokenizer.to_str())["model"]["merges"]]
    return bpe.get_vocab(), merges


@contextmanager
def _seeded() -> Iterator[None]:
    """Seed torch's global RNG for deterministic weights without leaking the seed."""
    torch = require("torch", "models")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        yield


def _finish(model: Any, eos_ids: Sequence[int]) -> None:
    """Zero the output rows of end tokens (random decoding then runs on) and cap decoding.

    The saved generation config sets ``max_new_tokens`` = TINY_MAX_NEW_TOKENS, so the
    backends (which honour a checkpoint's own budget) stay fast on tiny models.
    """
    torch = require("torch", "models")
    with torch.no_grad():
        for token_id in eos_ids:
            model.get_output_embeddings().weight[token_id].zero_()
    model.generation_config.max_new_tokens = TINY_MAX_NEW_TOKENS


def _make_confident(norm: Any, factor: float = CONFIDENCE) -> None:
    """Scale the last decoder norm so next-token distributions are peaked (a confident model).

    Florence-2 box scores come from the probabilities of location tokens; a flat random
    model scores every box near 0 and nothing downstream of a detection threshold runs.
    """
    torch = require("torch", "models")
    with torch.no_grad():
        norm.weight.mul_(factor)
        norm.bias.mul_(factor)


# --------------------------------------------------------------------------- Florence-2


def florence2_tokenizer() -> Any:
    """A BART (byte-level BPE) tokenizer with Florence-2's location, markup and image tokens."""
    transformers = require("transformers", "models")
    vocab, merges = _bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer = transformers.BartTokenizer(
        vocab=vocab, merges=merges, extra_special_tokens={"image_token": "<image>"}
    )
    tokenizer.add_tokens([f"<loc_{i}>" for i in range(1000)] + list(FLORENCE_MARKUP))
    return tokenizer


def florence2_processor(image_size: int = 64, image_seq_length: int | None = None) -> Any:
    """A working Florence2Processor built offline.

    Args:
        image_size: square input side in pixels (768 for the released models).
        image_seq_length: image tokens the vision tower yields; default
            ``(image_size // 32) ** 2 + 1`` (DaViT's stride 32 grid plus one pooled token).

    Returns:
        Florence2Processor with a CLIP image processor (ImageNet mean/std, no crop).
    """
    transformers = require("transformers", "models")
    seq = image_seq_length if image_seq_length is not None else (image_size // 32) ** 2 + 1
    side = {"height": image_size, "width": image_size}
    image_processor = transformers.CLIPImageProcessor(
        size=side,
        crop_size=side,
        do_center_crop=False,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        image_seq_length=seq,
    )
    post = {task: {} for task in FLORENCE_PARSE_TASKS}
    post["phrase_grounding"] = {"banned_grounding_tokens": list(FLORENCE_BANNED_GROUNDING)}
    return transformers.Florence2Processor(
        image_processor=image_processor, tokenizer=florence2_tokenizer(), post_processor_config=post
    )


def _florence2_text_config(tokenizer: Any, **sizes: Any) -> dict[str, Any]:
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.eos_token_id,
        "forced_eos_token_id": tokenizer.eos_token_id,
    }
    return {"model_type": "bart", **ids, **sizes}


def build_florence2(directory: Path) -> Path:
    """Write a tiny Florence2ForConditionalGeneration + Florence2Processor to ``directory``.

    64x64 input, 4 DaViT stages of 1 block (dims 8..32), a 1+1-layer BART of width 32.
    """
    transformers = require("transformers", "models")
    directory = Path(directory)
    processor = florence2_processor(image_size=64)
    tokenizer = processor.tokenizer
    vision = dict(
        depths=[1, 1, 1, 1],
        embed_dim=[8, 16, 24, 32],
        num_heads=[1, 1, 1, 2],
        num_groups=[1, 1, 1, 2],
        window_size=2,
        projection_dim=32,
        max_temporal_embeddings=4,
        max_position_embeddings=16,
        drop_path_rate=0.0,
    )
    text = _florence2_text_config(
        tokenizer,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        vocab_size=len(tokenizer),
        max_position_embeddings=256,
    )
    config = transformers.Florence2Config(
        vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id
    )
    with _seeded():
        model = transformers.Florence2ForConditionalGeneration(config).eval()
    _finish(model, [tokenizer.eos_token_id])
    _make_confident(model.model.language_model.decoder.layers[-1].final_layer_norm)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


REAL_SIZES = ("florence2-base", "florence2-large", "smolvlm-256m")


def real_size_config(name: str) -> Any:
    """The published architecture of a released model, as a config (for benchmarks).

    Args:
        name: ``"florence2-base"`` (0.23B parameters) or ``"florence2-large"`` (0.77B):
            microsoft/Florence-2-base|large as converted to transformers' native classes
            (florence-community/Florence-2-*): DaViT vision tower, BART encoder-decoder,
            vocabulary 51289 + ``<image>`` padded to a multiple of 64, image token 51289.
            ``"smolvlm-256m"`` (0.256B): HuggingFaceTB/SmolVLM-256M-Instruct, Idefics3 with
            a SigLIP-B/16 512 px vision tower, pixel shuffle 4, and SmolLM2-135M.

    Returns:
        Florence2Config or Idefics3Config. ``real_size_model`` pairs it with a processor
        built offline.

    Raises:
        UnknownNameError: an unknown name.
    """
    if name.startswith("florence2-"):
        return _florence2_real_config(name)
    if name == "smolvlm-256m":
        transformers = require("transformers", "models")
        text = dict(
            model_type="llama",
            vocab_size=49280,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            max_position_embeddings=8192,
            rope_theta=100000.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
        )
        vision = dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=512,
            patch_size=16,
        )
        return transformers.Idefics3Config(
            text_config=text, vision_config=vision, scale_factor=4, image_token_id=49190
        )
    raise UnknownNameError(f"no real-size config {name!r}; known: {', '.join(REAL_SIZES)}")


def _florence2_real_config(name: str) -> Any:
    transformers = require("transformers", "models")
    sizes = {
        "florence2-base": ((128, 256, 512, 1024), (4, 8, 16, 32), 768, 6, 12, 3072),
        "florence2-large": ((256, 512, 1024, 2048), (8, 16, 32, 64), 1024, 12, 16, 4096),
    }
    if name not in sizes:
        raise UnknownNameError(f"no real-size config {name!r}; known: {', '.join(REAL_SIZES)}")
    dims, heads, d_model, layers, attn_heads, ffn = sizes[name]
    vision = dict(
        depths=[1, 1, 9, 1],
        embed_dim=list(dims),
        num_heads=list(heads),
        num_groups=list(heads),
        window_size=12,
        projection_dim=d_model,
        max_temporal_embeddings=100,
        max_position_embeddings=50,
    )
    text = {
        "model_type": "bart",
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "decoder_start_token_id": 2,
        "forced_eos_token_id": 2,
        "d_model": d_model,
        "encoder_layers": layers,
        "decoder_layers": layers,
        "encoder_attention_heads": attn_heads,
        "decoder_attention_heads": attn_heads,
        "encoder_ffn_dim": ffn,
        "decoder_ffn_dim": ffn,
        "vocab_size": 51328,
        "max_position_embeddings": 1024,
        "scale_embedding": False,
    }
    return transformers.Florence2Config(
        vision_config=vision, text_config=text, image_token_id=51289
    )


def real_size_model(name: str) -> tuple[Any, Any]:
    """A random-weight model at a released model's real size, with a processor built offline.

    Same compute as the released model (for speed and memory benchmarks); outputs are
    not meaningful. The offline tokenizer is small, so the config's special token ids
    are pointed at its tokens; vocabulary and every layer keep their real sizes.

    Args:
        name: one of REAL_SIZES.

    Returns:
        (model on CPU in float32, processor): wrap them with ``Florence2Backend.from_model``
        or ``ChatVLM.from_model``.
    """
    transformers = require("transformers", "models")
    config = real_size_config(name)
    if name.startswith("florence2-"):
        processor = florence2_processor(image_size=768)
        config.image_token_id = processor.tokenizer.image_token_id
        model_class = transformers.Florence2ForConditionalGeneration
    else:
        processor = smolvlm_processor(longest_edge=2048, tile=512, image_seq_len=64)
        tokenizer = processor.tokenizer
        config.image_token_id = tokenizer.convert_tokens_to_ids("<image>")
        config.text_config.bos_token_id = tokenizer.bos_token_id
        config.text_config.eos_token_id = tokenizer.eos_token_id
        config.text_config.pad_token_id = tokenizer.pad_token_id
        model_class = transformers.Idefics3ForConditionalGeneration
    with _seeded():
        model = model_class(config).eval()
    model.generation_config.eos_token_id = config.get_text_config().eos_token_id
    return model, processor


# --------------------------------------------------------------------------- SmolVLM


def smolvlm_processor(longest_edge: int = 64, tile: int = 32, image_seq_len: int = 4) -> Any:
    """An Idefics3Processor (SmolVLM v1's class) with a GPT-2 style tokenizer and chat template.

    Args:
        longest_edge: images are resized to this longest edge (2048 for SmolVLM-256M).
        tile: then split into square tiles of this side plus a global view (512).
        image_seq_len: image tokens per tile (64 for SmolVLM-256M).
    """
    transformers = require("transformers", "models")
    vocab, merges = _bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tokenizer = transformers.GPT2Tokenizer(
        vocab=vocab,
        merges=merges,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    specials = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    specials += [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    added = [transformers.AddedToken(s, special=True, normalized=False) for s in specials]
    tokenizer.add_special_tokens({"additional_special_tokens": added})
    image_processor = transformers.Idefics3ImageProcessor(
        size={"longest_edge": longest_edge},
        max_image_size={"longest_edge": tile},
        do_image_splitting=True,
    )
    return transformers.Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )


def build_smolvlm(directory: Path) -> Path:
    """Write a tiny Idefics3ForConditionalGeneration (SmolVLM v1) + processor to ``directory``."""
    transformers = require("transformers", "models")
    directory = Path(directory)
    processor = smolvlm_processor()
    tokenizer = processor.tokenizer
    text = dict(
        model_type="llama",
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    config = transformers.Idefics3Config(
        vision_config=vision,
        text_config=text,
        scale_factor=2,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    with _seeded():
        model = transformers.Idefics3ForConditionalGeneration(config).eval()
    _finish(model, [tokenizer.eos_token_id])
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


# --------------------------------------------------------------------------- Qwen2.5-VL


def qwen2_5_vl_processor() -> Any:
    """A Qwen2_5_VLProcessor with a Qwen-style BPE tokenizer and chat template (28 px tiles)."""
    transformers = require("transformers", "models")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab, merges = _bpe(specials)
    tokenizer = transformers.Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    added = [transformers.AddedToken(s, special=True, normalized=False) for s in QWEN_VISION_TOKENS]
    tokenizer.add_special_tokens({"additional_special_tokens": added})
    pixels = {"min_pixels": 28 * 28, "max_pixels": 56 * 56}
    image_processor = transformers.Qwen2VLImageProcessor(
        patch_size=14, temporal_patch_size=2, merge_size=2, **pixels
    )
    video_processor = transformers.Qwen2VLVideoProcessor(
        patch_size=14, temporal_patch_size=2, merge_size=2, **pixels
    )
    return transformers.Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN_CHAT_TEMPLATE,
    )


def build_qwen2_5_vl(directory: Path) -> Path:
    """Write a tiny Qwen2_5_VLForConditionalGeneration + processor to ``directory``."""
    transformers = require("transformers", "models")
    directory = Path(directory)
    processor = qwen2_5_vl_processor()
    tokenizer = processor.tokenizer
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_VISION_TOKENS}
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        rope_parameters={"rope_type": "default", "mrope_section": [4, 6, 6]},
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        depth=1,
        hidden_size=32,
        intermediate_size=32,
        num_heads=2,
        out_hidden_size=64,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=56,
        fullatt_block_indexes=[0],
    )
    config = transformers.Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    with _seeded():
        model = transformers.Qwen2_5_VLForConditionalGeneration(config).eval()
    _finish(model, [tokenizer.eos_token_id])
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


TINY_LANGUAGE_BUILDERS: dict[str, Callable[[Path], Path]] = {
    "florence2": build_florence2,
    "smolvlm": build_smolvlm,
    "qwen2_5_vl": build_qwen2_5_vl,
}
