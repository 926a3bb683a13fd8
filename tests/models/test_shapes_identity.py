"""The shipped `shapes` checkpoint gives the same outputs as the reference: a regression test.

The reference (tests/models/data/shapes_identity/reference.json) was written by this file's
``write_reference`` (``python tests/models/test_shapes_identity.py --write``) from the code
at commit 254f5b1 (before the models room was refactored for issue 37), on CPU, float32.
The inputs (data/shapes_identity/) were cut by ``write_inputs`` from ``pixelground synth``
test splits: refer scenes 0 and 1 of seed 0 (eight expressions, four with no target), GCG scene 0 of
seed 1, region 0 of seed 2 and the first four frames of clip 0 of seed 3.

It checks, on the model's own paths (no rules of the referring task): greedy answers
(texts and masks) of referring, grounded-caption and region prompts, the target decision's
evidence and masks, the video answer's text and masks
on every frame, and the training loss terms of one batch of the lines. Masks and texts must
be identical; floats (evidence, losses) equal to 1e-5 relative. (The hue views the reference
also held were deleted with hue_views; the decisions of the refitted ``target_decision`` on
these lines are those of the reference's.)
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pixelground.backends.presets import PRESETS, package_checkpoint
from pixelground.core.masks import decode_rle, encode_rle
from pixelground.core.media import load_image
from pixelground.models.data import SegDataset, collate, read_finetune_jsonl
from pixelground.models.generation import generate_grounded, generate_grounded_video
from pixelground.models.objective import image_word_losses, training_losses
from pixelground.models.seg_model import SegTokenModel
from pixelground.models.target_decision import referring_mask, target_evidence

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent / "data" / "shapes_identity"
REFERENCE = DATA / "reference.json"
VIDEO_FRAMES = 4


def _rles(masks: Any) -> list[dict[str, Any]]:
    return [encode_rle(np.asarray(m))[0] if np.ndim(m) == 2 else encode_rle(m) for m in masks]


def shipped_model() -> SegTokenModel:
    directory = package_checkpoint(PRESETS["shapes"].parts["grounding_model"].checkpoint)
    return SegTokenModel.from_pretrained(directory).eval()


def outputs(model: SegTokenModel) -> dict[str, Any]:
    """Every output the reference holds, computed by ``model`` on the stored inputs."""
    torch.manual_seed(0)
    data = read_finetune_jsonl(DATA / "finetune.jsonl")
    config = model.config
    out: dict[str, Any] = {"refer": [], "gcg": [], "region": [], "video": []}
    for sample in data.samples:
        question = sample.conversation[0]["content"]
        if sample.video:
            frames = [load_image(f).pixels for f in sample.frames]
            answer = generate_grounded_video(model, frames, question)
            out["video"].append(
                {
                    "prompt": question,
                    "text": answer.text,
                    "masks": [encode_rle(m) for m in answer.masks],
                }
            )
            continue
        pixels = load_image(sample.frames[0]).pixels
        if sample.regions:
            regions = [decode_rle(r) for r in sample.regions]
            answer = generate_grounded(model, pixels, question, regions)
            out["region"].append({"prompt": question, "text": answer.text})
            continue
        answer = generate_grounded(model, pixels, question)
        record = {"prompt": question, "text": answer.text, "masks": _rles(answer.masks)}
        if question == config.gcg_prompt:
            out["gcg"].append(record)
            continue
        evidence = target_evidence(model, pixels, question)
        record["evidence"] = evidence.features()
        mask = referring_mask(model, pixels, question)
        record["decision"] = None if mask is None else _rles([mask])[0]
        out["refer"].append(record)
    dataset = SegDataset(data.samples, model.tokenizer, config, train=False)
    batch = collate([dataset[i] for i in range(len(dataset))], model.ids.pad)
    with torch.no_grad():
        terms = training_losses(model, batch)
        words = image_word_losses(model, batch)
    out["losses"] = {k: float(v) for k, v in terms.items() if v.dim() == 0}
    out["word_losses"] = {k: float(v) for k, v in words.items() if v.dim() == 0}
    return out


def _close(found: Any, expected: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert set(found) >= set(expected), f"{where}: keys {sorted(set(expected) - set(found))}"
        for key, value in expected.items():
            _close(found[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(found) == len(expected), f"{where}: {len(found)} items, expected {len(expected)}"
        for i, (a, b) in enumerate(zip(found, expected, strict=True)):
            _close(a, b, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, rel=1e-5, abs=1e-6), where
    else:
        assert found == expected, where


@pytest.fixture(scope="module")
def produced() -> dict[str, Any]:
    torch.set_num_threads(1)
    return outputs(shipped_model())


@pytest.mark.parametrize("task", ["refer", "gcg", "region", "video"])
def test_shipped_checkpoint_answers_as_the_reference(produced, task):
    expected = json.loads(REFERENCE.read_text())
    assert expected[task], f"the reference has no {task} answers"
    _close(produced[task], expected[task], task)


def test_shipped_checkpoint_losses_as_the_reference(produced):
    expected = json.loads(REFERENCE.read_text())
    for group in ("losses", "word_losses"):
        # terms of options removed since the reference was written (box_loss,
        # query_word_loss) must have been off (0) there
        removed = {k: v for k, v in expected[group].items() if k not in produced[group]}
        assert set(removed) <= {"box_loss", "query_word_loss"}, removed
        assert all(v == 0.0 for v in removed.values()), removed
        kept = {k: v for k, v in expected[group].items() if k not in removed}
        _close(produced[group], kept, group)


def write_inputs(scratch: Path) -> None:
    """Cut the stored inputs from freshly written synth test splits (see the docstring)."""
    from pixelground.synth.writer import write_split

    for task, seed in (("refer", 0), ("gcg", 1), ("region", 2), ("video", 3)):
        write_split(scratch, task, "test", 2 if task == "refer" else 1, seed=seed)
    DATA.mkdir(parents=True, exist_ok=True)
    lines = []
    for task in ("refer", "gcg", "region", "video"):
        root = scratch / task / "test"
        for record in map(json.loads, (root / "finetune.jsonl").read_text().splitlines()):
            if task in ("gcg", "region") and lines and lines[-1]["id"].startswith(task):
                continue
            record["id"] = f"{task}_{record['id']}"
            if task == "video":
                if record["video"] != "JPEGImages/00000" or any(
                    r["id"].startswith("video") for r in lines
                ):
                    continue
                names = []
                for i, frame in enumerate(record["frames"][:VIDEO_FRAMES]):
                    names.append(f"video_{i}.png")
                    shutil.copy(root / frame, DATA / names[-1])
                record["frames"] = names
                record["masks"] = [m[:VIDEO_FRAMES] for m in record["masks"]]
                del record["video"]
            else:
                name = f"{task}_{Path(record['image']).stem[-1]}.png"
                shutil.copy(root / record["image"], DATA / name)
                record["image"] = name
            lines.append(record)
    (DATA / "finetune.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def write_reference() -> None:
    """Write reference.json from the current code (only to set a new reference)."""
    torch.set_num_threads(1)
    REFERENCE.write_text(json.dumps(outputs(shipped_model()), indent=1) + "\n")


if __name__ == "__main__":
    if "--inputs" in sys.argv:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            write_inputs(Path(scratch))
    if "--write" in sys.argv:
        write_reference()
