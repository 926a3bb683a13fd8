"""Smoke test of benchmarks/image_tasks.py: its whole code path on the tiny preset, one task."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "image_tasks.py"


def _load_harness():
    spec = importlib.util.spec_from_file_location("bench_image_tasks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_caption_on_tiny_preset_prints_the_table(tmp_path, capsys, swan_image_path):
    harness = _load_harness()
    out = tmp_path / "bench.json"
    argv = ["--preset", "tiny", "--tasks", "caption", "--runs", "1", "--json", str(out)]
    assert harness.main([*argv, "--image", str(swan_image_path)]) == 0

    lines = capsys.readouterr().out.splitlines()
    headers = [header for header, _, _ in harness.COLUMNS]
    header_at = next(i for i, line in enumerate(lines) if line.startswith("task "))
    assert re.split(r"\s{2,}", lines[header_at].strip()) == headers
    cells = re.split(r"\s{2,}", lines[header_at + 2].strip())
    assert len(cells) == len(headers)
    row = dict(zip(headers, cells, strict=True))
    assert row["task"] == "caption"
    assert row["tokens"] == "flo 24"  # the tiny Florence-2's saved budget
    assert row["runs"] == "1"
    assert float(row["median s"]) > 0
    shares = [float(row[h]) for h in ("model %", "HF proc %", "gen loop %", "ours %")]
    assert sum(shares) == pytest.approx(100.0, abs=0.5)
    assert float(row["model %"]) > 0 and float(row["HF proc %"]) > 0
    assert float(row["peak MB"]) > 100
    assert float(row["load"]) >= 0

    record = json.loads(out.read_text())["records"][0]
    run = record["per_run"][0]
    inside = run["model_wall"] + run["processor_wall"] + run["generate_wall"]
    assert 0 < inside <= run["wall"]
    assert run["forward_calls"] > 24  # one decoder forward per new token, plus the encoders
    assert record["regions"] == 0 and isinstance(record["text"], str)  # a plain caption


def test_unknown_task_is_a_usage_error(capsys):
    harness = _load_harness()
    with pytest.raises(SystemExit) as exit_info:
        harness.parse_args(["--tasks", "caption,teleport"])
    assert exit_info.value.code == 2
    assert "teleport" in capsys.readouterr().err
