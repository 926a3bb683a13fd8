"""Real-size random-weight checkpoints of the ``default`` preset's models, for benchmarks.

Each model is built from the published architecture (same classes, same layer sizes, same
input resolution, so the same compute and memory as the released checkpoint), given random
seeded weights, and saved with its processor via ``save_pretrained`` into a cache
directory. The benchmark then loads those directories through ``pixelground.load``, the path
users take.

- Florence-2-base: ``real_size_config("florence2-base")`` (DaViT + 6+6-layer BART, d=768,
  vocabulary 51328) with a 768-pixel processor (577 image tokens).
- SAM2.1-hiera-tiny and CLIP ViT-B/16: ``build_real_size`` of pixelground's tiny package
  (SAM2's mask decoder edited for realistic masks and scores, see :func:`build_sam2`).
- Depth-Anything-V2-Small (the data engine's depth role; not in MODELS, built on request):
  written here, see :func:`build_depth`.
- SmolVLM-256M-Instruct: written here (pixelground has no real-size config for it):
  Idefics3 with a SigLIP-B/16 vision tower at 512 px (12 layers, d=768), pixel shuffle 4
  (64 tokens per 512-px tile), SmolLM2-135M (30 layers, d=576, 9 heads, 3 KV heads,
  vocabulary 49280, untied output head: 256.5M parameters in all), and a processor that
  resizes the longest edge to 2048 and tiles it in 512-px tiles plus a global view, as
  the released ``preprocessor_config.json`` does.

Tokenizers are pixelground's tiny offline BPEs (tokenising cost does not depend on the
vocabulary size). With random weights a decoder would emit random ids, mostly outside that
vocabulary, and nothing downstream of the text (phrase parsing, boxes, masks) would run
as it does with a trained model. So a few weights are edited, never resized (the compute
is unchanged), to make each decoder follow a fixed script of realistic answers:

- Florence-2 writes ``a black swan<loc>x4 in dark water<loc>x4 near green grass<loc>x4.``
  (the swan's true box, then the water's and the grass's): its caption is "a black swan
  in dark water near green grass", its phrase grounding gives boxes with high scores. Its
  output head is tied to its input embeddings, so the embedding rows are split in two:
  the first half of the dimensions carries the current token into the decoder (the
  decoder's input norm is zeroed on the second half), the second half is the read-out
  (the last decoder norm is zeroed on the first half), fitted to the decoder's own states
  along the script (teacher forced) so each token reads out its successor.
- SmolVLM answers "this is a black swan in dark water near green grass with two red cats
  and the dog." repeatedly: the script's input embeddings are scaled up so the current
  token dominates the last hidden state, and each word's (untied) output row is its
  predecessor's embedding direction.
- Every other output row is zero, end-of-sequence included, so answers run to the fixed
  ``max_new_tokens`` saved in the generation config (CAPTION_TOKENS, CHAT_TOKENS).
- Florence-2's generation config gets the released ``num_beams=3`` and
  ``no_repeat_ngram_size=3``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Bump when the built checkpoints change, so stale caches are rebuilt.
BUILD_VERSION = 5
SEED = 0
#: New tokens per answer (documented in the benchmark table).
CAPTION_TOKENS = 20
CHAT_TOKENS = 64
#: Florence-2's script: (words, box in pixels of the 854x480 benchmark image) pieces.
FLORENCE_SCRIPT = (
    ("a black swan", (127, 73, 509, 384)),
    ("in dark water", (0, 240, 854, 479)),
    ("near green grass", (600, 1, 850, 150)),
)
SMOLVLM_SCRIPT = "this is a black swan in dark water near green grass with two red cats and the dog"
#: SAM2 quality head: logits scaled by IOU_SPREAD and shifted so half pass 0.7 (build_sam2).
IOU_SPREAD = 60.0
IOU_CENTRE = 1.9
#: Input-embedding scale of scripted tokens and read-out scale (peaked, confident answers).
INPUT_SCALE = 20.0
READOUT_SCALE = 30.0

MODELS = ("florence2", "sam2", "clip", "smolvlm", "dino")
#: Role of the default preset each model fills.
ROLES = {
    "florence2": ("detector", "captioner"),
    "sam2": ("segmenter",),
    "clip": ("scorer",),
    "smolvlm": ("vlm",),
    "dino": ("dino",),
    "depth": ("depth",),
}


def default_cache() -> Path:
    """``$PIXELGROUND_CACHE/bench`` or ``~/.cache/pixelground/bench``."""
    root = os.environ.get("PIXELGROUND_CACHE") or Path.home() / ".cache" / "pixelground"
    return Path(root) / "bench"


def _words(tokenizer: Any, text: str) -> list[int]:
    """Ids of the words of ``text``; each must be one token of the tiny BPE."""
    vocab = tokenizer.get_vocab()
    missing = [w for w in text.split() if "Ġ" + w not in vocab]
    if missing:
        raise RuntimeError(f"words that are not single tokens of the tiny BPE: {missing}")
    return [vocab["Ġ" + w] for w in text.split()]


def florence_script(tokenizer: Any, width: int = 854, height: int = 480) -> list[int]:
    """Token ids of Florence-2's script (all distinct, so each has one successor)."""
    from pixelground.backends.florence2_parsing import box_to_location_tokens

    ids: list[int] = []
    for words, box in FLORENCE_SCRIPT:
        ids += _words(tokenizer, words)
        ids += tokenizer.convert_tokens_to_ids(
            tokenizer.tokenize(box_to_location_tokens(box, width, height))
        )
    ids.append(tokenizer.get_vocab()["."])
    if len(set(ids)) != len(ids):
        raise RuntimeError("Florence-2 script tokens must be distinct")
    return ids


