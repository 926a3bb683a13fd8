"""Forward pass and losses of a tiny [SEG]-token model (image, region and video lines)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixelground.models.config import SegModelConfig
from pixelground.models.data import SegDataset, collate, read_finetune_jsonl
from pixelground.models.seg_model import SegTokenModel, mask_losses
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
        out = tiny_model(**tiny_batch)
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
    tiny_model(**tiny_batch)["loss"].backward()
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
        tiny_model(**batch)


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
        from_main = tiny_model.frame_lm_states(features, times, hidden, batch["input_ids"])
        own_pass = tiny_model.frame_lm_states(features, times, None, None)
    assert from_main.shape == (3, tiny_model.config.lm_grid**2, tiny_model.lm.config.hidden_size)
    assert torch.allclose(from_main, own_pass, atol=1e-5)


def test_image_after_question_gives_visual_token_states_that_read_the_question(
    tiny_data, tiny_overrides
):
    torch.manual_seed(0)
    model = model_with(tiny_data, tiny_overrides, image_after_question=True).eval()
    samples = read_finetune_jsonl(tiny_data).samples
    dataset = SegDataset(samples, model.tokenizer, model.config, train=False)
    batch = collate([dataset[i] for i in range(len(dataset))], model.ids.pad)
    row = batch["input_ids"][0].tolist()
    assert row[:2] == [model.ids.bos, model.ids.user]
    assert row.index(model.ids.image) < row.index(model.ids.assistant)
    with torch.no_grad():
        assert torch.isfinite(model(**batch)["loss"])
        rows = torch.tensor([0, 1])  # one image, two questions (the red square, the green star)
        features = model.encode_image(batch["pixel_values"][batch["frame_image"][rows]])
        times = torch.full((2,), -1.0)
        embeds = model.embed_inputs(batch["input_ids"][rows], features, times)
        hidden = model.lm(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1]
        read = model.frame_lm_states(features, times, hidden, batch["input_ids"][rows])
        own_pass = model.frame_lm_states(features, times, None, None)
    assert torch.allclose(own_pass[0], own_pass[1])  # the image alone: the same states
    assert not torch.allclose(read[0], read[1], atol=1e-4)  # after the question: not


def test_fusion_queries_carry_their_text_tokens_and_every_new_part_learns(
    tiny_fusion_model, tiny_batch
):
    tiny_fusion_model.zero_grad()
    out = tiny_fusion_model(**tiny_batch)
    assert out["mask_logits"].shape[0] == tiny_batch["gt_masks"].shape[0] == 11
    out["loss"].backward()
    parts = {
        "fusion": tiny_fusion_model.fusion,
        "text_reader": tiny_fusion_model.text_reader,
        "lm_to_embed": tiny_fusion_model.lm_to_embed,
        "top_proj": tiny_fusion_model.neck.top_proj,
    }
    for name, module in parts.items():
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), name
    assert tiny_fusion_model.text_latents.grad is not None
    hidden = torch.randn(1, 9, tiny_fusion_model.lm.config.hidden_size)
    queries = tiny_fusion_model.seg_queries(hidden, torch.tensor([[0, 8]]))
    assert queries.shape == (1, 1 + 2, tiny_fusion_model.lm.config.hidden_size)
    tiny_fusion_model.zero_grad()


def test_no_target_rows_decode_the_state_after_assistant_against_an_empty_mask(
    tiny_fusion_model, tiny_batch
):
    ids = tiny_fusion_model.ids
    input_ids = tiny_batch["input_ids"]
    positions = tiny_fusion_model._no_target_positions(input_ids)
    rows = positions[:, 0].tolist()
    assert len(rows) == 3  # the three "No such shape." lines, not the region captions
    for row, position in positions.tolist():
        assert int(input_ids[row, position - 1]) == ids.assistant
        assert not bool((input_ids[row] == ids.seg).any())
        assert not bool((input_ids[row] == ids.region).any())
    # the empty targets enter the loss: a model that predicts "everything" is penalised more
    # with them than without
    with torch.no_grad():
        tiny_fusion_model.config.no_target_masks = False
        without = tiny_fusion_model(**tiny_batch)
        tiny_fusion_model.config.no_target_masks = True
        with_empty = tiny_fusion_model(**tiny_batch)
    assert float(with_empty["dice_loss"]) != pytest.approx(float(without["dice_loss"]))
    assert with_empty["mask_logits"].shape == without["mask_logits"].shape


def test_phrase_words_are_the_tokens_between_p_tags_before_each_seg(tiny_model, tiny_batch):
    input_ids = tiny_batch["input_ids"]
    where = (input_ids == tiny_model.ids.seg).nonzero()
    words, _ = tiny_model.phrase_words(input_ids, where)
    named = [
        sorted(tiny_model.tokenizer.convert_ids_to_tokens(row.nonzero()[:, 0].tolist()))
        for row in words
    ]
    gcg = [n for n in named if n]
    assert gcg == [["a", "red", "square"], ["a", "blue", "circle"]] * 3
    assert len(named) - len(gcg) == 4  # 3 refer lines and the video line ground no phrase


def test_word_loss_teaches_both_feature_grids_and_the_context_layers_the_phrase_words(
    tiny_data, tiny_batch, tiny_overrides
):
    torch.manual_seed(0)
    model = model_with(tiny_data, tiny_overrides, word_loss_weight=0.5, context_layers=1)
    config = model.config
    out = model(**tiny_batch)
    rest = always_on_loss(config, out)
    assert out["word_loss"].item() > 0
    assert out["loss"].item() == pytest.approx((rest + 0.5 * out["word_loss"]).item(), rel=1e-5)
    out["word_loss"].backward()
    for head in model.word_heads:
        assert float(head.weight.grad.abs().sum()) > 0
    assert float(model.neck.context_pos.grad.abs().sum()) > 0  # the places' self-attention
    assert any(float(p.grad.abs().sum()) > 0 for p in model.vision.parameters())

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = out["word_loss"].item()
    for _ in range(15):
        optimizer.zero_grad()
        model(**tiny_batch)["word_loss"].backward()
        optimizer.step()
    assert model(**tiny_batch)["word_loss"].item() < 0.5 * first

    refer_only = {**tiny_batch, "input_ids": tiny_batch["input_ids"].clone()}
    refer_only["input_ids"][refer_only["input_ids"] == model.ids.p_close] = model.ids.pad
    assert model(**refer_only)["word_loss"].item() == 0.0


def test_word_loss_and_context_layers_are_off_by_default(tiny_model, tiny_batch):
    assert tiny_model.word_heads is None and tiny_model.neck.context is None
    with torch.no_grad():
        assert float(tiny_model(**tiny_batch)["word_loss"]) == 0.0


def test_head_word_loss_teaches_each_place_the_last_word_of_its_phrase(
    tiny_data, tiny_batch, tiny_overrides
):
    torch.manual_seed(0)
    model = model_with(tiny_data, tiny_overrides, head_word_loss_weight=0.7)
    config, tokenizer = model.config, model.tokenizer
    assert model.word_heads is None
    where = (tiny_batch["input_ids"] == model.ids.seg).nonzero()
    heads = [
        tokenizer.convert_ids_to_tokens(int(i)) if i >= 0 else None
        for i in model.phrase_words(tiny_batch["input_ids"], where)[1]
    ]
    assert [h for h in heads if h] == ["square", "circle"] * 3
    assert heads.count(None) == 4  # refer and video [SEG]s ground no phrase

    out = model(**tiny_batch)
    assert out["word_loss"].item() == 0.0
    first = out["head_word_loss"].item()
    assert first > 0
    rest = always_on_loss(config, out)
    assert out["loss"].item() == pytest.approx(
        (rest + 0.7 * out["head_word_loss"]).item(), rel=1e-5
    )
    out["head_word_loss"].backward()
    for head in model.head_word_heads:
        assert float(head.weight.grad.abs().sum()) > 0
    assert any(float(p.grad.abs().sum()) > 0 for p in model.vision.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(15):
        optimizer.zero_grad()
        model(**tiny_batch)["head_word_loss"].backward()
        optimizer.step()
    assert model(**tiny_batch)["head_word_loss"].item() < 0.5 * first


def test_loss_scale_multiplies_a_terms_weight(tiny_data, tiny_batch, tiny_overrides):
    model = model_with(tiny_data, tiny_overrides, head_word_loss_weight=0.5).eval()
    with torch.no_grad():
        full = model(**tiny_batch)
        model.loss_scale = {"head_word_loss": 0.0, "lm_loss": 2.0}
        scaled = model(**tiny_batch)
    assert float(full["head_word_loss"]) > 0
    expected = full["loss"] - 0.5 * full["head_word_loss"] + full["lm_loss"]
    assert float(scaled["loss"]) == pytest.approx(float(expected), rel=1e-5)


def test_point_loss_makes_the_places_of_a_map_compete():
    from pixelground.models.seg_model import point_loss

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
    out = model(**tiny_batch)
    assert float(out["point_loss"].detach()) > 0
    rest = always_on_loss(config, out)
    assert out["loss"].item() == pytest.approx((rest + 0.3 * out["point_loss"]).item(), rel=1e-5)
    out["point_loss"].backward()  # it reaches the language model through the [SEG] queries
    assert float(model.prior_query[0].weight.grad.abs().sum()) > 0
    assert any(float(p.grad.abs().sum()) > 0 for p in model.lm.parameters() if p.grad is not None)
    with pytest.raises(InputError, match="coarse_prior"):
        SegModelConfig.from_dict({"point_loss_weight": 0.3, "coarse_prior": False})


def test_mask_boxes_and_box_losses():
    from pixelground.models.seg_model import box_losses, mask_boxes

    masks = torch.zeros(3, 10, 20)
    masks[0, 2:5, 4:10] = 1  # rows 2-4, columns 4-9
    masks[1, 9, 19] = 1  # the last pixel
    boxes = mask_boxes(masks)
    assert boxes[0].tolist() == pytest.approx([4 / 20, 2 / 10, 10 / 20, 5 / 10])
    assert boxes[1].tolist() == pytest.approx([19 / 20, 9 / 10, 1.0, 1.0])
    assert boxes[2].tolist() == [0.0, 0.0, 0.0, 0.0]  # empty
    target = boxes[:1]
    assert float(box_losses(target, target)) == pytest.approx(0.0, abs=1e-6)
    # half-overlapping, same size: L1 0.25 + 0.25, IoU 1/3, hull = union so GIoU = IoU
    right = torch.tensor([[0.25, 0.0, 0.75, 0.5]])
    assert float(box_losses(right, torch.tensor([[0.0, 0.0, 0.5, 0.5]]))) == pytest.approx(
        0.5 + 1 - 1 / 3
    )
    # disjoint boxes are still ranked by how far apart they are (the GIoU hull term)
    near = torch.tensor([[0.5, 0.0, 0.6, 0.1]])
    far = torch.tensor([[0.9, 0.0, 1.0, 0.1]])
    origin = torch.tensor([[0.0, 0.0, 0.1, 0.1]])
    assert float(box_losses(near, origin)) < float(box_losses(far, origin))


def test_box_loss_enters_the_loss_and_its_box_prompts_the_decoder(
    tiny_data, tiny_batch, tiny_overrides
):
    from pixelground.core.errors import InputError

    torch.manual_seed(0)
    model = model_with(tiny_data, tiny_overrides, box_loss_weight=0.7, box_prompt=True)
    out = model(**tiny_batch)
    assert float(out["box_loss"].detach()) > 0
    rest = always_on_loss(model.config, out)
    assert out["loss"].item() == pytest.approx((rest + 0.7 * out["box_loss"]).item(), rel=1e-5)
    out["box_loss"].backward()  # it reaches the language model through the [SEG] queries
    assert float(model.box_head.inp.weight.grad.abs().sum()) > 0
    assert any(float(p.grad.abs().sum()) > 0 for p in model.lm.parameters() if p.grad is not None)
    # the decoder reads the box: moving the head's output changes the masks
    model.eval()
    with torch.no_grad():
        before = model(**tiny_batch)["mask_logits"]
        model.box_head.out[-1].bias += 3.0
        after = model(**tiny_batch)["mask_logits"]
    assert not torch.allclose(before, after)
    with pytest.raises(InputError, match="box_prompt needs box_loss_weight"):
        SegModelConfig.from_dict({"box_prompt": True})


@pytest.mark.parametrize("prefix", [False, True])
def test_image_prefix_attention_lets_each_visual_token_see_the_whole_image(
    tiny_data, tiny_batch, tiny_overrides, prefix
):
    torch.manual_seed(0)
    model = model_with(tiny_data, tiny_overrides, image_prefix_attention=prefix).eval()
    image_rows = torch.tensor([0, 4, 8])  # one line of each of the three images
    ids = tiny_batch["input_ids"][image_rows]
    mask = tiny_batch["attention_mask"][image_rows]
    first, last = 1, model.num_image_tokens  # the visual tokens follow <s>
    assert bool((ids[:, first : last + 1] == model.ids.image).all())

    def states(embeds: torch.Tensor) -> torch.Tensor:
        attention = model.lm_attention(ids, mask)
        out = model.lm(inputs_embeds=embeds, attention_mask=attention, output_hidden_states=True)
        return out.hidden_states[-1]

    with torch.no_grad():
        features = model.encode_image(
            tiny_batch["pixel_values"][tiny_batch["frame_image"][image_rows]]
        )
        times = torch.full((3,), -1.0)
        embeds = model.embed_inputs(ids, features, times)
        base = states(embeds)
        changed = embeds.clone()
        changed[:, last] += 1.0  # the last visual token
        after = states(changed)
        # the main pass and a pass of the image's own give its visual tokens the same states
        from_main = model.frame_lm_states(features, times, base, ids)
        own_pass = model.frame_lm_states(features, times, None, None)
        assert torch.isfinite(model(**tiny_batch)["loss"])
        answer = model.generate_grounded(np.zeros((64, 64, 3), np.uint8), "the red square")
    assert torch.allclose(base[:, :1], after[:, :1])  # <s> stays causal
    assert torch.allclose(base[:, first], after[:, first]) is not prefix  # the first place
    assert torch.allclose(from_main, own_pass, atol=1e-5)
    assert isinstance(answer.text, str)


def test_greedy_decoding_with_image_prefix_attention_matches_a_pass_over_the_whole_answer(
    tiny_data, tiny_overrides
):
    from pixelground.models.generation import greedy, prompt_tensor

    torch.manual_seed(0)
    model = model_with(tiny_data, tiny_overrides, image_prefix_attention=True).eval()
    with torch.no_grad():
        features = model.encode_image(model.preprocess([np.zeros((64, 64, 3), np.uint8)]))
        times = torch.full((1,), -1.0)
        ids = prompt_tensor(model, "Please segment the red square.", model.num_image_tokens)
        embeds = model.embed_inputs(ids, features, times)
        generated, hidden, _ = greedy(model, ids, embeds, 6)
        whole = torch.cat([ids, torch.tensor([generated])], 1)
        out = model.lm(
            inputs_embeds=model.embed_inputs(whole, features, times),
            attention_mask=model.lm_attention(whole),
            output_hidden_states=True,
        )
    assert generated  # random weights still write tokens (none is </s> at every step)
    assert torch.allclose(hidden, out.hidden_states[-1], atol=1e-4)


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


def test_time_query_starts_as_without_it_and_lets_each_seg_move_its_own_way(
    tiny_data, tiny_batch, tiny_overrides
):
    torch.manual_seed(0)
    plain = model_with(tiny_data, tiny_overrides).eval()
    torch.manual_seed(0)
    timed = model_with(tiny_data, tiny_overrides, time_query=True).eval()
    with torch.no_grad():  # built last and zero at first: the same model
        same = plain(**tiny_batch)["mask_logits"], timed(**tiny_batch)["mask_logits"]
    assert torch.allclose(*same, atol=1e-6)
    timed.train()
    timed(**tiny_batch)["loss"].backward()  # the video line's frames reach it
    assert float(timed.time_in.weight.grad.abs().sum()) > 0

    def prior_change(model: SegTokenModel) -> torch.Tensor:
        """How two [SEG] states' coarse priors on one frame change from time 0 to time 1."""
        frame = model.encode_image(tiny_batch["pixel_values"][:1])
        features = frame.select(torch.zeros(2, dtype=torch.long))
        hidden = model.lm.config.hidden_size
        states = torch.randn(2, hidden, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            _, start = model.decode_masks(states, features, torch.zeros(2))
            _, end = model.decode_masks(states, features, torch.ones(2))
        return end - start

    with torch.no_grad():
        torch.nn.init.normal_(timed.time_in.weight)
    plain_change, timed_change = prior_change(plain), prior_change(timed)
    # without it the time moves every [SEG]'s map alike; with it each [SEG] its own way
    assert torch.allclose(plain_change[0], plain_change[1], atol=1e-5)
    assert not torch.allclose(timed_change[0], timed_change[1], atol=1e-3)
    images = torch.ones(2, timed.lm.config.hidden_size)
    with torch.no_grad():  # images (time -1) are left as they are
        assert torch.equal(timed.with_time(images, -torch.ones(2)), images)


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
    seen = model.image_word_losses(**tiny_batch)
    blind_rows = torch.ones(rows, dtype=torch.bool)
    blind = model.image_word_losses(**{**tiny_batch, "colour_blind": blind_rows})
    # a phrase of "a red square" is "a square" to a colour-blind row: a different word loss,
    # the same head noun
    assert blind["word_loss"].item() != pytest.approx(seen["word_loss"].item())
    assert blind["head_word_loss"].item() == pytest.approx(seen["head_word_loss"].item())
    blind["word_loss"].backward()
    for head in model.word_heads:
        assert float(head.weight.grad[columns].abs().sum()) == 0.0
        assert float(head.weight.grad[~columns].abs().sum()) > 0
    model.zero_grad()
    seen = model.image_word_losses(**tiny_batch)
    seen["word_loss"].backward()
    assert all(float(head.weight.grad[columns].abs().sum()) > 0 for head in model.word_heads)
