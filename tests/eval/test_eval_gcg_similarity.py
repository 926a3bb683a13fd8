"""GCG recall with a given phrase similarity: a stated table gives the stated matches and the
official early stop; the callable and the JSON table reach evaluate_gcg and `score gcg`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixelground.core.errors import InputError
from pixelground.eval.metrics import (
    GCGImage,
    SimilarityTable,
    evaluate_gcg,
    gcg_recall,
    match_with_phrases,
    official_iou_matrix,
)
from pixelground.eval.metrics.phrase_encoders import LexicalEncoder


def square(y: int, x: int, size: int = 4) -> np.ndarray:
    mask = np.zeros((16, 16), bool)
    mask[y : y + size, x : x + size] = True
    return mask


def _image() -> GCGImage:
    """GT "a dog" / "a cat" / "grass"; predicted with other wordings in another order: the dog
    exact (IoU 1), the cat and the grass one column off (IoU 12/20 = 0.6 each)."""
    gt = np.stack([square(0, 0), square(0, 8), square(8, 0)])
    pred = np.stack([square(0, 9), square(8, 1), square(0, 0)])  # cat, grass, dog
    return GCGImage("img", gt, ["a dog", "a cat", "grass"], "", pred, ["kitty", "lawn", "puppy"])


TABLE = {"a dog": {"puppy": 0.9}, "a cat": {"kitty": 0.8}, "grass": {"lawn": 0.7}}


def test_a_stated_table_gives_the_stated_matches():
    image = _image()
    table = SimilarityTable.from_json(TABLE)
    sims = table(image.gt_phrases, image.pred_phrases)
    assert sims.tolist() == [[0.0, 0.0, 0.9], [0.8, 0.0, 0.0], [0.0, 0.7, 0.0]]
    ious = official_iou_matrix(image.gt_masks, image.preds())
    assert ious[0, 2] == 1.0 and ious[1, 0] == ious[2, 1] == 0.6
    assert match_with_phrases(ious, sims) == [(0, 2), (1, 0), (2, 1)]
    recall, per_image = gcg_recall([image], similarity=table)
    assert recall == 1.0 and per_image == [{"matches": 3, "gt_phrases": 3}]
    assert gcg_recall([image], LexicalEncoder())[0] == 0.0  # no shared word: nothing matches


def test_the_table_early_stop_is_official():
    image = _image()
    # "a dog"/"puppy" (the best IoU) below 0.5: the loop stops there, so the cat and grass
    # pairs, which pass both thresholds, are never examined
    stop = SimilarityTable.from_json([["a dog", "puppy", 0.4], ["a cat", "kitty", 0.8],
                                      ["grass", "lawn", 0.95]])  # fmt: skip
    assert gcg_recall([image], similarity=stop) == (0.0, [{"matches": 0, "gt_phrases": 3}])
    # at exactly 0.5 the dog pair passes, then the rest follow
    go = SimilarityTable.from_json({**TABLE, "a dog": {"puppy": 0.5}})
    assert gcg_recall([image], similarity=go)[0] == 1.0
    # the similarity threshold is a parameter, as in the official code
    assert gcg_recall([image], None, 0.5, 0.85, similarity=go)[1][0]["matches"] == 0
    assert SimilarityTable({("x", "x"): 0.2})(["x", "y"], ["x", "y"]).tolist() == [
        [0.2, 0.0],
        [0.0, 1.0],  # identical phrases not in the table score 1
    ]


def test_callable_similarity_and_errors(tmp_path):
    image = _image()

    def by_first_letter(gts, preds):
        return np.array([[float(g[-1] == p[0]) for p in preds] for g in gts])

    by_first_letter.name = "first-letter"
    result = evaluate_gcg([image], captions=False, similarity=by_first_letter)
    assert result["phrase_encoder"] == "first-letter"
    assert (
        result["per_sample"][0]["matches"]
        == gcg_recall([image], similarity=by_first_letter)[1][0]["matches"]
    )
    with pytest.raises(InputError, match="exactly one"):
        gcg_recall([image])
    with pytest.raises(InputError, match="exactly one"):
        gcg_recall([image], LexicalEncoder(), similarity=by_first_letter)
    (tmp_path / "bad.json").write_text(json.dumps({"a dog": 3}))
    with pytest.raises(InputError, match="similarity table"):
        SimilarityTable.from_json(tmp_path / "bad.json")
    with pytest.raises(InputError, match="not found"):
        SimilarityTable.from_json(tmp_path / "missing.json")


def test_score_gcg_reads_a_json_table(tmp_path, capsys, shared_data):
    from eval_fixtures import build_gcg

    from pixelground.eval.datasets.glamm_gcg import load_gcg
    from pixelground.serve.cli import main

    val = build_gcg(tmp_path / "GranDf", shared_data)
    samples = load_gcg(val, "val")
    lines, pairs = [], {}
    for sample in samples:
        gt = sample.gt_masks()
        phrases = [f"thing {i}" for i in range(len(sample.phrases))]
        for gt_phrase, phrase in zip(sample.phrases, phrases, strict=True):
            pairs.setdefault(gt_phrase, {})[phrase] = 1.0
        from pixelground.core.masks import encode_rle

        record = {"id": sample.id, "caption": sample.caption, "phrases": phrases}
        record["masks"] = encode_rle(gt)
        lines.append(json.dumps(record))
    (tmp_path / "pred.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "table.json").write_text(json.dumps(pairs))
    code = main(["score", "gcg", "--gt", f"gcg:{val}", "--pred", str(tmp_path / "pred.jsonl"),
                 "--similarity-table", str(tmp_path / "table.json"), "--no-captions",
                 "--json"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["recall"] == 1.0
    assert result["phrase_encoder"] == "table:table.json"
