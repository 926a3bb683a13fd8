"""The training losses of the [SEG]-token model, as pure functions of tensors.

Mask terms compare the decoder's low-resolution logits with full-size targets (BCE and
DICE); the coarse prior is trained against the target pooled to its grid (BCE, and the
pointing loss: a softmax over places); the phrase-word losses make the places inside a
grounded phrase's mask predict its words; the motion loss makes a video frame's places
predict how their object moves. objective.py weighs them on a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: The loss terms of a training step; each is weighted by ``<term>_weight`` of the config.
LOSS_TERMS = (
    "lm_loss",
    "bce_loss",
    "dice_loss",
    "prior_loss",
    "point_loss",
    "word_loss",
    "head_word_loss",
    "motion_loss",
)
#: Velocities (image sides per clip) are doubled for the velocity heads, so that a shape moving
#: across a third of the frame is a target near 1, where the smooth L1 loss turns linear.
VELOCITY_SCALE = 2.0


def mask_losses(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean per-mask BCE and DICE of low-resolution logits against full-size targets.

    Args:
        logits: (S, h, w) mask logits.
        targets: (S, H, W) float targets in {0, 1}.

    Returns:
        (bce, dice) scalars.
    """
    logits = F.interpolate(
        logits[:, None].float(), size=targets.shape[-2:], mode="bilinear", align_corners=False
    )[:, 0]
    targets = targets.float()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).mean(1)
    prob, flat = logits.sigmoid().flatten(1), targets.flatten(1)
    dice = 1 - (2 * (prob * flat).sum(1) + 1) / (prob.sum(1) + flat.sum(1) + 1)
    return bce.mean(), dice.mean()


