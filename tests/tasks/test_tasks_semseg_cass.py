"""``semseg --mode cass`` end to end on the tiny preset (real transformers classes, random
weights) with a real image, plus the pieces around the golden-tested math."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import pixelground
from pixelground.backends.cass import dino_input
from pixelground.core.errors import InputError
from pixelground.core.result import GroundedResult
from pixelground.serve.cli import main
from pixelground.tasks.cass import window_starts
from pixelground.tasks.semseg import OpenVocabSegmentation

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipe():
    return pixelground.load("tiny")


@pytest.fixture(scope="module")
def voc_image(shared_data):
    """A real 500x338 PASCAL VOC photo (labelme sample)."""
    return shared_data / "labelme_voc_instances" / "data_annotated" / "2011_000003.jpg"


def test_window_starts_follow_the_official_grid():
    assert window_starts(336, 224, 112) == [0, 112]
    assert window_starts(448, 224, 112) == [0, 112, 224]
    assert window_starts(500, 224, 112) == [0, 112, 224, 276]  # last crop flush with the edge
    assert window_starts(100, 224, 112) == [0]


def test_dino_input_is_the_official_inverse_normalisation():
    transforms = pytest.importorskip("torchvision.transforms")
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 1, (40, 56, 3)).astype(np.float32)
    mean, std = np.array([0.4815, 0.4578, 0.4082]), np.array([0.2686, 0.2613, 0.2758])
    crop = ((pixels - mean) / std).astype(np.float32).transpose(2, 0, 1).copy()
    official = transforms.Normalize(
        mean=[-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.255],
        std=[1 / 0.229, 1 / 0.224, 1 / 0.255],
    )(torch.from_numpy(crop))
    restored = (official.permute(1, 2, 0).numpy() * 255).astype("uint8")
    expected = np.asarray(Image.fromarray(restored).resize((40, 40)))
    np.testing.assert_array_equal(dino_input(crop), expected)


def test_dino_keys_are_the_last_blocks_keys(pipe, voc_image):
    dino = pipe.dino
    pixels = np.asarray(Image.open(voc_image).convert("RGB"))[:120, :100]
    keys = dino.keys(pixels)
    assert keys.grid == (15, 12) and keys.prefix == 1
    assert keys.keys.shape == (2, 1 + 15 * 12, 16)
    # the same keys through the model's own forward: k_proj of the last LayerNorm input
    captured = {}
    last = dino.model.layers[-1]
    hook = last.attention.k_proj.register_forward_hook(
        lambda module, args, out: captured.setdefault("k", out)
    )
    try:
        normalized = (pixels[:120, :96].astype(np.float32) / 255 - dino.mean) / dino.std
        tensor = torch.from_numpy(normalized.transpose(2, 0, 1).copy())[None]
        with torch.inference_mode():
            dino.model(tensor, interpolate_pos_encoding=True)
    finally:
        hook.remove()
    expected = captured["k"][0].reshape(-1, 2, 16).transpose(0, 1)
    assert torch.allclose(keys.keys, expected, atol=1e-5)


def test_cass_pipeline_on_a_real_image(pipe, voc_image):
    result = pipe.semseg(voc_image, "person, bottle, dog", mode="cass", setting="voc20")
    assert result.model["semseg_mode"] == "cass" and result.model["cass_setting"] == "voc20"
    assert result.model["classes"] == ["person", "bottle", "dog"]
    masks = np.stack([r.mask for r in result.regions])
    assert masks.shape[1:] == (338, 500)
    assert (masks.sum(axis=0) == 1).all()  # one label per pixel
    assert all(0 < r.score <= 1 and r.label in result.model["classes"] for r in result.regions)
    again = pipe.semseg(voc_image, "person, bottle, dog", mode="cass", setting="voc20")
    assert [r.label for r in again.regions] == [r.label for r in result.regions]
    for first, second in zip(result.regions, again.regions, strict=True):
        np.testing.assert_array_equal(first.mask, second.mask)  # seeded randomized SVD


def test_background_setting_and_class_files(pipe, voc_image):
    small = np.asarray(Image.open(voc_image).convert("RGB").resize((250, 169)))
    result = pipe.semseg(small, [["tv", "monitor"], "cat"], mode="cass", setting="voc21")
    assert result.model["classes"] == ["background", "tv", "cat"]
    official = pipe.semseg(small, "@city_scapes", mode="cass", setting="city_scapes")
    assert len(official.model["classes"]) == 19 and official.model["classes"][0] == "road"


def test_cass_needs_a_dino_of_clips_width(pipe):
    with pytest.raises(InputError, match="dino"):
        OpenVocabSegmentation(scorer=pipe.scorer, mode="cass")
    with pytest.raises(InputError, match="unknown CASS setting"):
        OpenVocabSegmentation(scorer=pipe.scorer, mode="cass", dino=pipe.dino, cass_setting="x")


def test_cli_semseg_cass(voc_image, tmp_path, capsys):
    out = tmp_path / "out.json"
    argv = ["semseg", str(voc_image), "--classes", "person,dog", "--mode", "cass"]
    assert main([*argv, "--setting", "city_scapes", "--preset", "tiny", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    result = GroundedResult.from_dict(data)
    assert data["model"]["semseg_mode"] == "cass" and data["model"]["cass_setting"] == "city_scapes"
    assert {r.label for r in result.regions} <= {"person", "dog"}
    assert main([*argv, "--setting", "nope", "--preset", "tiny"]) == 2
    assert "unknown CASS setting" in capsys.readouterr().err