def _fit_florence_readout(model: Any, processor: Any, script: list[int]) -> float:
    """Set the read-out half of the script rows from the decoder's states along the script.

    Returns:
        Fraction of script positions whose arg-max read-out is the scripted successor.
    """
    import numpy as np
    import torch
    from PIL import Image

    half = model.config.text_config.d_model // 2
    weight = model.get_output_embeddings().weight
    start = model.config.text_config.decoder_start_token_id
    pixels = np.random.default_rng(SEED).integers(0, 255, (480, 854, 3), dtype=np.uint8)
    inputs = processor(text="<CAPTION>", images=Image.fromarray(pixels), return_tensors="pt")
    decoder_ids = torch.tensor([[start, *script, *script]])
    targets = decoder_ids[0, 1:]
    with torch.no_grad():
        states = model.model(**inputs, decoder_input_ids=decoder_ids).last_hidden_state
        states = states[0, :-1, half:]
        mean = states.mean(0)
        centred = states - mean
        rows = torch.stack([centred[targets == t].mean(0) for t in script])
        unit = mean / mean.norm()
        rows -= (rows @ unit)[:, None] * unit[None]
        rows = rows / rows.norm(dim=1, keepdim=True) * READOUT_SCALE
        weight[script, half:] = rows
        chosen = torch.tensor(script)[(states @ rows.T).argmax(1)]
    return float((chosen == targets).float().mean())


def build_florence2(directory: Path) -> None:
    """Florence-2-base at real size, 768-pixel processor (577 image tokens), scripted."""
    import torch
    import transformers

    from pixelground.backends.tiny.language import florence2_processor, real_size_config

    processor = florence2_processor(image_size=768)
    tokenizer = processor.tokenizer
    config = real_size_config("florence2-base")
    config.image_token_id = tokenizer.image_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = transformers.Florence2ForConditionalGeneration(config).eval()
    script = florence_script(tokenizer)
    half = config.text_config.d_model // 2
    decoder = model.model.language_model.decoder
    last_norm = decoder.layers[-1].final_layer_norm
    weight = model.get_output_embeddings().weight  # tied to the input embeddings
    with torch.no_grad():
        carried = weight[script, :half].clone() * INPUT_SCALE
        weight.zero_()
        weight[script, :half] = carried
        for vector in (decoder.layernorm_embedding.weight, decoder.layernorm_embedding.bias):
            vector[half:] = 0.0
        for vector in (last_norm.weight, last_norm.bias):
            vector[:half] = 0.0
    for _ in range(2):  # the encoder also reads the edited rows: fit again on its new states
        accuracy = _fit_florence_readout(model, processor, script)
    if accuracy < 1.0:
        raise RuntimeError(f"Florence-2 script fit reads out {accuracy:.0%} of successors")
    model.generation_config.max_new_tokens = CAPTION_TOKENS
    model.generation_config.num_beams = 3
    model.generation_config.no_repeat_ngram_size = 3
    model.save_pretrained(directory)
    processor.save_pretrained(directory)


def smolvlm_256m_config(tokenizer: Any, image_token_id: int) -> Any:
    """Idefics3Config of HuggingFaceTB/SmolVLM-256M-Instruct (special ids from ``tokenizer``)."""
    import transformers

    text = dict(
        model_type="llama",
        vocab_size=49280,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
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
        vision_config=vision,
        text_config=text,
        scale_factor=4,
        image_token_id=image_token_id,
        tie_word_embeddings=False,
    )


def smolvlm_256m_processor() -> Any:
    """The tiny offline SmolVLM processor re-sized as the released one: 2048 / 512-px tiles."""
    import transformers

    from pixelground.backends.tiny.language import SMOLVLM_CHAT_TEMPLATE, smolvlm_processor

    tiny = smolvlm_processor()
    image_processor = transformers.Idefics3ImageProcessor(
        size={"longest_edge": 2048},
        max_image_size={"longest_edge": 512},
        do_image_splitting=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        resample=1,
    )
    return transformers.Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tiny.tokenizer,
        image_seq_len=64,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )


