"""DinoKeys on DINOv2 checkpoints (the option beside DINO ViT-B/8), and CASS with one."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import pixelground  # noqa: E402
from pixelground.backends.dino import DinoKeys  # noqa: E402
from pixelground.core.errors import InputError  # noqa: E402

pytestmark = pytest.mark.slow


def save_dinov2(directory, registers: int) -> str:
    """A tiny Dinov2Model / Dinov2WithRegistersModel (width 32 as the tiny CLIP), 56-pixel side."""
    common = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=56,
        patch_size=14,
    )
    if registers:
        config = transformers.Dinov2WithRegistersConfig(num_register_tokens=registers, **common)
        model = transformers.Dinov2WithRegistersModel(config)
    else:
        model = transformers.Dinov2Model(transformers.Dinov2Config(**common))
    model.save_pretrained(directory)
    transformers.BitImageProcessor(
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
    ).save_pretrained(directory)
    return str(directory)


@pytest.mark.parametrize("registers", [0, 4])
def test_dinov2_keys_and_cass(tmp_path, shared_data, registers):
    directory = save_dinov2(tmp_path / "dinov2", registers)
    dino = DinoKeys(directory, device="cpu")
    assert dino.prefix == 1 + registers and dino.grid_for(224) == (4, 4)
    pixels = np.zeros((100, 80, 3), dtype=np.uint8)
    keys = dino.keys(pixels)  # resized to the fixed 56-pixel side, as the official DINOv2 path
    assert keys.grid == (4, 4) and keys.keys.shape == (2, 1 + registers + 16, 16)

    image = shared_data / "labelme_voc_instances" / "data_annotated" / "2011_000003.jpg"
    small = np.asarray(Image.open(image).convert("RGB").resize((224, 160)))
    pipe = pixelground.load("tiny", dino=directory)
    result = pipe.semseg(small, "person,dog", mode="cass", setting="voc20")
    assert sum(int(r.mask.sum()) for r in result.regions) == 224 * 160


def test_other_model_types_are_refused(tmp_path):
    directory = tmp_path / "bert"
    transformers.BertConfig(hidden_size=32, num_attention_heads=2).save_pretrained(directory)
    with pytest.raises(InputError, match="dino part takes"):
        DinoKeys(str(directory), device="cpu")
