"""CASS spectral attention against the official code's golden stages (both cases).

The fixtures (../shared/data/golden/cass, README there) hold every stage of the official
``custom_attn`` on seeded synthetic inputs: a square case (voc21, singular values
rescaled) and a non-square one (voc20, not rescaled), with randomized and exact SVD.
"""

import numpy as np
import pytest
from paths import SHARED_DATA

torch = pytest.importorskip("torch")
spectral = pytest.importorskip("pixelground.backends.cass_spectral")

GOLDEN = SHARED_DATA / "golden" / "cass"
CASES = ["spectral_attention", "spectral_attention_nonsquare"]
#: Stages that do not depend on the SVD, with their tolerance (max abs difference).
DETERMINISTIC = {
    "clip_key": 1e-6,
    "dino_key": 0.0,
    "dino_key_resized": 1e-6,
    "dino_key_final": 1e-6,
    "omega": 1e-7,  # closed form vs the official float32 convolution: 6e-8
    "clip_adj": 1e-6,
    "dino_adj": 1e-6,
    "clip_eigvals": 1e-12,
    "dino_eigvals": 1e-12,
    "cost_matrix": 1e-6,
    "w_d": 1e-6,
}
#: Stages after the SVD; randomized ones match too (same seed, same draws, same order).
SVD_STAGES = {
    "svd_s": 1e-10,
    "s_scaled": 1e-10,
    "dino_lowrank": 1e-10,
    "dino_sparse_adj": 1e-9,
    "combined_attn": 1e-6,
    "attn_logits": 1e-6,  # omega's 6e-8 plus float32 rounding: measured 4.8e-7
    "attn_weights": 1e-6,
    "attn_output": 1e-6,
}


def run_case(name: str, svd: str) -> tuple[dict, dict]:
    """Load a golden case and run our spectral attention on its inputs."""
    data = dict(np.load(GOLDEN / f"{name}.npz"))
    width = int(data["param__embed_dim"])
    heads = int(data["param__num_heads"])
    weight = torch.from_numpy(data["in_proj_weight"])
    bias = torch.from_numpy(data["in_proj_bias"])
    projections = spectral.Projections(
        key_weight=weight[width : 2 * width],
        key_bias=bias[width : 2 * width],
        value_weight=weight[2 * width :],
        value_bias=bias[2 * width :],
        out_weight=torch.from_numpy(data["out_proj_weight"]),
        out_bias=torch.from_numpy(data["out_proj_bias"]),
        num_heads=heads,
    )
    dataset = str(data["param__dataset"])
    settings = spectral.SpectralSettings(
        gaussian_std=float(data["param__gaussian_std"]),
        rescale=spectral.rescales_for(dataset),
        svd=svd,
        seed=0,
    )
    stages: dict = {}
    dino_keys = torch.from_numpy(data["dino_attn"])[1, 0]  # (H, 1 + dino_N, hd)
    output = spectral.spectral_attention(
        torch.from_numpy(data["x"])[:, 0],
        projections,
        tuple(int(v) for v in data["param__n_patches"]),
        dino_keys,
        tuple(int(v) for v in data["param__dino_n_patches"]),
        settings,
        stages=stages,
    )
    assert output.shape == (data["x"].shape[0] - 1, width)
    return data, stages


def max_diff(ours, expected: np.ndarray) -> float:
    ours = ours.detach().cpu().numpy() if hasattr(ours, "detach") else np.asarray(ours)
    assert ours.shape == tuple(expected.squeeze().shape) or ours.shape == expected.shape
    return float(np.abs(ours.reshape(expected.shape).astype(np.float64) - expected).max())


@pytest.mark.parametrize("name", CASES)
def test_deterministic_stages_match(name):
    data, stages = run_case(name, "exact")
    for key, tolerance in DETERMINISTIC.items():
        assert max_diff(stages[key], data[key]) <= tolerance, key
    np.testing.assert_array_equal(stages["row_ind"], data["row_ind"])
    np.testing.assert_array_equal(stages["col_ind"], data["col_ind"])


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("svd", ["exact", "randomized"])
def test_svd_stages_match(name, svd):
    data, stages = run_case(name, svd)
    prefix = "exact__" if svd == "exact" else "rand__"
    for key, tolerance in SVD_STAGES.items():
        assert max_diff(stages[key], data[prefix + key]) <= tolerance, key


def test_rescaling_follows_the_dataset():
    assert not spectral.rescales_for("voc20") and not spectral.rescales_for("city_scapes")
    assert spectral.rescales_for("voc21") and spectral.rescales_for("coco_stuff164k")
