"""Videos and sequences scored in forked worker processes: results in input order, errors
raised in the parent, the same numbers as in one process, no fork from a threaded process."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from pixelground.core.errors import InputError
from pixelground.core.masks import encode_rle
from pixelground.eval.datasets.davis import write_davis_frame
from pixelground.eval.metrics import evaluate_vos
from pixelground.eval.processes import forking_is_safe, process_map, usable_processes

FORKS = usable_processes(2, 2) == 2  # Linux, two CPUs, no other thread running


def _square(shared: dict, item: int) -> tuple[int, int]:
    if item == shared["bad"]:
        raise InputError(f"item {item} is bad")
    return item, item * shared["factor"] + os.getpid() * 0


def test_process_map_keeps_order_and_reads_shared_state():
    shared = {"factor": 3, "bad": -1}
    items = list(range(9))
    assert list(process_map(_square, shared, items, 2)) == [(i, 3 * i) for i in items]
    closure_factor = 5  # a closure reaches the workers by fork, not pickling
    results = process_map(lambda _, item: item * closure_factor, None, items, 2)
    assert list(results) == [5 * i for i in items]


def _slow_for_this_process(parent: int, item: int) -> int:
    if os.getpid() == parent:
        time.sleep(0.2)  # the worker's items finish first
    return item


def test_process_map_yields_workers_results_while_this_process_works():
    """Workers' results that are done while this process is on its own share come out in
    order between them (a result of this process that is not computed yet is never asked)."""
    assert list(process_map(_slow_for_this_process, os.getpid(), list(range(7)), 2)) == list(
        range(7)
    )


def test_process_map_raises_a_worker_s_error_in_order():
    results = process_map(_square, {"factor": 1, "bad": 2}, [0, 1, 2, 3], 2)
    assert next(results) == (0, 0) and next(results) == (1, 1)
    with pytest.raises(InputError, match="item 2 is bad"):
        next(results)


def test_no_fork_while_another_thread_runs():
    release = threading.Event()
    thread = threading.Thread(target=release.wait, daemon=True)
    thread.start()
    try:
        assert not forking_is_safe() and usable_processes(4, 10) == 1
        assert list(process_map(_square, {"factor": 2, "bad": -1}, [1, 2], 2)) == [(1, 2), (2, 4)]
    finally:
        release.set()
        thread.join()
    assert usable_processes(4, 1) == 1 and usable_processes(1, 10) == 1


def _mevis(root, videos: int = 3) -> None:
    rng = np.random.default_rng(11)
    frames = [f"{t:05d}" for t in range(6)]
    mask_dict, meta = {}, {}
    for v in range(videos):
        masks = np.zeros((6, 18, 26), dtype=bool)
        for t in range(6):
            masks[t, 2 + t : 12, 3 + v : 14 + t] = True
        mask_dict[str(v)] = [encode_rle(m)[0] for m in masks]
        expressions = {"0": {"anno_id": [v]}, "1": {"anno_id": [v]}}
        meta[f"vid{v}"] = {"frames": frames, "expressions": expressions}
        for exp, t in ((e, t) for e in expressions for t in range(6)):
            noisy = masks[t] ^ (rng.random(masks[t].shape) < 0.04 * (int(exp) + 1))
            path = root / "pred" / f"vid{v}" / exp / f"{frames[t]}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(noisy.astype(np.uint8) * 255).save(path)
    (root / "gt").mkdir()
    (root / "gt" / "meta_expressions.json").write_text(json.dumps({"videos": meta}))
    (root / "gt" / "mask_dict.json").write_text(json.dumps(mask_dict))


def test_mevis_in_processes_equals_one_process(tmp_path):
    _mevis(tmp_path)
    serial = evaluate_vos(tmp_path / "gt", tmp_path / "pred", "mevis", workers=1)
    parallel = evaluate_vos(tmp_path / "gt", tmp_path / "pred", "mevis", workers=2)
    assert parallel == serial and serial["num_expressions"] == 6
    assert list(parallel["per_expression"]) == list(serial["per_expression"])


def test_mevis_error_in_a_worker_names_the_file(tmp_path):
    _mevis(tmp_path)
    (tmp_path / "pred" / "vid1" / "0" / "00003.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(InputError, match="00003.png"):
        evaluate_vos(tmp_path / "gt", tmp_path / "pred", "mevis", workers=2)


@pytest.mark.parametrize("protocol", ["semi", "unsupervised"])
def test_davis_sequences_in_processes_equal_one_process(tmp_path, protocol):
    rng = np.random.default_rng(3)
    folder = "Annotations" if protocol == "semi" else "Annotations_unsupervised"
    for name in ("a", "b", "c"):
        for t in range(5):
            gt = np.zeros((16, 20), np.uint8)
            gt[2 + t : 10, 3:12], gt[11:15, 8 + t : 19] = 1, 2
            pred = np.where(rng.random(gt.shape) < 0.05, 0, gt).astype(np.uint8)
            write_davis_frame(tmp_path / "gt" / folder / "480p" / name / f"{t:05d}.png", gt)
            write_davis_frame(tmp_path / "pred" / name / f"{t:05d}.png", pred)
    sets = tmp_path / "gt" / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("a\nb\nc\n")
    serial = evaluate_vos(tmp_path / "gt", tmp_path / "pred", protocol, workers=1)
    parallel = evaluate_vos(tmp_path / "gt", tmp_path / "pred", protocol, workers=2)
    assert parallel == serial and serial["num_objects"] == 6


def test_mevis_uses_worker_processes_here(tmp_path, monkeypatch):
    """Where forking is safe the videos are dealt between this process and a worker: a
    counter bumped in the scoring function sees only this process's share (videos 0 and 2
    of 3)."""
    from pixelground.eval.metrics import vos_folders

    if usable_processes(2, 2) != 2:  # checked now: an earlier test may have left a thread
        pytest.skip("needs Linux, two CPUs and no other running thread")

    calls = []
    real = vos_folders._video_entries
    monkeypatch.setattr(vos_folders, "_video_entries", lambda *a: calls.append(1) or real(*a))
    _mevis(tmp_path)
    evaluate_vos(tmp_path / "gt", tmp_path / "pred", "mevis", workers=2)
    assert len(calls) == 2
    evaluate_vos(tmp_path / "gt", tmp_path / "pred", "mevis", workers=1)
    assert len(calls) == 2 + 3
