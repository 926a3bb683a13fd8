"""Fixtures of the [SEG]-model tests: tiny generated data and tiny model configs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pixelground.core.masks import encode_rle

SIZE = 64


def _tiny_overrides() -> dict[str, Any]:
    """A model small enough to build and step in well under a second."""
    return {
        "image_size": SIZE,
        "mask_grid": 16,
        "vision_kwargs": {"hidden_sizes": [8, 16, 16, 16], "depths": [1, 1, 1, 1]},
        "lm_kwargs": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 128,
        },
        "lm_grid": 2,
        "video_lm_grid": 1,
        "video_frames": 2,
        "decoder_dim": 16,
        "decoder_heads": 2,
        "decoder_mlp_dim": 32,
        "max_length": 64,
        "max_new_tokens": 12,
    }


def _scene(rng: np.random.Generator, dx: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 64x64 image with a red square and a blue circle; their masks."""
    sx, sy = int(rng.integers(4, 24)) + dx, int(rng.integers(4, 40))
    cx, cy = int(rng.integers(40, 52)), int(rng.integers(10, 50))
    square = np.zeros((SIZE, SIZE), bool)
    square[sy : sy + 16, sx : sx + 16] = True
    yy, xx = np.mgrid[:SIZE, :SIZE]
    circle = (yy - cy) ** 2 + (xx - cx) ** 2 <= 8**2
    pixels = np.full((SIZE, SIZE, 3), 235, np.uint8)
    pixels[square] = (220, 40, 40)
    pixels[circle] = (40, 90, 225)
    return pixels, square, circle


def _turns(user: str, assistant: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def write_tiny_data(root: Path, scenes: int = 3, seed: int = 0) -> Path:
    """Write images and a fine-tuning JSONL with refer, no-target, GCG, region and video lines.

    Returns:
        The JSONL path.
    """
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, Any]] = []
    for i in range(scenes):
        pixels, square, circle = _scene(rng)
        name = f"images/{i:03d}.png"
        Image.fromarray(pixels).save(root / name)
        lines += [
            {
                "image": name,
                "conversation": _turns("Please segment the red square.", "[SEG]"),
                "masks": encode_rle(square),
            },
            {
                "image": name,
                "conversation": _turns("Please segment the green star.", "No such shape."),
            },
            {
                "image": name,
                "conversation": _turns(
                    "Please describe the image and segment every shape you mention.",
                    "<p>a red square</p> [SEG] left of <p>a blue circle</p> [SEG].",
                ),
                "masks": encode_rle(np.stack([square, circle])),
            },
            {
                "image": name,
                "conversation": _turns("Please describe the region <region>.", "a blue circle."),
                "regions": encode_rle(circle),
            },
        ]
    frames, masks = [], []
    for t in range(3):
        pixels, square, _ = _scene(np.random.default_rng(seed + 100), dx=8 * t)
        name = f"images/clip_{t}.png"
        Image.fromarray(pixels).save(root / name)
        frames.append(name)
        masks.append(encode_rle(square)[0])
    lines.append(
        {
            "frames": frames,
            "conversation": _turns("Please segment the red square in the video.", "[SEG]"),
            "masks": [masks],
        }
    )
    path = root / "data.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and the test machine's cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@contextmanager
def _answering(backend: Any, tokens: list[int]) -> Iterator[None]:
    """Make the backend's LM write ``tokens`` (ids), then stop."""
    import torch

    head = backend.model.lm.get_output_embeddings()
    calls = {"n": 0}

    def steer(_module: Any, _inputs: Any, output: Any) -> Any:
        forced = torch.full((output.shape[-1],), -1e4)
        step = calls["n"]
        forced[tokens[step] if step < len(tokens) else backend.model.ids.eos] = 1e4
        calls["n"] += 1
        return output + forced

    handle = head.register_forward_hook(steer)
    try:
        yield
    finally:
        handle.remove()


@pytest.fixture
def answers() -> Any:
    """``answers(backend, ids)``: a context in which the backend's LM writes ``ids``."""
    return _answering


@pytest.fixture
def tiny_overrides() -> dict[str, Any]:
    """SegModelConfig fields of a tiny model (a fresh dict per test)."""
    return _tiny_overrides()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny fine-tuning JSONL (13 lines) with its images."""
    return write_tiny_data(tmp_path_factory.mktemp("tiny_seg_data"))


@pytest.fixture
def tiny_image(tiny_data: Path):
    """The tiny data's first image: (64, 64, 3) uint8 pixels."""
    from pixelground.core.media import load_image

    return load_image(tiny_data.parent / "images" / "000.png").pixels


@pytest.fixture
def seeded_model(tiny_data: Path, tiny_overrides: dict[str, Any]):
    """Build a tiny SegTokenModel with options on top of the tiny architecture (seed 0; its
    word-level tokenizer from the tiny data): ``seeded_model(motion_query=True)``."""
    import torch

    from pixelground.models.config import SegModelConfig
    from pixelground.models.data import read_finetune_jsonl
    from pixelground.models.seg_model import SegTokenModel
    from pixelground.models.tokenizer import build_word_tokenizer

    def build(**options: Any) -> SegTokenModel:
        torch.manual_seed(0)
        tokenizer = build_word_tokenizer(read_finetune_jsonl(tiny_data).texts())
        return SegTokenModel(SegModelConfig.from_dict({**tiny_overrides, **options}), tokenizer)

    return build


@pytest.fixture(scope="session")
def tiny_model(tiny_data: Path):
    """A tiny random SegTokenModel whose vocabulary covers the tiny data."""
    import torch

    from pixelground.models.config import SegModelConfig
    from pixelground.models.data import read_finetune_jsonl
    from pixelground.models.seg_model import SegTokenModel
    from pixelground.models.tokenizer import build_word_tokenizer

    data = read_finetune_jsonl(tiny_data)
    tokenizer = build_word_tokenizer(data.texts())
    torch.manual_seed(0)
    return SegTokenModel(SegModelConfig.from_dict(_tiny_overrides()), tokenizer)


@pytest.fixture(scope="session")
def tiny_batch(tiny_data: Path, tiny_model):
    """One collated batch of every line of the tiny data."""
    from pixelground.models.data import SegDataset, collate, read_finetune_jsonl

    data = read_finetune_jsonl(tiny_data)
    dataset = SegDataset(data.samples, tiny_model.tokenizer, tiny_model.config, train=False)
    return collate([dataset[i] for i in range(len(dataset))], tiny_model.ids.pad)
