"""Every image command end to end with the tiny preset on a real image, plus user errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelground.core.result import GroundedResult
from pixelground.serve.cli import main

pytestmark = pytest.mark.slow


def run_json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def check_result(data: dict, task: str, image: Path) -> GroundedResult:
    assert data["version"] == 1 and data["task"] == task
    assert data["image"] == {"path": str(image), "width": 854, "height": 480}
    assert data["model"]["preset"] == "tiny" and "not meaningful" in data["model"]["note"]
    result = GroundedResult.from_dict(data)
    assert result.to_dict() == data
    for region in result:
        if region.mask is not None:
            assert region.mask.shape == (480, 854)
        if region.span is not None:
            assert result.text[region.span[0] : region.span[1]] == region.phrase
    return result


def test_segment_writes_json_and_overlay(swan_image_path, tmp_path, capsys):
    out, overlay = tmp_path / "out.json", tmp_path / "overlay.png"
    argv = ["segment", str(swan_image_path), "the black swan", "--preset", "tiny"]
    assert main([*argv, "--threshold", "0", "-o", str(out), "--overlay", str(overlay)]) == 0
    result = check_result(json.loads(out.read_text()), "segment", swan_image_path)
    assert result.text == "the black swan"
    assert Image.open(overlay).size[1] == 480
    assert "not meaningful" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, task",
    [
        (["ground", "{image}", "<p>a swan</p> on <p>the water</p>"], "ground"),
        (
            [
                "ground",
                "{image}",
                "a swan on the water",
                "--strategy",
                "entity",
                "--points-per-side",
                "4",
            ],
            "ground",
        ),
        (["caption", "{image}"], "caption"),
        (["caption", "{image}", "--grounded"], "caption"),
        (["describe", "{image}", "--box", "100,50,500,400"], "describe"),
        (["describe", "{image}", "--point", "300,200"], "describe"),
        (["entities", "{image}", "--points-per-side", "4"], "entities"),
        (["semseg", "{image}", "--classes", "water,swan,grass"], "semseg"),
        (["chat", "{image}", "What is the bird doing?"], "chat"),
    ],
)
def test_every_command_with_tiny_preset(argv, task, swan_image_path, capsys):
    args = [a.format(image=swan_image_path) for a in argv]
    result = check_result(run_json(capsys, [*args, "--preset", "tiny"]), task, swan_image_path)
    if task == "describe":
        assert len(result) == 1 and set(result[0].attributes) == {
            "short_caption",
            "detailed_caption",
        }
    if task == "semseg":
        assert {r.label for r in result} <= {"water", "swan", "grass"} and len(result) >= 1
        assert result.label_map(["water", "swan", "grass"]).min() >= 0  # every pixel labelled


def test_describe_with_mask_file(swan_image_path, shared_data, capsys):
    mask = shared_data / "davis2016_blackswan" / "Annotations" / "480p" / "blackswan" / "00000.png"
    result = check_result(
        run_json(
            capsys, ["describe", str(swan_image_path), "--mask", str(mask), "--preset", "tiny"]
        ),
        "describe",
        swan_image_path,
    )
    assert np.array_equal(result[0].mask, np.array(Image.open(mask)) > 0)


def test_folder_writes_jsonl_and_skips_bad_images(swan_image_path, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(swan_image_path, folder / "a.jpg")
    shutil.copy(swan_image_path, folder / "c.jpg")
    (folder / "b.jpg").write_bytes(swan_image_path.read_bytes()[:2000])  # truncated
    out = tmp_path / "out.jsonl"
    code = main(
        ["semseg", str(folder), "--classes", "water,swan", "--preset", "tiny", "-o", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 1 and "skipped" in err and "b.jpg" in err and "1 of 3 images failed" in err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(d["image"]["path"]).name for d in lines] == ["a.jpg", "c.jpg"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["segment", "{missing}", "a dog", "--preset", "tiny"], "image not found"),
        (["segment", "{corrupt}", "a dog", "--preset", "tiny"], "not an image"),
        (["segment", "{image}", "   ", "--preset", "tiny"], "expression is empty"),
        (["segment", "{image}", "a dog", "--preset", "nope"], "unknown preset 'nope'"),
        (["describe", "{image}", "--box", "2000,2000,2100,2100", "--preset", "tiny"], "outside"),
        (["describe", "{image}", "--box", "1,2,3", "--preset", "tiny"], "X0,Y0,X1,Y1"),
        (["describe", "{image}", "--preset", "tiny"], "exactly one"),
        (["semseg", "{image}", "--classes", " , ", "--preset", "tiny"], "class name"),
        (["segment", "{image}", "a dog", "--preset", "default"], "not in the local cache"),
        (
            [
                "segment",
                "{image}",
                "a dog",
                "--preset",
                "tiny",
                "--model",
                "segmenter=/no/such/dir",
            ],
            "does not exist",
        ),
        (["segment", "{image}", "a dog", "--preset", "tiny", "--device", "cuda"], "no CUDA"),
    ],
)
def test_user_errors_are_one_line(argv, message, swan_image_path, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"this is not a jpeg")
    args = [
        a.format(image=swan_image_path, missing=tmp_path / "x.jpg", corrupt=corrupt) for a in argv
    ]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(lines)
    assert [line for line in lines if line.startswith("pixelground: error:")] == lines[-1:]
    assert message in lines[-1]


def test_presets_lists_parts_and_availability(capsys):
    rows = run_json(capsys, ["presets", "--json"])
    tiny = [r for r in rows if r["preset"] == "tiny"]
    assert tiny and all(r["available"] for r in tiny)
    default = {r["role"]: r for r in rows if r["preset"] == "default"}
    assert default["segmenter"]["checkpoint"] == "facebook/sam2.1-hiera-tiny"
    assert default["segmenter"]["available"] is False  # no hub cache on test machines
