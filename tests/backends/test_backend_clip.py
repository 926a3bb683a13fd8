"""ClipScorer over tiny CLIPModel and SiglipModel: embeddings, templates, dense patch features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pixelground.backends.base import Scorer
from pixelground.backends.clip import (
    ENSEMBLE_TEMPLATES,
    ClipScorer,
    _self_self_attention,
    _siglip_head_per_token,
)
from pixelground.backends.tiny.vision import build_tiny_clip, build_tiny_sam2, build_tiny_siglip
from pixelground.core.errors import CheckpointMissingError, InputError
from pixelground.core.media import load_image

BUILDERS = {"clip": build_tiny_clip, "siglip": build_tiny_siglip}


@pytest.fixture(scope="module")
def swan(swan_image_path: Path) -> np.ndarray:
    return load_image(swan_image_path).pixels


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    return {name: build(tmp_path_factory.mktemp(name)) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def scorer(request, tiny_dirs) -> ClipScorer:
    return ClipScorer(str(tiny_dirs[request.param]), device="cpu")


def _unit_norm(array: np.ndarray) -> bool:
    return np.allclose(np.linalg.norm(array, axis=-1), 1.0, atol=1e-5)


def test_picks_the_model_class_from_the_config(scorer):
    assert isinstance(scorer, Scorer)
    expected = {"clip": "CLIPModel", "siglip": "SiglipModel"}[scorer.kind]
    assert type(scorer.model).__name__ == expected
    assert scorer.info["model_type"] == scorer.kind
    assert scorer.logit_scale > 0
    if scorer.kind == "clip":
        assert scorer.logit_bias == 0.0


def test_image_embeddings_of_crops(scorer, swan):
    crops = [swan, swan[150:330, 300:600], swan[0:1, 0:1], swan[:, :20]]
    embeddings = scorer.embed_images(crops)
    assert embeddings.shape == (4, scorer.dim)
    assert embeddings.dtype == np.float32
    assert _unit_norm(embeddings)
    assert not np.allclose(embeddings[0], embeddings[1])
    single = scorer.embed_images([swan[150:330, 300:600]])
    np.testing.assert_allclose(single[0], embeddings[1], atol=1e-5)
    assert scorer.embed_images([]).shape == (0, scorer.dim)


def test_empty_crop_is_an_input_error(scorer, swan):
    with pytest.raises(InputError):
        scorer.embed_images([swan[10:10, 0:5]])


def test_text_embeddings_use_the_templates(scorer):
    texts = ["black swan", "water", "tree"]
    embedded = scorer.embed_texts(texts)
    assert embedded.shape == (3, scorer.dim) and _unit_norm(embedded)
    raw = scorer.embed_texts(texts, templates=("{}",))
    photo = scorer.embed_texts(["a photo of a black swan."], templates=("{}",))
    np.testing.assert_allclose(embedded[0], photo[0], atol=1e-5)
    assert not np.allclose(raw[0], embedded[0])
    assert scorer.embed_texts([]).shape == (0, scorer.dim)


def test_template_ensemble_is_the_normalised_mean(scorer):
    each = scorer.embed_texts([t.format("swan") for t in ENSEMBLE_TEMPLATES], templates=("{}",))
    mean = each.mean(axis=0)
    expected = mean / np.linalg.norm(mean)
    ensemble = scorer.embed_texts(["swan"], templates=ENSEMBLE_TEMPLATES)
    np.testing.assert_allclose(ensemble[0], expected, atol=1e-5)


def test_ensemble_option_and_bad_options(tiny_dirs):
    source = str(tiny_dirs["clip"])
    assert ClipScorer(source, ensemble=True).templates == ENSEMBLE_TEMPLATES
    with pytest.raises(InputError, match="exactly one"):
        ClipScorer(source, templates=("no slot",))
    with pytest.raises(InputError, match="dense_attention"):
        ClipScorer(source, dense_attention="maskclip")


def test_dense_patch_features_grid(scorer, swan):
    features = scorer.embed_patches(swan)
    # the shorter side (480) becomes 64 pixels: 64x114 -> 64x112 -> a 4x7 grid of 16-pixel patches
    assert features.shape == (4, 7, scorer.dim)
    assert features.dtype == np.float32
    assert _unit_norm(features)


def test_dense_size_sets_the_grid(tiny_dirs, swan):
    scorer = ClipScorer(str(tiny_dirs["clip"]), dense_size=128)
    assert scorer.embed_patches(swan).shape == (8, 14, scorer.dim)


def test_dense_attention_modes_differ(tiny_dirs, swan):
    source = str(tiny_dirs["clip"])
    outputs = {
        mode: ClipScorer(source, dense_attention=mode).embed_patches(swan)
        for mode in ("sclip", "clearclip", "vanilla")
    }
    assert not np.allclose(outputs["sclip"], outputs["clearclip"])
    assert not np.allclose(outputs["clearclip"], outputs["vanilla"])


def test_vanilla_mode_reproduces_the_model_attention(scorer):
    """The custom attention with q-k weights is the module's own attention."""
    attention = scorer.model.vision_model.encoder.layers[-1].self_attn
    hidden = torch.randn(2, 9, attention.embed_dim)
    with torch.inference_mode():
        ours = _self_self_attention(attention, hidden, "vanilla")
        theirs = attention(hidden)[0]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_self_self_attention_is_query_query_plus_key_key(scorer):
    attention = scorer.model.vision_model.encoder.layers[-1].self_attn
    hidden = torch.randn(1, 5, attention.embed_dim)
    heads, dim = attention.num_heads, attention.head_dim

    def split(x):
        return x.view(1, 5, heads, dim).transpose(1, 2)

    with torch.inference_mode():
        q, k = split(attention.q_proj(hidden)), split(attention.k_proj(hidden))
        v = split(attention.v_proj(hidden))
        qq = torch.softmax(q @ q.transpose(-1, -2) * attention.scale, dim=-1)
        kk = torch.softmax(k @ k.transpose(-1, -2) * attention.scale, dim=-1)
        expected = attention.out_proj(((qq + kk) @ v).transpose(1, 2).reshape(1, 5, -1))
        clear = attention.out_proj((qq @ v).transpose(1, 2).reshape(1, 5, -1))
        torch.testing.assert_close(_self_self_attention(attention, hidden, "sclip"), expected)
        torch.testing.assert_close(_self_self_attention(attention, hidden, "clearclip"), clear)


def test_siglip_patch_head_equals_the_pooling_head_on_one_token(tiny_dirs):
    scorer = ClipScorer(str(tiny_dirs["siglip"]))
    head = scorer.model.vision_model.head
    token = torch.randn(3, 1, scorer.dim)
    with torch.inference_mode():
        torch.testing.assert_close(
            _siglip_head_per_token(head, token)[:, 0], head(token), atol=1e-5, rtol=1e-4
        )


def test_not_a_clip_checkpoint(tmp_path):
    directory = build_tiny_sam2(tmp_path / "sam2")
    with pytest.raises(InputError, match="CLIP or SigLIP"):
        ClipScorer(str(directory))


def test_missing_checkpoint_directory(tmp_path):
    with pytest.raises(CheckpointMissingError):
        ClipScorer(str(tmp_path / "nothing-here"))
