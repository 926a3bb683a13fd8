"""CASS spectral object-level context distillation: the last CLIP block's attention, rebuilt.

CASS (Kim et al., CVPR 2025, "Distilling Spectral Graph for Object-Context Aware
Open-Vocabulary Semantic Segmentation") replaces the attention of CLIP's last block by a
blend of two key-key graphs: CLIP's own and a vision foundation model's (DINO ViT-B/8),
head by head. This module is that computation, stage by stage, in the official code's
order, dtypes and conventions (MICV-yonsei/CASS ``VisionTransformer.custom_attn`` with
strategy ``spectral``), so each stage can be compared with the golden fixtures.

Conventions: tokens are (T, width) with token 0 = CLS and patch tokens row-major after it;
``grid`` = (rows, cols) of CLIP patches, N = rows * cols; head h uses features
[h * head_dim, (h + 1) * head_dim). DINO keys are (heads, tokens, head_dim) with
``prefix`` leading tokens (CLS, registers) that are dropped.

torch (and scipy, for the assignment) are imported by the functions that use them, so
importing this module costs nothing until CASS runs.

Quirks of the official code kept on purpose (each is the default; see the functions):
- only keys enter the graphs (key-key, no query);
- min-max range matching uses one global min/max (over all heads, or the whole matrix);
- the head assignment is computed with DINO heads as rows, then applied with the roles
  exchanged (CLIP head ``row[i]`` blended with DINO head ``col[i]``), and it maximises
  the total spectral distance because the cost is 1 - distance;
- the truncation rank is always 10 (the official rank search returns on its first try);
- the singular values are rescaled for every dataset except voc20 and city_scapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelground.core.errors import InputError

#: Datasets whose singular values the official code leaves unscaled.
UNSCALED_DATASETS = ("voc20", "city_scapes")
SVD_MODES = ("randomized", "exact")


@dataclass(frozen=True)
class SpectralSettings:
    """Constants of the spectral attention (official values as defaults).

    Attributes:
        gaussian_std: std, in patches, of the Gaussian spatial prior added to the logits.
        scale_factor: weight multiplier of the DINO graph in the blend.
        k_eigen: eigenvalues per head compared between graphs.
        rank: truncation rank of the DINO graphs (the official rank search always
            returns its initial 10; its energy threshold has no effect).
        rescale: dynamic eigenscaling, i.e. map [min, max] of the kept singular values to
            [0.5 min, 1.5 max] (official: every dataset but voc20 and city_scapes).
        svd: ``"randomized"`` (official: ``torch.svd_lowrank``, niter 2, no oversampling)
            or ``"exact"`` (``torch.linalg.svd`` truncated to ``rank``; deterministic).
        seed: torch seed set (on a forked generator) before the randomized SVDs of one
            attention call, so a crop's result does not depend on what ran before.
    """

    gaussian_std: float = 5.0
    scale_factor: float = 10.0
    k_eigen: int = 20
    rank: int = 10
    rescale: bool = True
    svd: str = "randomized"
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.svd not in SVD_MODES:
            raise InputError(f"unknown svd {self.svd!r}; use one of {SVD_MODES}")


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, then restore the thread count.

    The eigendecompositions and SVDs here are of small (N <= ~1000) matrices, where
    LAPACK's threads cost more than they save; on a loaded machine a 196 x 196 ``eigvalsh``
    with 2 threads measured 0.14-1.5 s against 0.01 s with one. One thread also makes the
    results independent of the machine's thread count.
    """
    import torch

    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def rescales_for(dataset: str) -> bool:
    """Whether the official code rescales singular values for config name ``dataset``."""
    return dataset not in UNSCALED_DATASETS