def prior_losses(prior: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The coarse prior's BCE against each target pooled to its grid, and :func:`point_loss`.

    Args:
        prior: (S, g, g) coarse logits.
        targets: (S, H, W) float target masks.
    """
    pooled = F.adaptive_avg_pool2d(targets[:, None].float(), prior.shape[-1])[:, 0]
    bce = F.binary_cross_entropy_with_logits(prior.float(), pooled)
    return bce, point_loss(prior, pooled)


def point_loss(prior: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each coarse map's softmax over its places against its target's share
    of each place: the places of one map compete, so mass on an object that is not the target
    costs as much as missing the target does, however small the objects are.

    Args:
        prior: (S, g, g) coarse logits.
        pooled: (S, g, g) fraction of each place covered by the target; maps with an empty
            target are left out.

    Returns:
        Scalar mean over the maps with a target (0 when none has one).
    """
    mass = pooled.flatten(1).float()
    has_target = mass.sum(1) > 0
    if not bool(has_target.any()):
        return prior.new_zeros(()).float()
    share = mass[has_target] / mass[has_target].sum(1, keepdim=True)
    log_prob = F.log_softmax(prior.flatten(1)[has_target].float(), dim=1)
    return -(share * log_prob).sum(1).mean()


def covered_places(masks: torch.Tensor, side: int) -> torch.Tensor:
    """Places of a side x side grid that lie in each mask.

    Args:
        masks: (K, H, W) float masks.
        side: the grid's side.

    Returns:
        (K, side, side) bool: the places at least half inside the mask; for a mask smaller
        than that, its most covered place (none for an empty mask).
    """
    cover = F.adaptive_avg_pool2d(masks[:, None].float(), side)[:, 0]
    most = cover.flatten(1).amax(1)[:, None, None]
    return (cover >= 0.5) | ((cover == most) & (most > 0))


def phrase_words(
    input_ids: torch.Tensor, where: torch.Tensor, p_open: int, p_close: int, vocab: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens of the phrase each [SEG] grounds, and its last token.

    Args:
        input_ids: (B, L) token ids.
        where: (S, 2) (row, position) of each [SEG] token.
        p_open, p_close: the ids of ``<p>`` and ``</p>``.
        vocab: the vocabulary's size V.

    Returns:
        (S, V) float: 1 for the tokens between ``<p>`` and ``</p>`` when ``</p>`` comes
        right before the [SEG] (a grounded caption's phrase); a zero row otherwise.
        (S,) long: the phrase's last token (its head noun), -1 where there is no phrase.
    """
    words = torch.zeros(len(where), vocab, device=input_ids.device)
    heads = torch.full((len(where),), -1, dtype=torch.long, device=input_ids.device)
    for j, (row, position) in enumerate(where.tolist()):
        before = input_ids[row, :position].tolist()
        if not before or before[-1] != p_close or p_open not in before:
            continue
        start = len(before) - 1 - before[::-1].index(p_open)
        phrase = before[start + 1 : -1]
        if phrase:
            words[j, phrase] = 1.0
            heads[j] = phrase[-1]
    return words, heads


def word_losses(
    grids: Sequence[torch.Tensor],
    frames: torch.Tensor,
    masks: torch.Tensor,
    words: torch.Tensor,
    head_word: torch.Tensor,
    unread: torch.Tensor,
    word_heads: nn.ModuleList | None,
    head_word_heads: nn.ModuleList | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The phrase-word losses of image features, for K grounded phrases.

    Every place of each grid that lies at least half inside the phrase's mask (or, for a
    mask smaller than that, its most covered place) predicts, through a linear head per grid:

    - ``word_loss``: the phrase's tokens, multi-label BCE summed over the vocabulary and
      divided by the phrase's length;
    - ``head_word_loss``: the phrase's last token (the head noun), a softmax cross-entropy.

    Each is averaged over the places of a grid and summed over the grids.

    Args:
        grids: (F, C_i, s_i, s_i) feature grids (the decoder embedding, the LM's tower grid).
        frames: (K,) the frame of each phrase.
        masks: (K, H, W) their target masks.
        words: (K, V) 1 for each phrase's tokens.
        head_word: (K,) each phrase's last token.
        unread: (K, V) bool, words that are no targets of ``word_loss`` (colour words of
            hue-rotated images).
        word_heads, head_word_heads: a head per grid (None: that loss is 0).
    """
    word_loss = head_loss = grids[0].new_zeros(()).float()
    for index, grid in enumerate(grids):
        inside = covered_places(masks, grid.shape[-1])  # (K, s, s)
        mask_of_place, ys, xs = inside.nonzero().unbind(1)
        if not len(mask_of_place):
            continue
        places = grid[frames[mask_of_place], :, ys, xs]  # (N, C)
        if word_heads is not None:
            logits = word_heads[index](places).float()  # (N, V)
            target = words[mask_of_place]
            bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            bce = bce.masked_fill(unread[mask_of_place], 0.0)
            word_loss = word_loss + (bce.sum(1) / target.sum(1)).mean()
        if head_word_heads is not None:
            logits = head_word_heads[index](places).float()
            head_loss = head_loss + F.cross_entropy(logits, head_word[mask_of_place])
    return word_loss, head_loss


def mask_velocities(
    masks: torch.Tensor, owners: torch.Tensor, times: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """How fast each object moves across its frames, from its masks' centroids.

    Args:
        masks: (P, H, W) masks of objects on frames; nonzero is inside.
        owners: (P,) the object of each mask (several masks per object, one per frame).
        times: (P,) the normalised time of each mask's frame.

    Returns:
        (N, 2) velocities (x, y) in image sides per unit of normalised time: the centroid's
        move from the object's first non-empty frame to its last, divided by the time
        between them; and (N,) the objects they belong to (objects with fewer than two
        non-empty frames at different times are left out).
    """
    height, width = masks.shape[-2:]
    weight = masks.flatten(1).float()
    area = weight.sum(1)
    ys = (torch.arange(height, device=masks.device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=masks.device, dtype=torch.float32) + 0.5) / width
    grid_x = xs[None].expand(height, -1).reshape(-1)
    grid_y = ys[:, None].expand(-1, width).reshape(-1)
    centre = torch.stack([weight @ grid_x, weight @ grid_y], 1) / area.clamp(min=1)[:, None]
    velocities, found = [], []
    for owner in owners.unique().tolist():
        mine = ((owners == owner) & (area > 0)).nonzero()[:, 0]
        if len(mine) < 2:
            continue
        order = mine[times[mine].argsort()]
        span = float(times[order[-1]] - times[order[0]])
        if span <= 0:
            continue
        velocities.append((centre[order[-1]] - centre[order[0]]) / span)
        found.append(owner)
    if not found:
        return masks.new_zeros((0, 2)).float(), owners.new_zeros((0,))
    return torch.stack(velocities), torch.tensor(found, device=owners.device)


def motion_loss(
    embed: torch.Tensor,
    queries: torch.Tensor,
    state_index: torch.Tensor,
    times: torch.Tensor,
    targets: torch.Tensor,
    velocity_head: nn.Module,
    query_velocity: nn.Module | None,
) -> torch.Tensor:
    """Smooth L1 of the velocity head, on each video frame's decoder embedding averaged
    over its target's places, against the target's velocity (:func:`mask_velocities`, in
    image sides per clip, times ``VELOCITY_SCALE``); with ``query_velocity``, plus that of
    the velocity each [SEG] asks for; 0 when no target moves across frames.

    Args:
        embed: (P, d, g, g) the decoder embedding of each (query, frame) pair's frame.
        queries: (S, D) the [SEG] queries.
        state_index: (P,) the query of each pair.
        times: (P,) its frame's normalised time (-1 for images).
        targets: (P, H, W) the pairs' target masks.
        velocity_head: the places' velocity head.
        query_velocity: the queries' velocity head (None: left out).
    """
    video = (times >= 0).nonzero()[:, 0]
    velocity, owners = mask_velocities(targets[video], state_index[video], times[video])
    zero = targets.new_zeros(()).float()
    if not len(owners):
        return zero
    embed = embed[video]
    share = F.adaptive_avg_pool2d(targets[video][:, None].float(), embed.shape[-1])
    covered = share.flatten(1).sum(1)
    pooled = (embed * share).flatten(2).sum(2) / covered.clamp(min=1e-6)[:, None]
    keep = torch.isin(state_index[video], owners) & (covered > 0)
    if not bool(keep.any()):
        return zero
    wanted = velocity[torch.searchsorted(owners, state_index[video][keep])]
    predicted = velocity_head(pooled[keep].to(velocity_head.weight.dtype))
    loss = F.smooth_l1_loss(predicted.float(), VELOCITY_SCALE * wanted.float())
    if query_velocity is None:
        return loss
    asked = query_velocity(queries[owners].to(query_velocity.weight.dtype))
    return loss + F.smooth_l1_loss(asked.float(), VELOCITY_SCALE * velocity.float())
