"""The job store and the strict RLE decoder without any model: expiry, recovery, ids."""

from __future__ import annotations

import numpy as np
import pytest

from pixelground.core.errors import InputError
from pixelground.core.masks import encode_rle
from pixelground.serve.app.errors import ApiError
from pixelground.serve.app.jobs import JobStore
from pixelground.serve.app.wire import decode_client_rle

VIDEO = {"name": "clip.mp4", "container": "mp4"}


def test_expire_recover_and_quota(tmp_path):
    store = JobStore(tmp_path, ttl_hours=1, quota_bytes=1000)
    old = store.create("track", {"text": "a"}, b"x" * 10, VIDEO)
    old.state = "done"
    store.save(old)
    running = store.create("track", {"text": "b"}, b"x" * 10, VIDEO)
    running.state = "running"
    store.save(running)
    assert store.expire(now=old.updated + 1800) == []  # younger than the TTL
    assert store.expire(now=old.updated + 7200) == [old.id]  # the running one stays
    assert not (tmp_path / old.id).exists()
    assert store.recover() == [running.id] and store.load(running.id).state == "interrupted"
    with pytest.raises(ApiError) as full:
        store.create("track", {}, b"x" * 2000, VIDEO)
    assert full.value.status == 507


def test_ids_never_reach_the_file_system(tmp_path):
    store = JobStore(tmp_path, ttl_hours=1, quota_bytes=10**6)
    for bad in ("../etc", "..", "/etc/passwd", "A" * 32, "a" * 31):
        with pytest.raises(ApiError) as error:
            store.load(bad)
        assert error.value.status == 404
    with pytest.raises(ApiError) as error:
        store.output("a" * 32, "../job.json")
    assert error.value.status == 404


def test_client_rle_is_checked_before_decoding():
    rng = np.random.default_rng(0)
    mask = rng.random((37, 53)) < 0.4
    rle = encode_rle(mask)[0]
    assert (decode_client_rle(rle["size"], rle["counts"], 10**6) == mask).all()
    for size, counts in (([37, 53], "0" * 5), ([37, 53], rle["counts"] + "5"), ([0, 3], "")):
        with pytest.raises(InputError):
            decode_client_rle(size, counts, 10**6)
    with pytest.raises(InputError):
        decode_client_rle([10**5, 10**5], "", 10**6)  # over the pixel limit
    with pytest.raises(InputError):
        decode_client_rle([2, 2], "~~~", 10**6)  # outside the RLE alphabet