def split_heads(tokens: Any, num_heads: int) -> Any:
    """(T, width) tokens -> (H, T - 1, head_dim) per-head features with CLS dropped."""
    count, width = tokens.shape
    return tokens.reshape(count, num_heads, width // num_heads).transpose(0, 1)[:, 1:]


def dino_patch_keys(dino_keys: Any, prefix: int = 1) -> Any:
    """(H, prefix + dino_N, hd) DINO keys -> (H, hd, dino_N): prefix dropped, axes swapped."""
    return dino_keys[:, prefix:, :].permute(0, 2, 1)


def resize_dino_keys(
    dino_key: Any, num_heads: int, head_dim: int, grid: tuple[int, int], dino_grid: tuple[int, int]
) -> Any:
    """(H', hd', dino_N) DINO keys -> (H, N, hd) on the CLIP grid.

    The keys are viewed in the CLIP head layout (the official code needs DINO heads x
    head_dim = CLIP heads x head_dim), as (H, hd, dino_rows, dino_cols), resized
    bilinearly (align_corners False, no antialias) to ``grid``, flattened row-major.
    """
    from torch.nn import functional as F

    rows, cols = grid
    if dino_key.numel() != num_heads * head_dim * dino_grid[0] * dino_grid[1]:
        raise InputError(
            f"DINO keys of {dino_key.shape[0]} heads x {dino_key.shape[1]} features do not fit "
            f"CLIP's {num_heads} heads x {head_dim}; CASS needs the same width on both sides"
        )
    maps = dino_key.reshape(num_heads, head_dim, *dino_grid)
    resized = F.interpolate(maps, size=(rows, cols), mode="bilinear", align_corners=False)
    return resized.reshape(num_heads, head_dim, rows * cols).permute(0, 2, 1)


def match_range(source: Any, target: Any) -> Any:
    """``source`` min-max normalised (one global min/max) onto [min, max] of ``target``.

    The official code uses one min and max over the whole tensor (all heads, or the whole
    matrix with its zeroed diagonal), not per head or row; kept as is.
    """
    low, high = source.min(), source.max()
    target_low, target_high = target.min(), target.max()
    return (source - low) / (high - low) * (target_high - target_low) + target_low


def gaussian_prior(grid: tuple[int, int], std: float) -> Any:
    """(1, N, N) float32 spatial prior exp(-|p - q|^2 / (2 std^2)) over grid positions.

    The official code builds it by convolving one-hot maps with a Gaussian window in
    float32; this closed form (float64, then float32) agrees to ~7e-8.
    """
    import torch

    rows, cols = grid
    r, c = np.divmod(np.arange(rows * cols), cols)
    squared = (r[:, None] - r[None, :]) ** 2 + (c[:, None] - c[None, :]) ** 2
    prior = np.exp(-squared / (2.0 * std * std)).astype(np.float32)
    return torch.from_numpy(prior)[None]


def key_graph(keys: Any, scale: float) -> Any:
    """(H, N, hd) keys -> (H, N, N) key-key graph k kᵀ * scale (no query: official)."""
    import torch

    return torch.bmm(keys, keys.transpose(1, 2)) * scale


def head_spectra(graphs: Any, k_eigen: int) -> Any:
    """(H, N, N) graphs -> (H, k_eigen) float64 eigenvalues, largest first (symmetric solver)."""
    import torch

    values = torch.linalg.eigvalsh(graphs.double())
    return torch.flip(values, dims=(-1,))[:, :k_eigen]


def spectral_cost(dino_spectra: Any, clip_spectra: Any) -> Any:
    """(H, H) float32 cost 1 - W1 between L2-, then L1-normalised spectra.

    Rows are DINO heads, columns CLIP heads. W1 is the official "Wasserstein distance":
    the *sum* of absolute differences of the sorted values.
    """
    import torch
    from torch.nn import functional as F

    dino = F.normalize(F.normalize(dino_spectra, p=2, dim=1), p=1, dim=1)
    clip = F.normalize(F.normalize(clip_spectra, p=2, dim=1), p=1, dim=1)
    dino_sorted = torch.sort(dino, dim=1).values
    clip_sorted = torch.sort(clip, dim=1).values
    distance = (dino_sorted[:, None, :] - clip_sorted[None, :, :]).abs().sum(-1)
    return (1 - distance).float()


def assign_heads(cost: Any) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment (scipy) of the (H, H) cost: (row_ind, col_ind).

    Minimising 1 - W1 pairs the most *dissimilar* spectra (official behaviour, kept).
    """
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    return rows, cols


def truncated_svd(graph: Any, rank: int, mode: str) -> tuple[Any, Any, Any]:
    """(U, S, V) of a float64 graph with A ~ U diag(S) Vᵀ, ``rank`` values.

    Raises:
        InputError: a graph with fewer than ``rank`` rows (the official helper fails there).
    """
    import torch

    if min(graph.shape) < rank:
        raise InputError(
            f"CASS needs at least {rank} patches per crop, got {min(graph.shape)}; "
            "use a larger image or crop"
        )
    matrix = graph.double()
    if mode == "randomized":
        return torch.svd_lowrank(matrix, q=rank)
    u, s, vh = torch.linalg.svd(matrix)
    return u[:, :rank], s[:rank], vh[:rank].T


def rescale_singular_values(values: Any, rescale: bool) -> Any:
    """Dynamic eigenscaling: [min, max] of ``values`` mapped to [0.5 min, 1.5 max], or identity."""
    if not rescale:
        return values
    low, high = values.min(), values.max()
    return (values - low) / (high - low) * (1.5 * high - 0.5 * low) + 0.5 * low


def _low_rank_graphs(
    dino_graphs: Any, cols: np.ndarray, settings: SpectralSettings, stages: dict | None
) -> list[Any]:
    """Per idx, the rank-``settings.rank`` DINO graph of head cols[idx], diagonal zeroed (f64)."""
    import torch

    out, kept = [], {"svd_s": [], "s_scaled": []}
    with torch.random.fork_rng(devices=[]):
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        for idx in range(len(cols)):
            u, s, v = truncated_svd(dino_graphs[int(cols[idx])], settings.rank, settings.svd)
            scaled = rescale_singular_values(s, settings.rescale)
            low_rank = u @ torch.diag(scaled) @ v.T
            low_rank.fill_diagonal_(0)
            out.append(low_rank)
            kept["svd_s"].append(s)
            kept["s_scaled"].append(scaled)
    if stages is not None:
        stages.update({k: torch.stack(v) for k, v in kept.items()})
        stages["dino_lowrank"] = torch.stack(out)
    return out


def blend_graphs(
    clip_graphs: Any, dino_graphs: Any, settings: SpectralSettings, stages: dict | None = None
) -> Any:
    """(H, N, N) graphs of both models -> (H, N, N) blended graph (dtype of ``clip_graphs``).

    Heads are paired by spectra (:func:`spectral_cost`, :func:`assign_heads`); for each
    idx, CLIP head row[idx] gets DINO head col[idx]'s low-rank graph, range-matched to the
    CLIP graph and weighted by w_d * scale_factor, w_d = 1 - cost[row[idx], col[idx]]. The
    official code thus uses the assignment with rows and columns exchanged (the cost's
    rows are DINO heads); kept as the default, it is what the published numbers used.
    """
    import torch

    with single_thread():
        dino_spectra = head_spectra(dino_graphs, settings.k_eigen)
        clip_spectra = head_spectra(clip_graphs, settings.k_eigen)
        cost = spectral_cost(dino_spectra, clip_spectra)
        rows, cols = assign_heads(cost)
        low_rank = _low_rank_graphs(dino_graphs, cols, settings, stages)
    combined = torch.zeros_like(clip_graphs)
    sparse = []
    for idx in range(len(rows)):
        clip_graph = clip_graphs[int(rows[idx])]
        weight = 1 - cost[int(rows[idx]), int(cols[idx])]
        sparse.append(match_range(low_rank[idx], clip_graph))
        factor = weight * settings.scale_factor
        combined[idx] = (factor * sparse[-1] + clip_graph) / (factor + 1)
    if stages is not None:
        stages.update(
            dino_eigvals=dino_spectra,
            clip_eigvals=clip_spectra,
            cost_matrix=cost,
            row_ind=rows,
            col_ind=cols,
            w_d=1 - cost[rows, cols],
            dino_sparse_adj=torch.stack(sparse),
            combined_attn=combined,
        )
    return combined


@dataclass(frozen=True)
class Projections:
    """The last CLIP block's attention weights, in (out, in) layout as nn.Linear.

    Attributes:
        key_weight, key_bias, value_weight, value_bias: (width, width) and (width,).
        out_weight, out_bias: the output projection.
        num_heads: H.
    """

    key_weight: Any
    key_bias: Any
    value_weight: Any
    value_bias: Any
    out_weight: Any
    out_bias: Any
    num_heads: int


def spectral_attention(
    tokens: Any,
    projections: Projections,
    grid: tuple[int, int],
    dino_keys: Any,
    dino_grid: tuple[int, int],
    settings: SpectralSettings | None = None,
    dino_prefix: int = 1,
    stages: dict | None = None,
) -> Any:
    """CASS attention of the last CLIP block: (T, width) ln_1 tokens -> (N, width) patch outputs.

    Args:
        tokens: (T, width) output of the last block's first LayerNorm; T = 1 + N.
        projections: that block's key, value and output projections.
        grid: (rows, cols) CLIP patch grid.
        dino_keys: (H, prefix + dino_N, hd) keys of the last DINO block (official run:
            float16); H x hd must equal CLIP's width.
        dino_grid: (rows, cols) of the DINO patch grid.
        settings: constants; default the official ones with randomized SVD.
        dino_prefix: leading DINO tokens to drop (1 for DINO, 1 + registers for DINOv2).
        stages: if a dict, filled with every intermediate (golden-fixture names).

    Returns:
        (N, width) attention output after the output projection; no residual, no MLP,
        no CLS row (the official model sends it straight to the final LayerNorm).
    """
    import torch
    from torch.nn import functional as F

    settings = settings or SpectralSettings()
    num_heads = projections.num_heads
    head_dim = tokens.shape[1] // num_heads
    scale = head_dim**-0.5
    keys = split_heads(F.linear(tokens, projections.key_weight, projections.key_bias), num_heads)
    values = F.linear(tokens, projections.value_weight, projections.value_bias)
    values = split_heads(values, num_heads)
    dino_final = dino_keys_on_grid(dino_keys, keys, grid, dino_grid, dino_prefix, stages)
    omega = gaussian_prior(grid, settings.gaussian_std).to(keys.device, keys.dtype)
    clip_graphs = key_graph(keys, scale)
    dino_graphs = key_graph(dino_final, scale)
    combined = blend_graphs(clip_graphs, dino_graphs, settings, stages)
    logits = combined + omega
    weights = torch.softmax(logits, dim=-1)
    heads = torch.bmm(weights, values)
    output = F.linear(heads.transpose(0, 1).reshape(heads.shape[1], -1), *_out(projections))
    if stages is not None:
        stages.update(
            clip_key=keys,
            omega=omega,
            clip_adj=clip_graphs,
            dino_adj=dino_graphs,
            attn_logits=logits,
            attn_weights=weights,
            attn_output=output,
        )
    return output


def dino_keys_on_grid(
    dino_keys: Any,
    clip_keys: Any,
    grid: tuple[int, int],
    dino_grid: tuple[int, int],
    prefix: int = 1,
    stages: dict | None = None,
) -> Any:
    """(H, prefix + dino_N, hd) DINO keys -> (H, N, hd) on the CLIP grid, in CLIP's key range."""
    num_heads, _, head_dim = clip_keys.shape
    dino_key = dino_patch_keys(dino_keys, prefix)
    resized = resize_dino_keys(dino_key, num_heads, head_dim, grid, dino_grid)
    final = match_range(resized, clip_keys)
    if stages is not None:
        stages.update(dino_key=dino_key, dino_key_resized=resized, dino_key_final=final)
    return final


def _out(projections: Projections) -> tuple[Any, Any]:
    return projections.out_weight, projections.out_bias
