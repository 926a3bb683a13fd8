"""Small generated splits shared by the synth tests (written once per session)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pixelground.synth.writer import SynthOptions, write_split

#: (task, split) -> number of images or clips written for the tests.
SIZES = {
    ("refer", "train"): 40,
    ("refer", "test"): 25,
    ("gcg", "train"): 12,
    ("gcg", "test"): 8,
    ("region", "train"): 12,
    ("region", "test"): 10,
    ("video", "train"): 10,
    ("video", "test"): 6,
}
SEED = 7


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding every (task, split) of ``SIZES``, seed ``SEED``, 128-pixel images."""
    root = tmp_path_factory.mktemp("synth")
    options = SynthOptions(size=128, num_frames=6)
    for (task, split), n in SIZES.items():
        write_split(root, task, split, n, seed=SEED, options=options)
    return root


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file, parsed."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def jsonl():
    """The ``read_jsonl`` helper, as a fixture (test modules do not import each other)."""
    return read_jsonl
