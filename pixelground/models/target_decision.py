"""Whether a referring expression has a target: the LM's answer weighed with the image.

Left to itself the language model decides "no such object" from the words and the visual
tokens at its first answer token; expressions unlike its training lines (in the benchmark's
test split, long descriptions of shapes whose colour and kind never met in training) are then
refused even when the object is plainly there. The coarse prior of the [SEG] query (see
``SegTokenModel.coarse_prior``) scores every place of the image against the expression and
does not suffer from it. ``target_decision`` in the model config holds three numbers (w_lm,
w_prior, bias): a referring answer has a target when

    w_lm * log-odds of [SEG] at the first answer token + w_prior * peak of the prior + bias > 0

with the [SEG] teacher-forced to read the prior. With phrase-word heads and the words they
were trained on (``phrase_words``), a fourth number weighs what the heads read on the answered
mask: the decoder embedding averaged over the mask, the lowest log-probability the heads give
to the expression's first run of those words ("the small green triangle left of the red
circle": small, green, triangle). A mask on a small green square, or on nothing green, then
counts against the answer where the prior's peak alone may not. :func:`fit_target_decision`
fits them by logistic regression on fine-tuning lines whose answers are a [SEG] or a refusal
(a validation split), so the threshold is set on data the model was not trained on.

"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from pixelground.backends.base import GroundedText
from pixelground.core.errors import InputError
from pixelground.core.media import load_image
from pixelground.models.generation import (
    banned_tokens,
    frame_masks,
    greedy,
    prompt_tensor,
)
from pixelground.models.parts import VisionFeatures
from pixelground.models.seg_model import SegTokenModel
from pixelground.models.tokenizer import grounded_text

if TYPE_CHECKING:
    from pixelground.models.data import Sample


@dataclass
class TargetEvidence:
    """What the model says about a referring prompt before it answers.

    Attributes:
        seg_log_odds: log p([SEG]) - log(1 - p([SEG])) at the first answer token (over the
            tokens an answer may hold).
        prior_peak: the highest coarse-prior logit of the teacher-forced [SEG] (-inf when
            the model has no coarse prior).
        mask_logits: (1, mask_grid, mask_grid) the teacher-forced [SEG]'s mask logits.
        word_fit: the lowest log-probability the phrase-word head gives the expression's
            first run of ``phrase_words`` on the mask's region; 0 when the model has no
            phrase-word head or the expression none of those words.
    """

    seg_log_odds: float
    prior_peak: float
    mask_logits: torch.Tensor
    word_fit: float = 0.0

    def features(self) -> list[float]:
        """[seg_log_odds, prior_peak, word_fit], the inputs of the decision."""
        return [self.seg_log_odds, self.prior_peak, self.word_fit]


@torch.no_grad()
def target_evidence(model: SegTokenModel, image: np.ndarray, prompt: str) -> TargetEvidence:
    """One pass of the LM over ``prompt`` about ``image`` (RGB uint8 (H, W, 3)) followed by
    [SEG]: the first answer token's odds of [SEG], and that [SEG]'s coarse prior and mask."""
    return _evidence(model, model.encode_image(model.preprocess([image])), prompt)


def _evidence(model: SegTokenModel, features: VisionFeatures, prompt: str) -> TargetEvidence:
    """:func:`target_evidence` on the image's encoded features."""
    if not prompt.strip():
        raise InputError("the prompt is empty; give an expression")
    times = torch.full((1,), -1.0, device=model.device, dtype=model.dtype)
    prompt_ids = prompt_tensor(model, prompt, model.num_image_tokens)
    ids = torch.cat([prompt_ids, prompt_ids.new_full((1, 1), model.ids.seg)], 1)
    out = model.run(features, ids, times)
    logits = out.logits[0, -2].float()
    logits[banned_tokens(model)] = float("-inf")
    log_p = logits.log_softmax(-1)[model.ids.seg]
    seg_log_odds = float(log_p - torch.log1p(-log_p.exp().clamp(max=1 - 1e-7)))
    mask_logits, prior, features = out.mask_logits, out.prior, out.features
    peak = float(prior.max())
    word_fit = _word_fit(model, features.embed[0], mask_logits[0], expression_words(model, prompt))
    return TargetEvidence(seg_log_odds, peak, mask_logits, word_fit)


