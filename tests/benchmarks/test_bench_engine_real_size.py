"""The arithmetic of benchmarks/engine_real_size.py (projection and the paper GPU figures)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import engine_real_size as bench  # noqa: E402

ROWS = [
    {"stage": "caption", "model": "florence2", "calls": 1, "cpu": 10.0},
    {"stage": "caption", "model": bench.ENGINE, "calls": 1, "cpu": 0.5},
    {"stage": "attributes", "model": "florence2", "calls": 6, "cpu": 60.0},
    {"stage": "attributes", "model": bench.ENGINE, "calls": 1, "cpu": 1.0},
    {"stage": "depth", "model": "depth", "calls": 1, "cpu": 4.0},
]


def test_project_scales_only_per_object_stages() -> None:
    rows = bench.project(ROWS, measured=2, objects=10)
    by = {(r["stage"], r["model"]): r for r in rows}
    assert by[("attributes", "florence2")]["calls"] == 30
    assert by[("attributes", "florence2")]["cpu"] == pytest.approx(300.0)
    assert by[("attributes", bench.ENGINE)] == {**ROWS[3], "cpu": 5.0}
    assert by[("caption", "florence2")] == ROWS[0]
    assert by[("depth", "depth")] == ROWS[4]


def test_paper_gpu_divides_model_time_by_the_assumed_speed_up() -> None:
    figures = bench.paper_gpu(ROWS)
    florence = bench.ASSUMED_GPU_SPEEDUP["florence2"]
    depth = bench.ASSUMED_GPU_SPEEDUP["depth"]
    assert figures["cpu_s"] == pytest.approx(75.5)
    assert figures["host_cpu_s"] == pytest.approx(1.5)
    assert figures["gpu_s"] == pytest.approx(70.0 / florence + 4.0 / depth)
    assert figures["gpu_s_depth"] == pytest.approx(4.0 / depth)
    assert "| attributes | florence2 | 6 | 10.000 | 60.00 |" in bench.table(ROWS)
