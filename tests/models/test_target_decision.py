"""``target_decision``: a referring answer's "is there a target" from the LM's odds of [SEG]
and the coarse prior's peak, fitted on validation lines by ``pixelground calibrate``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pixelground.backends.seg_token import SegTokenModelBackend
from pixelground.core.errors import InputError
from pixelground.core.media import load_image
from pixelground.models.config import SegModelConfig
from pixelground.models.data import read_finetune_jsonl
from pixelground.models.generation import banned_tokens
from pixelground.models.target_decision import (
    TargetEvidence,
    answer_referring,
    expression_words,
    fit_target_decision,
    has_target,
    referring_lines,
    referring_mask,
    target_evidence,
)
from pixelground.models.tokenizer import prompt_ids
from pixelground.serve.cli import main


def test_target_decision_must_be_three_or_four_finite_numbers(tiny_overrides):
    assert SegModelConfig.from_dict({**tiny_overrides, "target_decision": [1, 2, 3]})
    assert SegModelConfig.from_dict({**tiny_overrides, "target_decision": [1, 2, 3, 4]})
    for bad in ([1.0, 2.0], [1.0, math.nan, 0.0], [1.0] * 5):
        with pytest.raises(InputError, match="target_decision must be three or four finite"):
            SegModelConfig.from_dict({**tiny_overrides, "target_decision": bad})


def test_has_target_weighs_the_lm_odds_the_prior_peak_and_the_word_fit():
    evidence = TargetEvidence(
        seg_log_odds=-1.0, prior_peak=3.0, mask_logits=torch.zeros(1, 4, 4), word_fit=-4.0
    )
    assert not has_target((1.0, 0.0, 0.0), evidence)  # the LM alone refuses
    assert has_target((1.0, 0.5, 0.0), evidence)  # the prior's peak outweighs it
    assert not has_target((1.0, 0.5, -1.0), evidence)
    assert has_target((1.0, 0.5, 0.0, 0.0), evidence)
    assert not has_target((1.0, 0.5, 0.2, 0.0), evidence)  # the mask's words do not fit


def test_the_expressions_words_are_its_first_run_of_phrase_words(seeded_model):
    model = seeded_model(word_loss_weight=0.5, phrase_words=["a", "blue", "circle", "red"])
    tokens = model.tokenizer.convert_tokens_to_ids
    prompt = "Please segment the red circle left of a blue square."
    assert expression_words(model, prompt) == tokens(["red", "circle"])
    across_one = "Please segment the red solid circle left of a blue square."
    assert expression_words(model, across_one) == tokens(["red", "circle"])
    assert expression_words(model, "Please segment the thing.") == []
    assert expression_words(seeded_model(phrase_words=["red"]), prompt) == []  # no word heads


def test_the_word_fit_reads_the_phrase_word_head_on_the_masks_region(seeded_model, tiny_image):
    model = seeded_model(word_loss_weight=0.5, phrase_words=["red", "square"]).eval()
    evidence = target_evidence(model, tiny_image, "Please segment the red square.")
    features = model.encode_image(model.preprocess([tiny_image]))
    embed = features.embed[0]  # (d, g, g)
    weights = torch.nn.functional.adaptive_avg_pool2d(
        torch.sigmoid(evidence.mask_logits)[None], embed.shape[-2:]
    )[0, 0]
    region = (embed * weights).sum((1, 2)) / weights.sum()
    with torch.no_grad():
        log_p = torch.nn.functional.logsigmoid(model.heads["word"][0](region))
    words = model.tokenizer.convert_tokens_to_ids(["red", "square"])
    assert evidence.word_fit == pytest.approx(float(log_p[words].min()), abs=1e-4)
    assert evidence.word_fit < 0
    assert target_evidence(model, tiny_image, "Please segment the thing.").word_fit == 0.0


def test_evidence_is_the_lm_first_token_and_the_forced_seg(seeded_model, tiny_image):
    model = seeded_model().eval()
    prompt = "Please segment the red square."
    evidence = target_evidence(model, tiny_image, prompt)
    # the odds of [SEG] where the answer starts, from the prompt alone
    features = model.encode_image(model.preprocess([tiny_image]))
    ids = torch.tensor([prompt_ids(model.tokenizer, prompt, model.num_image_tokens)])
    with torch.no_grad():
        embeds = model.embed_inputs(ids, features, torch.full((1,), -1.0))
        logits = model.lm(inputs_embeds=embeds).logits[0, -1].float()
    logits[banned_tokens(model)] = float("-inf")
    p_seg = float(logits.softmax(-1)[model.ids.seg])
    assert evidence.seg_log_odds == pytest.approx(math.log(p_seg / (1 - p_seg)), abs=1e-4)
    assert math.isfinite(evidence.prior_peak)
    assert evidence.mask_logits.shape == (1, model.config.mask_grid, model.config.mask_grid)
    with pytest.raises(InputError, match="prompt is empty"):
        target_evidence(model, tiny_image, "   ")


def test_answer_referring_follows_the_decision(seeded_model, tiny_image):
    prompt = "Please segment the red square."
    yes = seeded_model(target_decision=[0.0, 0.0, 1.0]).eval()
    answer = answer_referring(yes, tiny_image, prompt)
    assert len(answer.masks) == 1 and answer.masks[0].shape == tiny_image.shape[:2]
    evidence = target_evidence(yes, tiny_image, prompt)
    assert np.array_equal(
        answer.masks[0],
        (
            torch.nn.functional.interpolate(
                evidence.mask_logits[:, None], size=tiny_image.shape[:2], mode="bilinear"
            )[0, 0]
            > 0
        ).numpy(),
    )
    assert np.array_equal(referring_mask(yes, tiny_image, prompt), answer.masks[0])
    no = seeded_model(target_decision=[0.0, 0.0, -1.0]).eval()
    refused = answer_referring(no, tiny_image, prompt)
    assert refused.masks == [] and "[SEG]" not in refused.text
    assert referring_mask(no, tiny_image, prompt) is None
    with pytest.raises(InputError, match="no target_decision"):
        answer_referring(seeded_model().eval(), tiny_image, prompt)


def test_fit_separates_the_fitting_lines_and_needs_both_kinds(seeded_model, tiny_data):
    model = seeded_model().eval()
    samples = read_finetune_jsonl(tiny_data).samples
    lines = referring_lines(samples)
    # the tiny data's refer and no-target lines; captions, regions and video are left out
    assert [target for _, target in lines] == [True, False] * 3
    fit = fit_target_decision(model, samples)
    assert fit.lines == 6 and fit.targets == 3
    assert all(math.isfinite(w) for w in fit.weights)
    # the reported accuracies are those of the fitted weights on the same lines
    said = [
        has_target(fit.weights, target_evidence(model, load_image(s.frames[0]).pixels,
                                                s.conversation[0]["content"]))
        for s, _ in lines
    ]  # fmt: skip
    assert fit.t_acc == pytest.approx(np.mean(said[0::2]))
    assert fit.n_acc == pytest.approx(1 - np.mean(said[1::2]))
    with pytest.raises(InputError, match="both with a target"):
        fit_target_decision(model, [s for s, target in lines if target])


def test_the_fit_weighs_the_word_fit_when_the_model_knows_its_phrase_words(seeded_model, tiny_data):
    model = seeded_model(word_loss_weight=0.5, phrase_words=["red", "square"]).eval()
    samples = read_finetune_jsonl(tiny_data).samples
    fit = fit_target_decision(model, samples)
    assert len(fit.weights) == 4 and all(math.isfinite(w) for w in fit.weights)
    said = [
        has_target(fit.weights, target_evidence(model, load_image(s.frames[0]).pixels,
                                                s.conversation[0]["content"]))
        for s, _ in referring_lines(samples)
    ]  # fmt: skip
    assert fit.t_acc == pytest.approx(np.mean(said[0::2]))


def test_calibrate_writes_the_decision_the_backend_then_uses(
    seeded_model, tiny_data, tiny_image, tmp_path
):
    model = seeded_model().eval()
    model.save_pretrained(tmp_path / "ckpt")
    assert main(["calibrate", str(tmp_path / "ckpt"), "--data", str(tiny_data)]) == 0
    written = json.loads((tmp_path / "ckpt" / "config.json").read_text())["target_decision"]
    assert len(written) == 3
    backend = SegTokenModelBackend(tmp_path / "ckpt")
    assert backend.config.target_decision == tuple(written)
    expected = answer_referring(backend.model, tiny_image, "Please segment the red square.").masks
    masks = backend.segment_expression(tiny_image, "the red square")
    assert len(masks) == len(expected)
    assert all(np.array_equal(a, b) for a, b in zip(masks, expected, strict=True))
    assert main(["calibrate", str(tmp_path / "nowhere"), "--data", str(tiny_data)]) != 0


def test_mask_refine_guides_the_answer_by_the_image(seeded_model, tiny_image):
    from pixelground.models.generation import guided_masks

    prompt = "Please segment the red square."
    plain = seeded_model(target_decision=[0.0, 0.0, 1.0]).eval()
    refined = seeded_model(target_decision=[0.0, 0.0, 1.0], mask_refine=0.0625).eval()
    logits = target_evidence(refined, tiny_image, prompt).mask_logits
    expected = guided_masks(logits, tiny_image, radius=4, eps=1e-3)[0]  # 0.0625 of 64 pixels
    assert np.array_equal(referring_mask(refined, tiny_image, prompt), expected)
    assert not np.array_equal(expected, referring_mask(plain, tiny_image, prompt))
    for bad in ({"mask_refine": 0.0}, {"mask_refine": 1.5}, {"mask_refine_eps": 0.0}):
        with pytest.raises(InputError, match="mask_refine"):
            SegModelConfig(**bad)


def test_captions_and_videos_guide_each_frames_masks_by_that_frame(seeded_model, tiny_image):
    from pixelground.models.generation import bool_masks, frame_masks, guided_masks

    frames = [tiny_image, tiny_image[::-1].copy()]
    logits = torch.randn(2 * 2, 16, 16)  # two states on two frames, state-major
    plain = seeded_model().eval()
    assert np.array_equal(frame_masks(plain, logits, 2, frames), bool_masks(logits, 2, 2, (64, 64)))
    refined = seeded_model(mask_refine=0.0625).eval()
    masks = frame_masks(refined, logits, 2, frames)
    assert masks.shape == (2, 2, 64, 64)
    for f, frame in enumerate(frames):
        expected = guided_masks(logits.view(2, 2, 16, 16)[:, f], frame, radius=4, eps=1e-3)
        assert np.array_equal(masks[:, f], expected)