def build_smolvlm(directory: Path) -> None:
    """SmolVLM-256M-Instruct at real size (see the module docstring), scripted."""
    import torch
    import transformers

    processor = smolvlm_256m_processor()
    tokenizer = processor.tokenizer
    config = smolvlm_256m_config(tokenizer, tokenizer.convert_tokens_to_ids("<image>"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = transformers.Idefics3ForConditionalGeneration(config).eval()
    script = _words(tokenizer, SMOLVLM_SCRIPT) + [tokenizer.get_vocab()["."]]
    embeddings = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    with torch.no_grad():
        embeddings[script] *= INPUT_SCALE
        head.zero_()
        for position, token in enumerate(script):
            previous = embeddings[script[position - 1]]
            head[token] = previous / previous.norm() * READOUT_SCALE
    model.generation_config.max_new_tokens = CHAT_TOKENS
    model.save_pretrained(directory)
    processor.save_pretrained(directory)


def build_clip(directory: Path) -> None:
    """CLIP ViT-B/16 at real size (224-pixel processor)."""
    from pixelground.backends.tiny.vision import build_real_size

    build_real_size("clip", directory)


def build_depth(directory: Path) -> None:
    """Depth-Anything-V2-Small at real size: DINOv2-S/14 backbone (12 layers, d=384) and DPT
    head as in the released config, 518-pixel processor keeping the aspect ratio (multiples
    of 14), as the released ``preprocessor_config.json``."""
    import torch
    import transformers

    backbone = transformers.Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
        image_size=518,
        patch_size=14,
        out_features=["stage3", "stage6", "stage9", "stage12"],
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=384,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[48, 96, 192, 384],
        fusion_hidden_size=64,
        head_hidden_size=32,
        head_in_index=-1,
        patch_size=14,
        depth_estimation_type="relative",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = transformers.DepthAnythingForDepthEstimation(config).eval()
    model.save_pretrained(directory)
    processor = transformers.DPTImageProcessor(
        size={"height": 518, "width": 518},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    processor.save_pretrained(directory)


def build_dino(directory: Path) -> None:
    """DINO ViT-B/8 (facebook/dino-vitb8) at real size, for ``semseg --mode cass``."""
    from pixelground.backends.tiny.dino import build_dino as build

    build(directory, real=True)


def build_sam2(directory: Path) -> None:
    """SAM2.1-hiera-tiny at real size, with realistic mask shapes and quality scores.

    Two edits of the random mask decoder, shapes unchanged:

    - its high-resolution skip convolutions are zeroed and its two transposed convolutions
      made nearest-neighbour (the 4 taps of each kernel set to their mean): random ones
      paint a 4-pixel checkerboard over every mask (~90k runs per 854x480 mask, 40x a real
      mask's), which would inflate every RLE and mask-IoU cost downstream; masks now follow
      the image's regions (a few thousand runs, like real masks);
    - its quality head predicted IoU 0.50 +- 0.01 for every mask, below any quality
      threshold (entity segmentation keeps >= 0.7); its output layer is scaled and shifted
      so predictions spread over about 0.3-0.9 and about half the candidates pass 0.7.
    """
    import torch
    import transformers

    from pixelground.backends.tiny.vision import build_real_size

    build_real_size("sam2", directory)
    model = transformers.Sam2Model.from_pretrained(directory)
    decoder = model.mask_decoder
    head = decoder.iou_prediction_head.proj_out
    with torch.no_grad():
        for conv in (decoder.conv_s0, decoder.conv_s1):
            conv.weight.zero_()
            conv.bias.zero_()
        for conv in (decoder.upscale_conv1, decoder.upscale_conv2):
            conv.weight.copy_(conv.weight.mean(dim=(2, 3), keepdim=True).expand_as(conv.weight))
        head.weight.mul_(IOU_SPREAD)
        head.bias.mul_(IOU_SPREAD).add_(IOU_CENTRE)
    model.save_pretrained(directory)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "florence2": build_florence2,
    "sam2": build_sam2,
    "clip": build_clip,
    "smolvlm": build_smolvlm,
    "dino": build_dino,
    "depth": build_depth,
}


def ensure_model(name: str, cache: Path) -> Path:
    """The checkpoint directory of real-size model ``name`` under ``cache``, built if missing.

    Built in a temporary directory renamed into place, so an interrupted build leaves
    nothing half-written; a ``bench.json`` stamp with BUILD_VERSION marks it complete.
    """
    target = Path(cache) / name
    stamp = target / "bench.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("version") == BUILD_VERSION:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        BUILDERS[name](staging)
        (staging / "bench.json").write_text(json.dumps({"version": BUILD_VERSION, "name": name}))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def overrides(cache: Path, names: tuple[str, ...] = MODELS) -> dict[str, str]:
    """``pixelground.load`` overrides (role -> directory) for the models in ``names``."""
    out: dict[str, str] = {}
    for name in names:
        for role in ROLES[name]:
            out[role] = str(Path(cache) / name)
    return out
