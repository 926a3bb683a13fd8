"""Word-level tokenizer, conversation template and grounded-text decoding."""

from __future__ import annotations

import numpy as np

from pixelground.models.tokenizer import (
    TokenIds,
    build_word_tokenizer,
    encode_conversation,
    grounded_text,
    prompt_ids,
)

TEXTS = ["Please segment the red square.", "<p>a red square</p> [SEG] left of <p>all circles</p>"]


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_markup_tokens_are_single_tokens_and_unknown_words_map_to_unk():
    tokenizer = build_word_tokenizer(TEXTS)
    ids = TokenIds.of(tokenizer)
    found = _ids(tokenizer, "<p>a Red zebra</p> [SEG].")
    assert found[0] == ids.p_open and found[-3:-1] == [ids.p_close, ids.seg]
    assert tokenizer.unk_token_id in found
    assert tokenizer.convert_ids_to_tokens(found[2]) == "red"  # lower-cased


def test_conversation_labels_and_prompt_layout():
    tokenizer = build_word_tokenizer(TEXTS)
    ids = TokenIds.of(tokenizer)
    conversation = [
        {"role": "user", "content": "Please segment the red square."},
        {"role": "assistant", "content": "[SEG]"},
    ]
    input_ids, labels = encode_conversation(tokenizer, conversation, 4)
    assert input_ids[:5] == [ids.bos] + [ids.image] * 4
    assert input_ids[-3:] == [ids.assistant, ids.seg, ids.eos]
    assert [x for x in labels if x != -100] == [ids.seg, ids.eos]
    prompt = prompt_ids(tokenizer, "Please segment the red square.", 4)
    assert prompt == input_ids[:-2]


def test_grounded_text_spans_plural_and_phraseless_seg():
    tokenizer = build_word_tokenizer(TEXTS)
    generated = _ids(tokenizer, "<p>a red square</p> [SEG] left of <p>all circles</p> [SEG] [SEG].")
    masks = [np.full((4, 4), i == 0) for i in range(3)]
    result = grounded_text(tokenizer, generated, masks, (4, 4))
    assert result.text == "a red square left of all circles."
    assert [(p.text, p.start, p.end) for p in result.phrases] == [
        ("a red square", 0, 12),
        ("all circles", 21, 32),
        ("all circles", 21, 32),
    ]
    assert [p.plural for p in result.phrases] == [False, True, True]
    assert result.masks[0].all() and not result.masks[1].any()
    assert "[SEG]" in result.raw
    bare = grounded_text(tokenizer, _ids(tokenizer, "[SEG]"), [np.ones((4, 4), bool)], (4, 4))
    assert bare.text == "" and len(bare.phrases) == 1 and bare.masks[0].all()
    after_text = grounded_text(
        tokenizer, _ids(tokenizer, "<p>a red square</p> [SEG] left of [SEG]"), masks[:2], (4, 4)
    )
    assert [(p.text, p.start) for p in after_text.phrases] == [("a red square", 0), ("", 20)]
    unmasked = grounded_text(tokenizer, _ids(tokenizer, "<p>a red square</p>."), [], (4, 4))
    assert unmasked.text == "a red square." and not unmasked.masks[0].any()
