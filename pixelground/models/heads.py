"""The optional heads of the [SEG]-token model, built by name, and the prior terms they add.

Each head a config turns on (:func:`head_builders`) is built by :func:`build_heads` under a
seed of its own name, so which heads are on, and in what order, changes no other part's
initialisation. Checkpoints written before the heads moved into ``SegTokenModel.heads``
name them by their old attributes (:data:`OLD_HEAD_PREFIXES`, :func:`renamed_key`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import torch
from torch import nn

from pixelground.models.config import SegModelConfig

#: ``position_query``: the prior term at the image's edges for a unit direction.
POSITION_SCALE = 4.0
#: State-dict prefixes of checkpoints written before the optional heads moved into ``heads``.
OLD_HEAD_PREFIXES = {
    "word_heads.": "heads.word.",
    "head_word_heads.": "heads.head_word.",
    "motion_net.": "heads.motion_net.",
    "velocity_head.": "heads.velocity.",
    "query_velocity.": "heads.query_velocity.",
    "motion_gate.": "heads.motion_gate.",
    "query_direction.": "heads.query_direction.",
}


def _zero(layer: nn.Module) -> nn.Module:
    """``layer`` with its last linear/conv weight and bias set to zero (starts as a no-op)."""
    last = layer[-1] if isinstance(layer, nn.Sequential) else layer
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return layer


def _word_pair(d: int, channels: int, vocab: int) -> nn.ModuleList:
    """One linear word head per grid: the decoder embedding (d) and the LM's tower grid."""
    return nn.ModuleList([nn.Linear(d, vocab), nn.Linear(channels, vocab)])


def _word_heads(d: int, channels: int, vocab: int) -> nn.ModuleList:
    heads = _word_pair(d, channels, vocab)
    for head in heads:  # start at p = 1 / vocab: most words are absent
        nn.init.constant_(head.bias, -math.log(vocab))
    return heads


def head_builders(
    config: SegModelConfig, lm_hidden: int, channels: int, vocab: int
) -> dict[str, Callable[[], nn.Module]]:
    """The optional heads ``config`` turns on, by name (see the config's fields)."""
    d = config.decoder_dim
    wanted = {
        "word": (config.word_loss_weight > 0, lambda: _word_heads(d, channels, vocab)),
        "head_word": (config.head_word_loss_weight > 0, lambda: _word_pair(d, channels, vocab)),
        "motion_net": (
            config.motion_features,
            lambda: _zero(
                nn.Sequential(
                    nn.Conv2d(2 * d, d, 3, padding=1), nn.GELU(), nn.Conv2d(d, d, 3, padding=1)
                )
            ),
        ),
        "velocity": (config.motion_loss_weight > 0, lambda: nn.Linear(d, 2)),
        "query_velocity": (config.motion_query, lambda: nn.Linear(lm_hidden, 2)),
        "motion_gate": (config.motion_query, lambda: _zero(nn.Linear(lm_hidden, 1))),
        "query_direction": (config.position_query, lambda: _zero(nn.Linear(lm_hidden, 2))),
    }
    return {name: build for name, (on, build) in wanted.items() if on}


def build_heads(builders: dict[str, Callable[[], nn.Module]]) -> nn.ModuleDict:
    """Build each head under a seed of its own: one draw from the global generator (whatever
    heads are on) plus the CRC of the head's name, so order and company do not matter."""
    base = int(torch.randint(0, 2**31 - 1, ()))
    heads = nn.ModuleDict()
    for name in sorted(builders):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(base + zlib.crc32(name.encode()))
            heads[name] = builders[name]()
    return heads


def renamed_key(key: str) -> str:
    """A state-dict key of an older checkpoint as ``SegTokenModel`` names it now."""
    for old, new in OLD_HEAD_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def motion_match(
    heads: nn.ModuleDict, queries: torch.Tensor, embed: torch.Tensor, times: torch.Tensor
) -> torch.Tensor:
    """(S, g, g) the ``motion_query`` term of the coarse prior: minus the squared distance
    between the velocity each [SEG] asks for and the velocity the velocity head reads at
    each place of its frame, times the [SEG]'s own gate (zero for images).

    Args:
        heads: the model's heads (``velocity``, ``query_velocity``, ``motion_gate``).
        queries: (S, D_lm) [SEG] queries.
        embed: (S, d, g, g) decoder embedding of each query's frame.
        times: (S,) normalised frame times (-1 for images).
    """
    head = heads["velocity"]
    wanted = heads["query_velocity"](queries.to(head.weight.dtype))
    there = torch.einsum("sdhw,kd->skhw", embed.to(head.weight.dtype), head.weight)
    there = there + head.bias.view(1, -1, 1, 1)
    distance = (there - wanted[:, :, None, None]).square().sum(1)
    gate = heads["motion_gate"](queries.to(head.weight.dtype)) * (times >= 0)[:, None]
    return -gate[:, :, None] * distance


def position_match(heads: nn.ModuleDict, queries: torch.Tensor, side: int) -> torch.Tensor:
    """(S, side, side) the ``position_query`` term of the coarse prior: the direction
    each [SEG] asks for, dotted with each place's centre (x right, y down, each from -1
    to 1), times ``POSITION_SCALE``.

    Args:
        heads: the model's heads (``query_direction``).
        queries: (S, D_lm) [SEG] queries.
        side: places along each side of the prior's grid.
    """
    head = heads["query_direction"]
    direction = head(queries.to(head.weight.dtype)) * POSITION_SCALE
    centres = torch.arange(side, device=head.weight.device, dtype=head.weight.dtype) + 0.5
    centres = centres * (2 / side) - 1
    x, y = direction[:, 0, None, None], direction[:, 1, None, None]
    return x * centres[None, None, :] + y * centres[None, :, None]
