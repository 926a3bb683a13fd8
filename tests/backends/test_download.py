"""The first run on a connected machine, for real: downloads through HF_ENDPOINT.

A loopback server (hub_server.FakeHub) serves tiny random-weight checkpoints under the hub
ids of the ``default`` preset's detector and segmenter, the way the hub serves files. The CLI
runs in a fresh process (huggingface_hub reads HF_ENDPOINT and the cache at import) with an
empty cache: ``auto`` picks ``default`` because the hub answers, the checkpoints download with
one line saying what and how much, and the second run reads them from the cache. A
dropped connection is retried; one that keeps dropping is one error line, exit code 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import FakeHub

from pixelground.backends.presets import PRESETS
from pixelground.backends.tiny import ensure_tiny

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hub_repos() -> dict[str, Path]:
    parts = PRESETS["default"].parts
    return {
        parts["detector"].checkpoint: ensure_tiny("florence2"),
        parts["segmenter"].checkpoint: ensure_tiny("sam2"),
    }


def _run(hub: FakeHub, home: Path, image: Path, out: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(home), HF_HUB_OFFLINE="0",
               PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")  # fmt: skip
    argv = [sys.executable, "-m", "pixelground.serve.cli", "segment", str(image),
            "the black swan", "-o", str(out)]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


def test_first_run_downloads_second_reads_the_cache(hub_repos, swan_image_path, tmp_path):
    home = tmp_path / "hf"
    with FakeHub(hub_repos) as hub:
        hub.broken = {"facebook/sam2.1-hiera-tiny": 1}  # one dropped connection: retried
        first = _run(hub, home, swan_image_path, tmp_path / "1.json")
        assert first.returncode == 0, first.stderr
        assert "pixelground: using preset 'default'" in first.stderr
        lines = [line for line in first.stderr.splitlines() if "downloading" in line]
        for repo in hub_repos:
            assert any(line.startswith(f"pixelground: downloading {repo} (") for line in lines)
        assert " MB) to " in lines[0] or " kB) to " in lines[0]
        assert (tmp_path / "1.json").is_file()
        fetched = len(hub.requests)
        second = _run(hub, home, swan_image_path, tmp_path / "2.json")
        assert second.returncode == 0, second.stderr
        assert "downloading" not in second.stderr
        assert not any("/resolve/" in r and r.startswith("GET") for r in hub.requests[fetched:])


def test_a_download_that_keeps_breaking_is_one_error(hub_repos, swan_image_path, tmp_path):
    with FakeHub(hub_repos) as hub:
        hub.broken = {"facebook/sam2.1-hiera-tiny": 10_000}
        run = _run(hub, tmp_path / "hf", swan_image_path, tmp_path / "out.json")
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("pixelground: error:")]
    assert len(errors) == 1 and "downloading facebook/sam2.1-hiera-tiny failed" in errors[0]
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out.json").exists()
