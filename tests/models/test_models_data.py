"""Fine-tuning JSONL validation (line numbers; skip vs raise), dataset items and collate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelground.core.errors import InputError
from pixelground.core.masks import encode_rle
from pixelground.models.data import (
    DataLineError,
    SegDataset,
    collate,
    drop_colour_words,
    names_colour,
    read_finetune_jsonl,
    rotate_hue,
)


def _bad_copy(tiny_data: Path, tmp_path: Path) -> Path:
    """The tiny data with three bad lines inserted at lines 2, 4 and 6."""
    lines = tiny_data.read_text().splitlines()
    good = json.loads(lines[0])
    good["image"] = str(tiny_data.parent / good["image"])
    missing = {**good, "image": str(tmp_path / "nowhere.png")}
    small = {**good, "masks": encode_rle(np.ones((32, 32), bool))}
    extra_seg = {
        **good,
        "conversation": [
            good["conversation"][0],
            {"role": "assistant", "content": "[SEG] and [SEG]"},
        ],
    }
    out = [
        json.dumps(good),
        json.dumps(missing),
        json.dumps(good),
        json.dumps(small),
        json.dumps(good),
        json.dumps(extra_seg),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(out) + "\n")
    return path


def test_good_file_reads_every_line(tiny_data):
    data = read_finetune_jsonl(tiny_data)
    assert len(data.samples) == 13 and not data.problems
    video = [s for s in data.samples if s.video]
    assert len(video) == 1 and len(video[0].frames) == 3 and len(video[0].masks[0]) == 3


def test_bad_lines_are_skipped_with_their_line_numbers(tiny_data, tmp_path):
    data = read_finetune_jsonl(_bad_copy(tiny_data, tmp_path), on_error="skip")
    assert [s.line for s in data.samples] == [1, 3, 5]
    assert [p.line for p in data.problems] == [2, 4, 6]
    messages = [p.problem for p in data.problems]
    assert "not found" in messages[0]
    assert "32x32" in messages[1] and "64x64" in messages[1]
    assert "2 [SEG] markers but only 1 masks" in messages[2]


def test_bad_line_is_refused_with_its_line_number(tiny_data, tmp_path):
    with pytest.raises(DataLineError) as caught:
        read_finetune_jsonl(_bad_copy(tiny_data, tmp_path), on_error="raise")
    assert caught.value.line == 2
    assert "line 2" in str(caught.value) and "--on-error skip" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('{"image": "images/000.png"}', "missing key 'conversation'"),
        (
            '{"image": "images/000.png", "conversation": [{"role": "user", "content": "hi"}]}',
            "no assistant turn",
        ),
        (
            '{"frames": ["images/000.png", "nope.png"], "conversation": '
            '[{"role": "assistant", "content": "[SEG]"}], "masks": [[]]}',
            "not found",
        ),
    ],
)
def test_other_problems_name_the_line(tiny_data, text, needle):
    path = tiny_data.parent / "one_bad.jsonl"
    path.write_text(tiny_data.read_text().splitlines()[0] + "\n" + text + "\n")
    with pytest.raises(DataLineError, match=needle) as caught:
        read_finetune_jsonl(path)
    assert caught.value.line == 2


def test_json_error_names_its_column_on_the_line(tiny_data):
    """An error at the end of a line is at its last column + 1, not "line 2 column 1"."""
    cut = '{"id": "xy", "image": "images/000.png", "n": 1,'  # 47 characters, then a newline
    path = tiny_data.parent / "cut.jsonl"
    path.write_text(tiny_data.read_text().splitlines()[0] + "\n" + cut + "\n")
    with pytest.raises(DataLineError) as caught:
        read_finetune_jsonl(path)
    assert caught.value.line == 2
    assert "at column 48, the end of the line (it stops at column 47)" in caught.value.problem
    path.write_text('{"image": "images/000.png", "conversation": tru}\n')
    with pytest.raises(
        DataLineError, match=r"line 1: not valid JSON: Expecting value at column 45;"
    ):
        read_finetune_jsonl(path)


def test_fewer_seg_markers_than_masks_is_an_error(tiny_data, tmp_path):
    record = json.loads(tiny_data.read_text().splitlines()[0])
    record["image"] = str(tiny_data.parent / record["image"])
    record["masks"] = record["masks"] * 2
    path = tmp_path / "more_masks.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataLineError, match="1 \\[SEG\\] markers but 2 masks"):
        read_finetune_jsonl(path)


def test_all_bad_or_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_finetune_jsonl(tmp_path / "absent.jsonl")
    bad = tmp_path / "all_bad.jsonl"
    bad.write_text("{oops\n")
    with pytest.raises(InputError, match="no usable line"):
        read_finetune_jsonl(bad, on_error="skip")
    with pytest.raises(InputError, match="on_error"):
        read_finetune_jsonl(bad, on_error="ignore")


def test_labels_cover_only_the_answer(tiny_data, tiny_model):
    data = read_finetune_jsonl(tiny_data)
    dataset = SegDataset(data.samples, tiny_model.tokenizer, tiny_model.config, train=False)
    item = dataset[0]  # "Please segment the red square." -> "[SEG]"
    ids = tiny_model.ids
    labelled = item["labels"][item["labels"] != -100].tolist()
    assert labelled == [ids.seg, ids.eos]
    assert int((item["input_ids"] == ids.image).sum()) == tiny_model.config.lm_grid**2
    assert item["gt_masks"].shape == (1, 64, 64) and float(item["gt_masks"].sum()) == 256


def test_collate_pads_and_concatenates(tiny_batch, tiny_model):
    rows, length = tiny_batch["input_ids"].shape
    assert rows == 13
    # 3 images shared by 4 lines each, and the video line's 2 sampled frames, stored once
    assert tiny_batch["pixel_values"].shape == (5, 3, 64, 64)
    assert tiny_batch["frame_image"].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3, 4]
    assert tiny_batch["frame_sample"].tolist() == [*range(12), 12, 12]
    assert (tiny_batch["frame_times"][:12] == -1).all()
    assert tiny_batch["frame_times"][12:].tolist() == [0.0, 1.0]
    padded = tiny_batch["attention_mask"] == 0
    assert (tiny_batch["input_ids"][padded] == tiny_model.ids.pad).all()
    assert (tiny_batch["labels"][padded] == -100).all()
    assert tiny_batch["region_masks"].shape == (3, 64, 64)


def test_rotate_hue_keeps_luma_and_moves_colours_round_the_wheel():
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = (221, 31, 36)  # red
    image[0, 1] = (35, 96, 233)  # blue
    image[0, 2] = (128, 128, 128)  # grey has no hue
    assert np.array_equal(rotate_hue(image, 0.0), image)
    turned = rotate_hue(image, np.pi / 2)
    luma = np.array([0.299, 0.587, 0.114])
    assert np.allclose(turned[0].astype(float) @ luma, image[0].astype(float) @ luma, atol=12)
    assert np.abs(turned[0, 0].astype(int) - image[0, 0]).max() > 60
    assert np.abs(turned[0, 2].astype(int) - 128).max() <= 1
    back = rotate_hue(rotate_hue(image, 1.0), -1.0)
    assert np.abs(back.astype(int) - image).max() <= 40  # clipping loses a little


def test_names_colour_reads_words_not_substrings():
    assert names_colour(["Please segment the Red triangle."])
    assert names_colour(["the shape that is grey"])
    assert not names_colour(["Please segment the second hexagon from the left."])
    assert not names_colour(["the reddish"]) and not names_colour(["credible"])


def test_hue_augment_rotates_only_lines_without_colour_words(tiny_data, tiny_model):
    import dataclasses

    coloured = read_finetune_jsonl(tiny_data).samples[0]  # "Please segment the red square."
    plain_text = dataclasses.replace(
        coloured,
        conversation=[
            {"role": "user", "content": "Please segment the square."},
            {"role": "assistant", "content": "[SEG]"},
        ],
    )
    samples = [coloured, plain_text]
    config = tiny_model.config
    plain = SegDataset(samples, tiny_model.tokenizer, config, train=True)
    rotated = SegDataset(samples, tiny_model.tokenizer, config, train=True, hue_augment=1.0)
    kept, turned = rotated[0], rotated[1]
    assert torch.equal(kept["pixel_values"], plain[0]["pixel_values"])
    assert kept["frame_keys"] == plain[0]["frame_keys"]
    assert not torch.equal(turned["pixel_values"], plain[1]["pixel_values"])
    # a rotated frame is never shared with an unrotated copy of the same image in a batch
    assert turned["frame_keys"] != plain[1]["frame_keys"]
    assert torch.equal(turned["gt_masks"], plain[1]["gt_masks"])
    evaluation = SegDataset(samples, tiny_model.tokenizer, config, train=False, hue_augment=1.0)
    assert torch.equal(evaluation[1]["pixel_values"], plain[1]["pixel_values"])
    assert not any(item["colour_blind"] for item in (kept, turned, plain[0]))


def test_colour_blind_hue_rotates_every_line_and_marks_it(tiny_data, tiny_model):
    samples = read_finetune_jsonl(tiny_data).samples[:2]  # "the red square", ...
    config = tiny_model.config
    plain = SegDataset(samples, tiny_model.tokenizer, config, train=True)
    blind = SegDataset(samples, tiny_model.tokenizer, config, train=True, colour_blind_hue=1.0)
    for index in range(2):
        item = blind[index]
        assert item["colour_blind"]
        assert not torch.equal(item["pixel_values"], plain[index]["pixel_values"])
        assert torch.equal(item["input_ids"], plain[index]["input_ids"])  # the text as it was
    batch = collate([blind[0], plain[1]], tiny_model.ids.pad)
    assert batch["colour_blind"].tolist() == [True, False]
    evaluation = SegDataset(samples, tiny_model.tokenizer, config, train=False, colour_blind_hue=1)
    assert not evaluation[0]["colour_blind"]


def test_drop_colour_words_keeps_the_rest_of_the_text():
    caption = "The image shows <p>a large striped Red ellipse</p> [SEG] on a grey background."
    assert drop_colour_words(caption) == (
        "The image shows <p>a large striped ellipse</p> [SEG] on a background."
    )
    assert drop_colour_words("the reddish credible star") == "the reddish credible star"


def test_colour_drop_hue_rotates_lines_whose_colours_are_all_in_the_answers(tiny_data, tiny_model):
    samples = read_finetune_jsonl(tiny_data).samples[:4]  # red square, green star, GCG, region
    config = tiny_model.config
    plain = SegDataset(samples, tiny_model.tokenizer, config, train=True)
    dropped = SegDataset(samples, tiny_model.tokenizer, config, train=True, colour_drop_hue=1.0)
    for index in (0, 1):  # the question names the colour: the line is left alone
        assert not dropped[index]["colour_blind"]
        assert torch.equal(dropped[index]["pixel_values"], plain[index]["pixel_values"])
    for index in (2, 3):
        item = dropped[index]
        assert item["colour_blind"]
        assert not torch.equal(item["pixel_values"], plain[index]["pixel_values"])
        text = tiny_model.tokenizer.decode(item["input_ids"])
        assert not names_colour([text]) and names_colour(
            [tiny_model.tokenizer.decode(plain[index]["input_ids"])]
        )
        assert torch.equal(item["gt_masks"], plain[index]["gt_masks"])
    assert "<p> a square </p>" in tiny_model.tokenizer.decode(dropped[2]["input_ids"])
    evaluation = SegDataset(samples, tiny_model.tokenizer, config, train=False, colour_drop_hue=1)
    assert not evaluation[2]["colour_blind"]
