"""``hue_views``: an expression that names no colour answered on the mean evidence of the
image and hue-rotated copies of it; the word check reads non-colour words the same way."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixelground.core.errors import InputError
from pixelground.models.backend import SegTokenModelBackend
from pixelground.models.config import SegModelConfig
from pixelground.models.data import rotate_hue
from pixelground.models.generation import bool_masks
from pixelground.models.hue_views import hue_views, view_angles, views_for
from pixelground.models.target_decision import (
    TargetEvidence,
    mask_word_fit,
    mean_evidence,
    referring_mask,
    target_evidence,
)


def test_views_are_the_image_and_rotations_evenly_round_the_wheel(tiny_image):
    assert view_angles(4) == pytest.approx([0, math.pi / 2, math.pi, 3 * math.pi / 2])
    views = hue_views(tiny_image, 3)
    assert len(views) == 3 and views[0] is tiny_image
    for view, angle in zip(views[1:], view_angles(3)[1:], strict=True):
        assert np.array_equal(view, rotate_hue(tiny_image, angle)) and not np.array_equal(
            view, tiny_image
        )
    assert hue_views(tiny_image, 1) == [tiny_image]
    with pytest.raises(InputError, match="hue views must be >= 1"):
        view_angles(0)


@pytest.mark.parametrize(
    ("expression", "views"),
    [
        ("the large star", 4),
        ("the second square from the top", 4),
        ("all triangles", 4),
        ("the large red star", 1),  # a rotation would make "red" wrong
        ("all Green shapes", 1),
        ("the first solid shape from the top", 1),  # the generic noun: nothing to misread
        ("all large shapes", 1),
    ],
)
def test_only_colour_free_expressions_naming_a_kind_get_views(expression, views):
    assert views_for(expression, 4, "shape") == views


def test_without_a_generic_noun_every_colour_free_expression_gets_views():
    assert views_for("all large shapes", 3) == 3


def test_hue_views_must_be_at_least_one():
    assert SegModelConfig(hue_views=6).hue_views == 6
    with pytest.raises(InputError, match="hue_views must be >= 1"):
        SegModelConfig(hue_views=0)


def test_mean_evidence_averages_every_input_and_the_mask_logits():
    one = TargetEvidence(1.0, 2.0, torch.zeros(1, 2, 2), -1.0)
    two = TargetEvidence(3.0, -2.0, torch.full((1, 2, 2), 4.0), -3.0)
    mean = mean_evidence([one, two])
    assert (mean.seg_log_odds, mean.prior_peak, mean.word_fit) == (2.0, 0.0, -2.0)
    assert torch.equal(mean.mask_logits, torch.full((1, 2, 2), 2.0))
    assert mean_evidence([one]) is one


def test_referring_mask_on_views_is_the_mask_of_the_mean_logits(seeded_model, tiny_image):
    prompt = "Please segment the square."
    model = seeded_model(target_decision=[0.0, 0.0, 1.0]).eval()
    logits = torch.stack(
        [target_evidence(model, view, prompt).mask_logits for view in hue_views(tiny_image, 3)]
    ).mean(0)
    expected = bool_masks(logits, 1, 1, tiny_image.shape[:2], model.config.min_mask_island)[0, 0]
    assert np.array_equal(referring_mask(model, tiny_image, prompt, views=3), expected)
    assert np.array_equal(
        referring_mask(model, tiny_image, prompt),
        bool_masks(
            target_evidence(model, tiny_image, prompt).mask_logits, 1, 1, tiny_image.shape[:2], 0
        )[0, 0],
    )


def test_the_word_check_reads_colours_on_the_image_and_other_words_on_every_view(
    seeded_model, tiny_image
):
    model = seeded_model(word_loss_weight=0.5, phrase_words=["red", "square"]).eval()
    mask = np.zeros(tiny_image.shape[:2], bool)
    mask[: tiny_image.shape[0] // 2, : tiny_image.shape[1] // 2] = True
    red, square = model.tokenizer.convert_tokens_to_ids(["red", "square"])
    per_view = []
    with torch.no_grad():
        for view in hue_views(tiny_image, 3):
            embed = model.encode_image(model.preprocess([view])).embed[0]
            weights = F.adaptive_avg_pool2d(
                torch.from_numpy(mask.astype(np.float32))[None, None], embed.shape[-2:]
            )[0, 0]
            region = (embed * weights).sum((1, 2)) / weights.sum()
            per_view.append(F.logsigmoid(model.word_heads[0](region)))
    expected = min(float(per_view[0][red]), float(torch.stack(per_view)[:, square].mean()))
    fit = mask_word_fit(model, tiny_image, mask, "the red square", views=3)
    assert fit == pytest.approx(expected, abs=1e-4)
    averaged = mask_word_fit(model, tiny_image, mask, "the square", views=3)
    assert averaged == pytest.approx(float(torch.stack(per_view)[:, square].mean()), abs=1e-4)
    assert averaged != pytest.approx(float(per_view[0][square]), abs=1e-4)


def test_the_backend_answers_colour_free_expressions_on_views(seeded_model, tmp_path, monkeypatch):
    seeded_model(target_decision=[0.0, 0.0, 1.0], hue_views=4).save_pretrained(tmp_path / "c")
    backend = SegTokenModelBackend(tmp_path / "c", device="cpu")
    asked: list[tuple[str, int]] = []

    def answer(model, image, prompt, views):
        asked.append((prompt, views))
        return None

    monkeypatch.setattr("pixelground.models.target_decision.referring_mask", answer)
    image = np.zeros((64, 64, 3), np.uint8)
    for expression in ("the large square", "the red square", "all large shapes"):
        assert backend.segment_expression(image, expression) == []
    template = backend.config.refer_template
    assert asked == [
        (template.format(expression="the large square"), 4),
        (template.format(expression="the red square"), 1),
        (template.format(expression="all large shapes"), 1),
    ]


def test_the_decision_is_fitted_on_the_evidence_it_will_weigh(seeded_model, tiny_data, monkeypatch):
    from pixelground.models import target_decision
    from pixelground.models.data import read_finetune_jsonl

    model = seeded_model(hue_views=3).eval()
    asked: list[tuple[str, int]] = []
    evidence = target_decision._views_evidence

    def recorded(model, image, prompt, views):
        asked.append((prompt, views))
        return evidence(model, image, prompt, views)

    monkeypatch.setattr(target_decision, "_views_evidence", recorded)
    samples = read_finetune_jsonl(tiny_data).samples  # every question names a colour
    turns = [
        {"role": "user", "content": "Please segment the square."},
        {"role": "assistant", "content": "[SEG]"},
    ]
    samples.append(dataclasses.replace(samples[0], conversation=turns))
    target_decision.fit_target_decision(model, samples)
    assert asked and all(views == views_for(prompt, 3, "shape") for prompt, views in asked)
    assert {views for _, views in asked} == {1, 3}  # colour-free questions on three views