def expression_words(model: SegTokenModel, prompt: str) -> list[int]:
    """Token ids of the first run of ``phrase_words`` in ``prompt``, across single other
    words ("the small solid circle left of ...": small, circle): the words the phrase-word
    heads know that describe the first object it names."""
    if not _reads_words(model):
        return []
    known = set(model.tokenizer.convert_tokens_to_ids(list(model.config.phrase_words)))
    run: list[int] = []
    others = 0  # other words since the run's last known one
    for token in model.tokenizer(prompt, add_special_tokens=False)["input_ids"]:
        if token in known:
            run.append(int(token))
            others = 0
        elif run:
            others += 1
            if others == 2:
                break
    return run


def _reads_words(model: SegTokenModel) -> bool:
    """Whether the decision can read words on the mask: a phrase-word head and the words it
    was trained on."""
    return model.head("word") is not None and bool(model.config.phrase_words)


def _word_fit(
    model: SegTokenModel, embed: torch.Tensor, mask_logits: torch.Tensor, words: list[int]
) -> float:
    """The lowest log-probability of ``words`` under the phrase-word head on the region of
    ``mask_logits`` (m, m): the decoder embedding ``embed`` (d, g, g) averaged with the mask's
    probability, pooled to its grid, as weights (the mask's most likely place when it is
    empty)."""
    if not words:
        return 0.0
    grid = embed.shape[-2:]
    weights = F.adaptive_avg_pool2d(torch.sigmoid(mask_logits.float())[None, None], grid)[0, 0]
    if float(weights.sum()) < 1e-3:
        pooled_logits = F.adaptive_max_pool2d(mask_logits.float()[None, None], grid)[0, 0]
        weights = (pooled_logits == pooled_logits.max()).float()
    return float(_region_word_log_probs(model, embed, weights, words).min())


def _region_word_log_probs(
    model: SegTokenModel, embed: torch.Tensor, weights: torch.Tensor, words: list[int]
) -> torch.Tensor:
    """(len(words),) log-probabilities of ``words`` under the phrase-word head on the decoder
    embedding ``embed`` (d, g, g) averaged with ``weights`` (g, g)."""
    region = (embed.float() * weights).sum((1, 2)) / weights.sum()
    head = model.heads["word"][0]
    logits = head(region.to(head.weight.dtype)).float()
    return F.logsigmoid(logits[words])


def has_target(weights: Sequence[float], evidence: TargetEvidence) -> bool:
    """The decision of ``target_decision`` weights on ``evidence``: (w_lm, w_prior, bias), or
    (w_lm, w_prior, w_words, bias) with the word heads' read of the mask."""
    inputs = evidence.features()[: len(weights) - 1]
    return sum(w * x for w, x in zip(weights[:-1], inputs, strict=True)) + weights[-1] > 0


@torch.no_grad()
def referring_mask(model: SegTokenModel, image: np.ndarray, prompt: str) -> np.ndarray | None:
    """The (H, W) bool mask of the referring prompt's [SEG] when
    ``model.config.target_decision`` finds a target, else None; no text is generated, as
    :func:`answer_referring` does for a refusal."""
    return _decide(model, image, prompt)[0]


@torch.no_grad()
def answer_referring(model: SegTokenModel, image: np.ndarray, prompt: str) -> GroundedText:
    """Answer a referring prompt with ``model.config.target_decision``: one [SEG] and its mask
    when the decision finds a target, else the LM's greedy answer with [SEG] barred (its
    "no such object"). See the module docstring."""
    size = (int(image.shape[0]), int(image.shape[1]))
    mask, features = _decide(model, image, prompt)
    if mask is not None:
        return grounded_text(model.tokenizer, [model.ids.seg], [mask], size)
    times = torch.full((1,), -1.0, device=model.device, dtype=model.dtype)
    ids = prompt_tensor(model, prompt, model.num_image_tokens)
    embeds = model.embed_inputs(ids, features, times)
    generated, _, _ = greedy(
        model, ids, embeds, model.config.max_new_tokens, also_banned=[model.ids.seg]
    )
    return grounded_text(model.tokenizer, generated, [], size)


