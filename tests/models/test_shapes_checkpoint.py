"""The shipped `shapes` checkpoint: it loads through the preset like any model, scores above
reduced thresholds on a fixed sample of the held-out test splits, and runs the README's main
job on the bundled scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import pixelground
from pixelground.backends.presets import PRESETS, package_checkpoint
from pixelground.core.masks import decode_rle
from pixelground.eval.loop import evaluate
from pixelground.serve.cli import main
from pixelground.synth.writer import write_split

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shapes.png"
TEXT = "the small green triangle"  # the README's main job
#: Reduced thresholds for the small fixed sample, below what the shipped checkpoint scores on
#: it (targets cIoU 0.501 with the model alone, 0.647 with the referring rules since removed;
#: GCG recall 0.667 with the lexical phrase matcher, J&F 0.897) and
#: above what segmenting every shape scores (cIoU about 0.35). The issue's targets and the
#: whole-split figures are in docs/models.md.
MIN_REFER_CIOU = 0.45
MIN_GCG_RECALL = 0.25
MIN_VIDEO_JF = 0.45


@pytest.fixture(scope="module")
def shapes():
    return pixelground.load("shapes", device="cpu")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """Held-out test splits: 10 refer scenes (40 expressions), 5 GCG scenes, 4 clips."""
    root = tmp_path_factory.mktemp("shapes_sample")
    write_split(root, "refer", "test", 10, seed=0)
    write_split(root, "gcg", "test", 5, seed=1)
    write_split(root, "video", "test", 4, seed=3)
    return root


def test_shipped_checkpoint_is_small_and_complete():
    directory = package_checkpoint(PRESETS["shapes"].parts["grounding_model"].checkpoint)
    files = {path.name: path.stat().st_size for path in directory.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert "training_state.pt" not in files  # the optimizer state is not shipped
    assert sum(files.values()) <= 20 * 2**20


def test_referring_segmentation_on_held_out_scenes(shapes, sample, tmp_path):
    result = evaluate("refer", f"synth:{sample}/refer/test", shapes, tmp_path)
    assert result["count"] == 40
    assert result["targets"]["cIoU"] >= MIN_REFER_CIOU


def test_grounded_captions_on_held_out_scenes(shapes, sample, tmp_path):
    options = {"phrase_encoder": "lexical", "captions": False}
    result = evaluate("gcg", f"synth:{sample}/gcg/test", shapes, tmp_path, **options)
    assert result["recall"] >= MIN_GCG_RECALL


def test_referring_video_segmentation_on_held_out_clips(shapes, sample, tmp_path):
    result = evaluate("rvos", f"synth:{sample}/video/test", shapes, tmp_path)
    assert result["JF"] >= MIN_VIDEO_JF


def test_readme_main_job_on_the_bundled_scene(tmp_path, capsys):
    """`pixelground segment examples/shapes.png TEXT` with auto: the shapes model, a mask on
    the shape the expression names (the scene is held-out test scene 4 of seed 0)."""
    root = tmp_path / "bench"
    write_split(root, "refer", "test", 5, seed=0)
    generated = root / "refer" / "test" / "images" / "00004.png"
    assert generated.read_bytes() == EXAMPLE.read_bytes()
    records = [json.loads(line) for line in (root / "refer" / "test" / "finetune.jsonl").open()]
    (record,) = [r for r in records if r["conversation"][0]["content"] == f"Please segment {TEXT}."]
    truth = decode_rle(record["masks"])[0]
    out = tmp_path / "out.json"
    assert main(["segment", str(EXAMPLE), TEXT, "-o", str(out)]) == 0
    assert "using preset 'shapes'" in capsys.readouterr().err
    result = pixelground.GroundedResult.from_json(out)
    assert result.model["preset"] == "shapes" and "note" not in result.model
    predicted = result.masks.any(0)
    assert (predicted & truth).sum() / (predicted | truth).sum() >= 0.5
    assert np.array_equal(predicted.shape, truth.shape)
