"""Forward pass and losses of a tiny [SEG]-token model (image, region and video lines)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixelground.models.config import SegModelConfig
from pixelground.models.data import read_finetune_jsonl
from pixelground.models.losses import mask_losses, phrase_words, point_loss
from pixelground.models.objective import image_word_losses, training_losses
from pixelground.models.seg_model import SegTokenModel
from pixelground.models.tokenizer import build_word_tokenizer


def always_on_loss(config: SegModelConfig, out: dict[str, torch.Tensor]) -> torch.Tensor:
    """The weighted sum of the loss terms every model has (LM, mask BCE and DICE, prior)."""
    return (
        config.lm_loss_weight * out["lm_loss"]
        + config.bce_loss_weight * out["bce_loss"]
        + config.dice_loss_weight * out["dice_loss"]
        + config.prior_loss_weight * out["prior_loss"]
    )


def model_with(tiny_data, tiny_overrides, **options) -> SegTokenModel:
    """A tiny model with ``options`` on top of the tiny architecture; its word-level tokenizer
    is built from the tiny data."""
    tokenizer = build_word_tokenizer(read_finetune_jsonl(tiny_data).texts())
    return SegTokenModel(SegModelConfig.from_dict({**tiny_overrides, **options}), tokenizer)


def test_forward_gives_three_finite_positive_loss_terms(tiny_model, tiny_batch):
    with torch.no_grad():
        out = training_losses(tiny_model, tiny_batch)
    for key in ("lm_loss", "bce_loss", "dice_loss", "prior_loss"):
        value = out[key].item()
        assert math.isfinite(value) and value > 0, key
    c = tiny_model.config
    assert out["loss"].item() == pytest.approx(always_on_loss(c, out).item(), rel=1e-5)
    # 3 refer [SEG] + 3 x 2 GCG [SEG] + 1 video [SEG] on its 2 sampled frames
    assert out["mask_logits"].shape == (11, c.mask_grid, c.mask_grid)
    assert tiny_batch["gt_masks"].shape[0] == 11


def test_every_part_gets_a_gradient(tiny_model, tiny_batch):
    tiny_model.zero_grad()
    training_losses(tiny_model, tiny_batch)["loss"].backward()
    parts = {
        "vision": tiny_model.vision,
        "lm": tiny_model.lm,
        "neck": tiny_model.neck,
        "decoder": tiny_model.mask_decoder,
        "seg_proj": tiny_model.seg_proj,
        "time_proj": tiny_model.time_proj,
        "region_proj": tiny_model.neck.region_proj,
        "prior": tiny_model.prior_query,
        "reader": tiny_model.reader,
        "prior_lm": tiny_model.prior_key_lm,
    }
    for name, module in parts.items():
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), name
    tiny_model.zero_grad()


def test_mask_count_mismatch_is_an_error(tiny_model, tiny_batch):
    batch = dict(tiny_batch)
    batch["gt_masks"] = batch["gt_masks"][:-1]
    with pytest.raises(ValueError, match="masks"):
        training_losses(tiny_model, batch)


def test_mask_losses_are_small_for_a_confident_right_mask():
    target = torch.zeros(2, 32, 32)
    target[:, 8:24, 8:24] = 1
    good = (target[:, ::2, ::2] * 2 - 1) * 20
    bce, dice = mask_losses(good, target)
    bad_bce, bad_dice = mask_losses(-good, target)
    assert float(bce) < 0.1 and float(dice) < 0.1
    assert float(bad_bce) > 1 and float(bad_dice) > 0.9


def test_seg_state_is_the_one_that_predicts_it_and_reads_the_context(tiny_model):
    hidden = torch.randn(2, 6, tiny_model.lm.config.hidden_size)
    where = torch.tensor([[0, 3], [1, 5]])
    with torch.no_grad():
        base = tiny_model.seg_queries(hidden, where)
        changed = hidden.clone()
        changed[0, 0] = torch.randn_like(
            changed[0, 0]
        )  # an earlier token of row 0 changes its query
        changed[1, 5] = torch.randn_like(
            changed[1, 5]
        )  # the [SEG] token itself is not read in "predict" mode
        after = tiny_model.seg_queries(changed, where)
    assert not torch.allclose(base[0], after[0])
    assert torch.allclose(base[1], after[1])


def test_image_token_states_of_the_main_pass_equal_a_pass_of_their_own(tiny_model, tiny_batch):
    # An image's visual tokens open its row, so the causal LM gives them the same states in
    # the full sequence as in a pass over <s> + the tokens alone (the video-frame path).
    image_rows = torch.tensor([0, 4, 8])  # one line of each of the three images
    batch = {
        "pixel_values": tiny_batch["pixel_values"][tiny_batch["frame_image"][image_rows]],
        "input_ids": tiny_batch["input_ids"][image_rows],
    }
    with torch.no_grad():
        features = tiny_model.encode_image(batch["pixel_values"])
        times = torch.full((3,), -1.0)
        embeds = tiny_model.embed_inputs(batch["input_ids"], features, times)
        hidden = tiny_model.lm(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1]
        rows = torch.arange(3)
        from_main = tiny_model.frame_lm_states(features, times, hidden, batch["input_ids"], rows)
        # frames with a time (video frames) get a pass of their own
        own = tiny_model.frame_lm_states(features, torch.zeros(3), hidden, batch["input_ids"], rows)
    assert from_main.shape == (3, tiny_model.config.lm_grid**2, tiny_model.lm.config.hidden_size)
    assert torch.allclose(from_main, own, atol=1e-5)


def test_phrase_words_are_the_tokens_between_p_tags_before_each_seg(tiny_model, tiny_batch):
    input_ids = tiny_batch["input_ids"]
    where = (input_ids == tiny_model.ids.seg).nonzero()
    ids = tiny_model.ids
    words, _ = phrase_words(input_ids, where, ids.p_open, ids.p_close, len(tiny_model.tokenizer))
    named = [
        sorted(tiny_model.tokenizer.convert_ids_to_tokens(row.nonzero()[:, 0].tolist()))
        for row in words
    ]
    gcg = [n for n in named if n]
    assert gcg == [["a", "red", "square"], ["a", "blue", "circle"]] * 3
    assert len(named) - len(gcg) == 4  # 3 refer lines and the video line ground no phrase


def test_word_loss_teaches_both_feature_grids_the_phrase_words(
    tiny_data, tiny_batch, tiny_overrides
):
    torch.manual_seed(0)
    model = model_with(tiny_data, tiny_overrides, word_loss_weight=0.5)
    config = model.config
    out = training_losses(model, tiny_batch)
    rest = always_on_loss(config, out)
    assert out["word_loss"].item() > 0
    assert out["loss"].item() == pytest.approx((rest + 0.5 * out["word_loss"]).item(), rel=1e-5)
    out["word_loss"].backward()
    for head in model.heads["word"]:
        assert float(head.weight.grad.abs().sum()) > 0
    assert any(float(p.grad.abs().sum()) > 0 for p in model.vision.parameters())

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = out["word_loss"].item()
    for _ in range(15):
        optimizer.zero_grad()
        training_losses(model, tiny_batch)["word_loss"].backward()
        optimizer.step()
    assert training_losses(model, tiny_batch)["word_loss"].item() < 0.5 * first

    refer_only = {**tiny_batch, "input_ids": tiny_batch["input_ids"].clone()}
    refer_only["input_ids"][refer_only["input_ids"] == model.ids.p_close] = model.ids.pad
    assert training_losses(model, refer_only)["word_loss"].item() == 0.0


def test_word_loss_is_off_by_default(tiny_model, tiny_batch):
    assert tiny_model.head("word") is None
    with torch.no_grad():
        assert float(training_losses(tiny_model, tiny_batch)["word_loss"]) == 0.0


def test_head_word_loss_teaches_each_place_the_last_word_of_its_phrase(
    tiny_data, tiny_batch, tiny_overrides
):
    torch.manual_seed(0)
    model = model_with(tiny_data, tiny_overrides, head_word_loss_weight=0.7)
    config, tokenizer = model.config, model.tokenizer
    assert model.head("word") is None
    where = (tiny_batch["input_ids"] == model.ids.seg).nonzero()
    heads = [
        tokenizer.convert_ids_to_tokens(int(i)) if i >= 0 else None
        for i in phrase_words(
            tiny_batch["input_ids"], where, model.ids.p_open, model.ids.p_close, len(tokenizer)
        )[1]
    ]
    assert [h for h in heads if h] == ["square", "circle"] * 3
    assert heads.count(None) == 4  # refer and video [SEG]s ground no phrase

    out = training_losses(model, tiny_batch)
    assert out["word_loss"].item() == 0.0
    first = out["head_word_loss"].item()
    assert first > 0
    rest = always_on_loss(config, out)
    assert out["loss"].item() == pytest.approx(
        (rest + 0.7 * out["head_word_loss"]).item(), rel=1e-5
    )
    out["head_word_loss"].backward()
    for head in model.heads["head_word"]:
        assert float(head.weight.grad.abs().sum()) > 0
    assert any(float(p.grad.abs().sum()) > 0 for p in model.vision.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(15):
        optimizer.zero_grad()
        training_losses(model, tiny_batch)["head_word_loss"].backward()
        optimizer.step()
    assert training_losses(model, tiny_batch)["head_word_loss"].item() < 0.5 * first


def test_loss_scale_multiplies_a_terms_weight(tiny_data, tiny_batch, tiny_overrides):
    model = model_with(tiny_data, tiny_overrides, head_word_loss_weight=0.5).eval()
    with torch.no_grad():
        full = training_losses(model, tiny_batch)
        scaled = training_losses(model, tiny_batch, {"head_word_loss": 0.0, "lm_loss": 2.0})
    assert float(full["head_word_loss"]) > 0
    expected = full["loss"] - 0.5 * full["head_word_loss"] + full["lm_loss"]
    assert float(scaled["loss"]) == pytest.approx(float(expected), rel=1e-5)


def test_point_loss_makes_the_places_of_a_map_compete():
    pooled = torch.zeros(2, 4, 4)
    pooled[0, 0, 0] = pooled[0, 0, 1] = 1.0  # the target covers two places
    on_target = torch.full((1, 4, 4), -10.0)
    on_target[0, 0, :2] = 10.0
    on_other = torch.full((1, 4, 4), -10.0)
    on_other[0, 3, 3] = 10.0
    hedging = on_target.clone()
    hedging[0, 3, 3] = 10.0  # the target and a look-alike alike
    right = float(point_loss(on_target, pooled[:1]))
    assert right == pytest.approx(math.log(2), abs=1e-3)  # the target's own spread
    assert float(point_loss(hedging, pooled[:1])) == pytest.approx(math.log(3), abs=1e-3)
    assert float(point_loss(on_other, pooled[:1])) > 15
    # a map whose target is empty is left out; none with a target gives 0
    both = torch.cat([on_target, on_other])
    assert float(point_loss(both, pooled)) == pytest.approx(right, abs=1e-6)
    assert float(point_loss(both, torch.zeros(2, 4, 4))) == 0.0


def test_point_loss_enters_the_loss_with_its_weight(tiny_data, tiny_batch, tiny_overrides):
    from pixelground.core.errors import InputError

    model = model_with(tiny_data, tiny_overrides, point_loss_weight=0.3)
    config = model.config
    out = training_losses(model, tiny_batch)
    assert float(out["point_loss"].detach()) > 0
    rest = always_on_loss(config, out)
    assert out["loss"].item() == pytest.approx((rest + 0.3 * out["point_loss"]).item(), rel=1e-5)
    out["point_loss"].backward()  # it reaches the language model through the [SEG] queries
    assert float(model.prior_query[0].weight.grad.abs().sum()) > 0
    assert any(float(p.grad.abs().sum()) > 0 for p in model.lm.parameters() if p.grad is not None)
    with pytest.raises(InputError, match="coarse_prior"):  # a removed option, set on
        SegModelConfig.from_dict({"point_loss_weight": 0.3, "coarse_prior": False})


def test_mask_islands_under_min_mask_island_cells_leave_the_upsampled_mask():
    from pixelground.models.generation import bool_masks

    logits = torch.full((2, 8, 8), -4.0)
    logits[:, 1:5, 1:5] = 3.0  # 16 cells
    logits[0, 7, 7] = 2.0  # a one-cell island on the first mask only
    kept = bool_masks(logits, 2, 1, (32, 32))
    cleaned = bool_masks(logits, 2, 1, (32, 32), min_island=2)
    assert kept.shape == cleaned.shape == (2, 1, 32, 32)
    assert kept[0, 0, 28:, 28:].any() and not cleaned[0, 0, 28:, 28:].any()
    assert np.array_equal(cleaned[0, 0, :24, :24], kept[0, 0, :24, :24])
    assert np.array_equal(cleaned[1], kept[1])  # nothing small: nothing changes
    assert not bool_masks(logits, 2, 1, (32, 32), min_island=17).any()


def test_colour_blind_rows_train_no_colour_word_and_every_other_word(
    tiny_data, tiny_batch, tiny_overrides
):
    torch.manual_seed(0)
    model = model_with(tiny_data, tiny_overrides, word_loss_weight=0.5, head_word_loss_weight=1)
    tokenizer = model.tokenizer
    columns = model.colour_columns()
    named = tokenizer.convert_ids_to_tokens(columns.nonzero()[:, 0].tolist())
    assert sorted(named) == ["blue", "green", "red"]
    rows = len(tiny_batch["input_ids"])
    assert not tiny_batch["colour_blind"].any()
    seen = image_word_losses(model, tiny_batch)
    blind_rows = torch.ones(rows, dtype=torch.bool)
    blind = image_word_losses(model, {**tiny_batch, "colour_blind": blind_rows})
    # a phrase of "a red square" is "a square" to a colour-blind row: a different word loss,
    # the same head noun
    assert blind["word_loss"].item() != pytest.approx(seen["word_loss"].item())
    assert blind["head_word_loss"].item() == pytest.approx(seen["head_word_loss"].item())
    blind["word_loss"].backward()
    for head in model.heads["word"]:
        assert float(head.weight.grad[columns].abs().sum()) == 0.0
        assert float(head.weight.grad[~columns].abs().sum()) > 0
    model.zero_grad()
    seen = image_word_losses(model, tiny_batch)
    seen["word_loss"].backward()
    assert all(float(head.weight.grad[columns].abs().sum()) > 0 for head in model.heads["word"])


def test_each_head_starts_the_same_whichever_other_heads_are_on(seeded_model):
    alone = seeded_model(word_loss_weight=0.5)
    many = seeded_model(
        word_loss_weight=0.5,
        head_word_loss_weight=1.0,
        motion_features=True,
        motion_loss_weight=1.0,
    )
    assert set(many.heads) == {"word", "head_word", "motion_net", "velocity"}
    for name, value in alone.state_dict().items():  # the shared heads and every other part
        assert torch.equal(value, many.state_dict()[name]), name