def _decide(
    model: SegTokenModel, image: np.ndarray, prompt: str
) -> tuple[np.ndarray | None, VisionFeatures]:
    """The [SEG]'s (H, W) mask when the decision finds a target (else None), and the image's
    features."""
    weights = model.config.target_decision
    if weights is None:
        raise InputError("the model has no target_decision; fit one with `pixelground calibrate`")
    features = model.encode_image(model.preprocess([image]))
    evidence = _evidence(model, features, prompt)
    if not has_target(weights, evidence):
        return None, features
    return frame_masks(model, evidence.mask_logits, 1, [image])[0, 0], features


@dataclass
class DecisionFit:
    """A fitted ``target_decision`` and how it and the LM alone decide on the fitting lines.

    Attributes:
        weights: (w_lm, w_prior, bias) or (w_lm, w_prior, w_words, bias).
        lines: lines used; targets: how many of them have a target.
        n_acc, t_acc: share of no-target lines refused / target lines answered, by the fit.
        lm_n_acc, lm_t_acc: the same for the LM alone (p([SEG]) > 0.5).
    """

    weights: tuple[float, ...]
    lines: int
    targets: int
    n_acc: float
    t_acc: float
    lm_n_acc: float
    lm_t_acc: float


def referring_lines(samples: Sequence[Sample]) -> list[tuple[Sample, bool]]:
    """The lines of one question about one image answered by a [SEG] alone or by text
    without any (a refusal), with whether each has a target."""
    kept = []
    for sample in samples:
        turns = sample.conversation
        if len(turns) != 2 or sample.video or "<region>" in turns[0]["content"]:
            continue
        answer = turns[1]["content"].strip()
        if answer == "[SEG]" or "[SEG]" not in answer:
            kept.append((sample, answer == "[SEG]"))
    return kept


def fit_target_decision(
    model: SegTokenModel,
    samples: Sequence[Sample],
    l2: float = 1e-3,
) -> DecisionFit:
    """Fit ``target_decision`` by logistic regression on referring lines.

    Args:
        model: the model (eval mode).
        samples: fine-tuning lines, see :func:`referring_lines` (others are ignored).
        l2: weight of the L2 penalty on the weights other than the bias.

    Returns:
        The fitted weights (with the word heads' input when the model has phrase-word heads
        and ``phrase_words``) and their N-acc / T-acc on these lines beside the LM's own.
    """
    lines = referring_lines(samples)
    labels = torch.tensor([target for _, target in lines], dtype=torch.float32)
    if not len(lines) or labels.sum() in (0, len(lines)):
        raise InputError(
            "fitting the target decision needs referring lines both with a target ([SEG]) "
            "and without (a refusal)"
        )
    inputs = 3 if _reads_words(model) else 2
    rows = []
    for sample, _ in lines:
        question = sample.conversation[0]["content"]
        image = load_image(sample.frames[0]).pixels
        evidence = target_evidence(model, image, question)
        rows.append(evidence.features()[:inputs])
    features = torch.tensor(rows, dtype=torch.float32).clamp(min=-50.0)
    weights = torch.zeros(inputs + 1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights], max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        scores = features @ weights[:-1] + weights[-1]
        value = torch.nn.functional.binary_cross_entropy_with_logits(scores, labels)
        value = value + l2 * weights[:-1].square().sum()
        value.backward()
        return value

    optimizer.step(loss)
    fitted = tuple(float(w) for w in weights.detach())
    said = (features @ weights.detach()[:-1] + weights.detach()[-1]) > 0
    lm_said = features[:, 0] > 0
    target = labels > 0
    return DecisionFit(
        weights=fitted,
        lines=len(lines),
        targets=int(target.sum()),
        n_acc=float((~said[~target]).float().mean()),
        t_acc=float(said[target].float().mean()),
        lm_n_acc=float((~lm_said[~target]).float().mean()),
        lm_t_acc=float(lm_said[target].float().mean()),
    )
