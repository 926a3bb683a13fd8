"""Smoke test of benchmarks/video_memory.py: the real SAM2.1-hiera-tiny built at 256 pixels,
both sessions over a few frames, each in its own process, and the table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "video_memory.py"


def _load_harness():
    spec = importlib.util.spec_from_file_location("bench_video_memory", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_default_session_state_projection_matches_its_parts():
    harness = _load_harness()
    # 1024 px: pixels 12 MiB, high-res logits 4 MiB, low-res logits 256 KiB, memory 1.5 MiB
    assert harness.default_bytes_per_frame(1024) == 12582912 + 4194304 + 262144 + 1572864
    assert harness.default_bytes_per_frame(512) * 4 == harness.default_bytes_per_frame(1024)


@pytest.mark.slow
def test_both_sessions_run_and_the_table_prints(tmp_path, capsys):
    harness = _load_harness()
    out = tmp_path / "rows.json"
    argv = ["--side", "256", "--lengths", "4", "--threads", "1", "--json", str(out)]
    assert harness.main(argv) == 0
    rows = json.loads(out.read_text())
    assert [r["mode"] for r in rows] == ["bounded", "default"]
    for row in rows:
        assert "error" not in row, row
        assert row["frames"] == 3 and row["length"] == 4  # frame 0 is the prompt
        assert row["peak_rss_mb"] >= row["rss_after_prompt_mb"] > 100
        assert set(row["rss_samples_mb"]) == {"1", "2", "4"}
    printed = capsys.readouterr().out
    assert "256-pixel input" in printed and "bounded" in printed
