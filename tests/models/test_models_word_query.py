"""``query_word_loss_weight``: each [SEG] says which words its target has, and the coarse prior
prefers the places whose word heads say they have them."""

from __future__ import annotations

import pytest
import torch

from pixelground.core.errors import InputError
from pixelground.models.config import SegModelConfig
from pixelground.models.seg_model import covered_places

WORDS = {"word_loss_weight": 0.5}


def test_covered_places_are_the_places_half_inside_or_the_most_covered_one():
    masks = torch.zeros(3, 8, 8)
    masks[0, :4, :4] = 1  # the top-left place of a 2 x 2 grid, whole
    masks[1, 3:5, 3:5] = 1  # a quarter of each of the four places: the most covered, all
    masks[2, 0, 0] = 1  # one pixel: its place only
    places = covered_places(masks, 2)
    assert places[0].tolist() == [[True, False], [False, False]]
    assert places[1].all()
    assert places[2].tolist() == [[True, False], [False, False]]
    assert not covered_places(torch.zeros(1, 8, 8), 2).any()


@pytest.mark.parametrize("nouns", [0.0, 0.5])
def test_word_query_starts_as_without_it_and_learns_to_ask(seeded_model, tiny_batch, nouns):
    options = {**WORDS, "head_word_loss_weight": nouns}
    without = seeded_model(**options).eval()
    asking = seeded_model(**options, query_word_loss_weight=1.0)
    assert asking.word_gate.out_features == (2 if nouns else 1)
    with torch.no_grad():  # built last, its gate zero at first: the same masks
        before = without(**tiny_batch), asking.eval()(**tiny_batch)
    assert torch.allclose(before[0]["mask_logits"], before[1]["mask_logits"], atol=1e-6)
    assert float(before[0]["query_word_loss"]) == 0.0
    assert float(before[1]["query_word_loss"]) > 0.0
    asking.train()
    asking(**tiny_batch)["loss"].backward()
    assert float(asking.query_words.weight.grad.abs().sum()) > 0
    assert float(asking.word_gate.weight.grad.abs().sum()) > 0


def test_query_word_targets_are_the_phrase_or_the_asked_words_the_target_has(seeded_model):
    model = seeded_model(**WORDS, query_word_loss_weight=1.0).eval()
    ids = model.tokenizer.convert_tokens_to_ids
    words = [w for w in model.tokenizer.get_vocab() if w.isalpha()][:3]
    seg = model.ids.seg
    # row 0 asks for words[0] and words[1]; row 1 grounds the phrase words[2]
    row0 = [ids(words[0]), ids(words[1]), seg, model.ids.pad, model.ids.pad]
    row1 = [model.ids.p_open, ids(words[2]), model.ids.p_close, seg, model.ids.pad]
    input_ids = torch.tensor([row0, row1])
    where = (input_ids == seg).nonzero()
    asked = model.question_words(input_ids, where)
    assert asked[0].nonzero()[:, 0].tolist() == sorted([ids(words[0]), ids(words[1])])
    phrase, _ = model.phrase_words(input_ids, where)
    assert phrase[1].nonzero()[:, 0].tolist() == [ids(words[2])]
    # the word head says every place has words[0] and none has words[1]: row 0's target is
    # words[0] alone; row 1's is its phrase whatever the head says
    with torch.no_grad():
        head = model.word_heads[0]
        head.weight.zero_()
        head.bias.fill_(-20.0)
        head.bias[ids(words[0])] = 20.0
        model.query_words.weight.zero_()
        model.query_words.bias.fill_(-20.0)
        # state 0 (zero) asks for words[0]; state 1 (unit first channel) for words[2]
        model.query_words.bias[ids(words[0])] = 20.0
        model.query_words.weight[ids(words[0]), 0] = -40.0
        model.query_words.weight[ids(words[2]), 0] = 40.0
    features = model.encode_image(
        torch.zeros(2, 3, model.config.image_size, model.config.image_size)
    )
    targets = torch.zeros(2, 16, 16)
    targets[:, 4:12, 4:12] = 1
    states = torch.zeros(2, model.lm.config.hidden_size)
    states[1, 0] = 1.0
    pairs = torch.tensor([0, 1])
    with torch.no_grad():
        right = model._query_word_loss(input_ids, where, states, pairs, pairs, features, targets)
        model.query_words.bias[ids(words[1])] = 20.0  # row 0 now also asks for words[1]
        wrong = model._query_word_loss(input_ids, where, states, pairs, pairs, features, targets)
    assert float(right) < 1e-3
    assert float(wrong) > 5.0


def test_word_match_prefers_places_that_have_the_asked_words(seeded_model):
    model = seeded_model(**WORDS, query_word_loss_weight=1.0).eval()
    d = model.config.decoder_dim
    red = 5
    with torch.no_grad():
        head = model.word_heads[0]
        head.weight.zero_()
        head.bias.fill_(-4.0)
        head.weight[red, 0] = 8.0  # a place with channel 0 at 1 says "red"
        model.query_words.weight.zero_()
        model.query_words.bias.fill_(-30.0)
        model.query_words.bias[red] = 30.0  # the [SEG] asks for "red"
        model.word_gate.bias.fill_(1.0)
        embed = torch.zeros(1, d, 4, 4)
        embed[0, 0, 2, 1] = 1.0
        term = model.word_match(torch.zeros(1, model.lm.config.hidden_size), embed)
    assert term[0].flatten().argmax().item() == 2 * 4 + 1
    assert float(term[0, 2, 1]) == pytest.approx(
        float(torch.nn.functional.logsigmoid(torch.tensor(4.0))), abs=1e-4
    )
    assert float(term[0, 0, 0]) == pytest.approx(
        float(torch.nn.functional.logsigmoid(torch.tensor(-4.0))), abs=1e-4
    )


def test_word_query_needs_the_word_loss(tiny_overrides):
    with pytest.raises(InputError, match="query_word_loss_weight needs"):
        SegModelConfig.from_dict({**tiny_overrides, "query_word_loss_weight": 1.0})
