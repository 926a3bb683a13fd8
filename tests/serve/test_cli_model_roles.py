"""``--model`` overrides of roles a command never uses are refused, and a preset's missing
checkpoints (of the parts the command uses) are reported together, before any model loads."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from huggingface_hub import constants
from PIL import Image

from pixelground.backends.presets import PRESETS
from pixelground.core.errors import InputError
from pixelground.serve.cli import main
from pixelground.serve.commands.common import COMMAND_ROLES, check_roles_used
from pixelground.synth.writer import SynthOptions, write_split


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "blank.png"
    Image.fromarray(np.zeros((32, 48, 3), dtype=np.uint8)).save(path)
    return path


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pixelground: error: "), lines
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["segment", "{image}", "a dog", "--model", "vlm=vlm:tiny:smolvlm"],
         "--model vlm=vlm:tiny:smolvlm: `pixelground segment` never uses a vlm, so the override "
         "would be ignored; it uses segmenter, detector, parser, grounding_model"),
        (["entities", "{image}", "--model", "detector=owlv2:tiny:owlv2"],
         "`pixelground entities` never uses a detector, so the override would be ignored; it "
         "uses segmenter"),
        (["eval", "refer", "--dataset", "synth:{folder}", "--out", "{folder}/out",
          "--model", "captioner=florence2:tiny:florence2"],
         "`pixelground eval refer` never uses a captioner"),
    ],
)  # fmt: skip
def test_override_of_a_role_the_command_never_uses_is_refused(
    argv, expected, image, tmp_path, capsys
):
    args = [a.format(image=image, folder=tmp_path) for a in argv]
    if args[0] == "eval":  # a real synth split, so the dataset check passes first
        write_split(tmp_path, "refer", "test", 1, seed=0, options=SynthOptions(size=64))
    assert main([*args, "--preset", "tiny"]) == 2
    assert expected in one_error_line(capsys)


def test_roles_a_command_uses_are_accepted():
    check_roles_used(argparse.Namespace(command="segment"), {"grounding_model": "segtoken:x"})
    check_roles_used(argparse.Namespace(command="caption"), {"vlm": "vlm:x"})  # video captions
    check_roles_used(argparse.Namespace(command="eval", task="rvos"), {"video_segmenter": "x"})
    check_roles_used(argparse.Namespace(command="annotate"), {"depth": "x"})  # not listed
    with pytest.raises(InputError, match="`pixelground eval png` never uses a vlm"):
        check_roles_used(argparse.Namespace(command="eval", task="png"), {"vlm": "vlm:x"})


def test_missing_checkpoints_are_reported_together(image, tmp_path, monkeypatch, capsys):
    """Offline with an empty cache: one error naming every missing part segment uses."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    used = [
        (role, part.checkpoint)
        for role, part in PRESETS["default"].parts.items()
        if role in COMMAND_ROLES["segment"] and part.checkpoint
    ]
    assert len(used) >= 2
    assert main(["segment", str(image), "a dog", "--preset", "default"]) == 2
    line = one_error_line(capsys)
    assert f"preset 'default' is missing {len({c for _, c in used})} checkpoint(s)" in line
    for role, checkpoint in used:
        assert role in line and checkpoint in line
    assert "vlm" not in line  # a part segment never uses is not asked for
