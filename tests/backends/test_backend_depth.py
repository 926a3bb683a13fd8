"""The depth backend over AutoModelForDepthEstimation, on a tiny random DPT."""

from __future__ import annotations

import numpy as np

from pixelground.backends.depth import DepthEstimator
from pixelground.backends.tiny import ensure_tiny
from pixelground.pipeline import load


def test_depth_maps_have_each_image_size():
    estimator = DepthEstimator(str(ensure_tiny("depth")), device="cpu")
    small = np.zeros((30, 50, 3), np.uint8)
    tall = np.full((70, 20, 3), 200, np.uint8)
    maps = estimator.estimate_batch([small, tall])
    assert [m.shape for m in maps] == [(30, 50), (70, 20)]
    assert all(m.dtype == np.float32 and np.isfinite(m).all() for m in maps)
    assert estimator.estimate(small).shape == (30, 50)
    assert estimator.info["class"] == "DepthEstimator" and estimator.nearer_is_larger


def test_tiny_preset_has_a_depth_part():
    pipe = load("tiny", device="cpu")
    assert isinstance(pipe.depth, DepthEstimator)
