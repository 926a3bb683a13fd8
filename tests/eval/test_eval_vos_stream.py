"""VOS over folders, streamed: chunked counts equal the whole-video ones, per-proposal J and F
of the unsupervised protocol, the PNG readers' fast paths."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from PIL import Image

from pixelground.eval.datasets.davis import read_davis_sequence, write_davis_frame
from pixelground.eval.datasets.mask_png import ordered_map, read_binary_png, read_label_frame
from pixelground.eval.metrics import evaluate_vos, jf, unsupervised_scores
from pixelground.eval.metrics.vos_protocols import semi_supervised_scores


def _scene(frames: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(T, 24, 36) GT labels with 2 objects and (T, 24, 36) result labels with 3 proposals."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((frames, 24, 36), np.uint8)
    pred = np.zeros_like(gt)
    for t in range(frames):
        gt[t, 3 + t % 3 : 12, 4:15] = 1
        gt[t, 14:22, 18 + t % 4 : 33] = 2
        pred[t, 4:12, 5 + t % 2 : 15] = 2  # proposal 2 follows object 1
        pred[t, 13:21, 19:33] = 1  # proposal 1 follows object 2
        pred[t][rng.random((24, 36)) > 0.97] = 3  # proposal 3 is noise
    return gt, pred


def _write(root, labels: np.ndarray, name: str = "seq") -> None:
    for t, frame in enumerate(labels):
        write_davis_frame(root / name / f"{t:05d}.png", frame)


def test_chunked_counts_equal_whole_video(monkeypatch):
    gt, pred = _scene()
    objects = [gt == k for k in (1, 2)]
    j_ref, f_ref = semi_supervised_scores(objects, [pred == k for k in (1, 2)])
    monkeypatch.setattr(jf, "CHUNK_PIXELS", 2 * 24 * 36)  # two frames per chunk
    assert jf.chunk_frames(24, 36) == 2
    j, f = semi_supervised_scores(objects, [pred == k for k in (1, 2)])
    assert j.tolist() == j_ref.tolist() and f.tolist() == f_ref.tolist()


def test_folder_scores_equal_array_scores_across_chunks(tmp_path, monkeypatch):
    gt, pred = _scene()
    _write(tmp_path / "gt", gt)
    _write(tmp_path / "pred", pred)
    whole = evaluate_vos(tmp_path / "gt", tmp_path / "pred", "unsupervised", workers=1)
    monkeypatch.setattr(jf, "CHUNK_PIXELS", 3 * 24 * 36)  # chunks of 3, 3 and 1 frames
    chunked = evaluate_vos(tmp_path / "gt", tmp_path / "pred", "unsupervised", workers=3)
    assert json.dumps(whole) == json.dumps(chunked)
    scores = unsupervised_scores([gt == 1, gt == 2], [pred == k for k in (1, 2, 3)])
    for g, p in zip(scores.gt_index, scores.proposal_index, strict=True):
        entry = whole["per_object"][f"seq_{g + 1}"]
        assert entry["proposal_id"] == p + 1
        assert entry["J_per_frame"] == scores.j[scores.gt_index.tolist().index(g)].tolist()


def test_unsupervised_reports_each_proposals_j_and_f_means(tmp_path):
    gt, pred = _scene()
    _write(tmp_path / "gt", gt)
    _write(tmp_path / "pred", pred)
    objects, proposals = [gt == 1, gt == 2], [pred == k for k in (1, 2, 3)]
    scores = unsupervised_scores(objects, proposals)
    j_all, f_all = jf.pairwise_scores(objects, proposals)
    assert scores.j_mean.tolist() == j_all.mean(axis=2).tolist()
    assert scores.f_mean.tolist() == f_all.mean(axis=2).tolist()
    assert np.array_equal(scores.jf_matrix, (scores.j_mean + scores.f_mean) / 2)
    result = evaluate_vos(tmp_path / "gt", tmp_path / "pred", "unsupervised")
    per = result["per_proposal"]
    assert sorted(per) == ["seq_1", "seq_2", "seq_3"]
    assert per["seq_1"]["matched_object"] == 2 and per["seq_2"]["matched_object"] == 1
    assert per["seq_3"]["matched_object"] is None and per["seq_3"]["J"] is None
    for p in range(3):
        entry = per[f"seq_{p + 1}"]
        assert entry["J_per_object"] == {"1": j_all[p, 0].mean(), "2": j_all[p, 1].mean()}
        assert entry["F_per_object"] == {"1": f_all[p, 0].mean(), "2": f_all[p, 1].mean()}
    matched = result["per_object"]["seq_1"]  # GT object 1, matched by proposal 2
    assert per["seq_2"]["J"] == matched["J"] and per["seq_2"]["F"] == matched["F"]
    assert per["seq_2"]["JF"] == pytest.approx((matched["J"] + matched["F"]) / 2)
    assert "per_proposal" not in evaluate_vos(tmp_path / "gt", tmp_path / "gt", "semi")


def test_readers_fast_paths(tmp_path):
    binary = np.zeros((6, 8), np.uint8)
    binary[1:4, 2:6] = 255
    Image.fromarray(binary, mode="L").save(tmp_path / "d16.png")
    frame = read_label_frame(tmp_path / "d16.png")
    assert frame.max_id == 1 and frame.labels.max() == 1 and not frame.has_void
    gray_ids = binary // 255 * 3
    gray_ids[5, 7] = 255
    Image.fromarray(gray_ids, mode="L").save(tmp_path / "ids.png")
    frame = read_label_frame(tmp_path / "ids.png")
    assert frame.max_id == 3 and frame.has_void and frame.void().sum() == 1
    assert read_label_frame(tmp_path / "ids.png", void_label=None).max_id == 255
    palette = Image.fromarray(gray_ids, mode="P")
    palette.putpalette([0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9] + [0] * 756)  # index 3 is gray 9
    palette.save(tmp_path / "pal.png")
    expected = np.asarray(Image.open(tmp_path / "pal.png").convert("L")) != 0
    assert np.array_equal(read_binary_png(tmp_path / "pal.png"), expected)
    assert list(ordered_map(lambda x: x * 2, range(50), workers=3)) == list(range(0, 100, 2))


def test_sequence_reader_with_threads_equals_serial(tmp_path):
    gt, _ = _scene(frames=9)
    _write(tmp_path, gt)
    serial = read_davis_sequence(tmp_path / "seq", workers=1)
    threaded = read_davis_sequence(tmp_path / "seq", workers=4)
    assert np.array_equal(serial.labels, threaded.labels) and threaded.num_objects == 2


def test_mevis_reuses_a_video_s_truth_only_for_the_same_objects(tmp_path, monkeypatch):
    """Expressions naming the same objects (in any order) share the summarised GT chunks;
    other objects, other videos and a disabled cache give the same per-expression figures."""
    from pixelground.core.masks import encode_rle
    from pixelground.eval.metrics import vos_folders

    rng = np.random.default_rng(4)
    objects = np.zeros((3, 5, 20, 30), dtype=bool)
    for k, t in itertools.product(range(3), range(5)):
        y, x = rng.integers(0, 12), rng.integers(0, 20)
        objects[k, t, y : y + 8, x : x + 10] = True
    frames = [f"{t:05d}" for t in range(5)]
    mask_dict = {str(k): [encode_rle(m)[0] for m in objects[k]] for k in range(3)}
    expressions = {"0": [0, 1], "1": [1, 0], "2": [2], "3": [0, 1]}
    videos = {
        v: {"frames": frames, "expressions": {e: {"anno_id": a} for e, a in expressions.items()}}
        for v in ("vidA", "vidB")
    }
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (tmp_path / "gt" / "mask_dict.json").write_text(json.dumps(mask_dict))
    for video, exp in itertools.product(videos, expressions):
        for t, frame in enumerate(frames):
            path = tmp_path / "pred" / video / exp / f"{frame}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pred = objects[int(exp) % 3, t] ^ (rng.random((20, 30)) < 0.05)
            Image.fromarray(pred.astype(np.uint8) * 255).save(path)
    unions = []
    real_union = vos_folders.ExpressionTruth.union
    monkeypatch.setattr(
        vos_folders.ExpressionTruth,
        "union",
        lambda self, video, *rest: unions.append(video) or real_union(self, video, *rest),
    )
    cached = evaluate_vos(tmp_path / "gt", tmp_path / "pred", "mevis", workers=1)  # counted here
    assert unions == ["vidA", "vidA", "vidB", "vidB"]  # one per object set and video
    monkeypatch.setattr(vos_folders, "TRUTH_CACHE_FRAMES", 0)
    assert evaluate_vos(tmp_path / "gt", tmp_path / "pred", "mevis", workers=1) == cached
    assert len(unions) == 4 + 8
    per = cached["per_expression"]
    assert per["vidA_0"]["J_per_frame"] != per["vidA_2"]["J_per_frame"]
