"""Output paths are checked before any model loads, written atomically, and reported.

Each case of issue 38 that ended in a Python traceback (FileNotFoundError, FileExistsError,
NotADirectoryError) is here one line on stderr and exit code 2, with no model loaded.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pixelground.core.errors import InputError
from pixelground.core.files import atomic_open, check_output, check_output_dir
from pixelground.serve import cli
from pixelground.serve.commands import common


@pytest.fixture
def no_models(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(common, "load", refuse)


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain.txt"
    path.write_text("not a folder")
    return path


CASES = [
    (["segment", "{image}", "a swan", "-o", "{file}/out.json"], "is a file, not a folder"),
    (["segment", "{image}", "a swan", "--overlay", "{file}/o.png"], "is a file, not a folder"),
    (["segment", "{image}", "a swan", "-o", "{tmp}"], "is a folder; give a file name"),
    (["track", "{swan}", "--box", "1,2,30,40@0", "-o", "{file}/t.json"], "is a file"),
    (["track", "{swan}", "--box", "1,2,30,40@0", "--masks", "{file}"], "is a file; give"),
    (["track", "{swan}", "--box", "1,2,30,40@99"], "frame 99 is outside the video's 50"),
    (["track", "{swan}", "--box", "900,500,950,600@0"], "lies outside"),
    (["track", "{swan}", "--box", "30,40,1,2@0"], "is empty"),
    (["eval", "refer", "--dataset", "synth:{tmp}", "--out", "{file}"], "is a file; give"),
    (["synth", "{file}", "--task", "refer", "--n", "1"], "is a file; give a folder"),
    (["describe", "{image}", "--box", "2000,10,2100,40"], "lies outside"),
    (["describe", "{image}", "--point", "-5,10"], "outside"),
    (["segment", "{image}", "a swan", "--model", "segmenter=sam2:/nonexistent"], "/nonexistent"),
    (["segment", "{image}", "a swan", "--device", "cuda:0"], "no CUDA"),
    (["chat", "{image}", "what is this?", "--preset", "shapes"], "has no chat model"),
]


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_bad_outputs_and_prompts_fail_before_any_model(
    argv, message, no_models, a_file, tmp_path, swan_image_path, capsys
):
    swan = swan_image_path.parent
    paths = {"image": swan_image_path, "file": a_file, "tmp": tmp_path, "swan": swan}
    assert cli.main([part.format(**paths) for part in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_missing_output_folders_are_created_and_reported(tmp_path, swan_image_path, capsys):
    out = tmp_path / "new" / "deeper" / "out.json"
    argv = ["segment", str(swan_image_path), "the blue triangle", "--preset", "shapes"]
    assert cli.main([*argv, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert json.loads(out.read_text())["task"] == "segment"
    assert f"wrote {out}" in err
    assert "0 regions" in err or json.loads(out.read_text())["regions"]
    assert not list(out.parent.glob(".*partial*"))  # no temporary file left behind


def test_atomic_open_never_leaves_a_torn_file(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old and whole")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old and whole"
    with pytest.raises(RuntimeError), atomic_open(target, keep_partial=True) as handle:
        handle.write('{"line": 1}\n')
        raise RuntimeError("interrupted after whole lines")
    assert target.read_text() == '{"line": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_atomic_files_get_the_umask_permissions(tmp_path):
    """Written files are readable as any file the user writes (mkstemp's would be 0600)."""
    previous = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "out.json") as handle:
            handle.write("{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o644


def test_output_checks(tmp_path, a_file):
    assert check_output(tmp_path / "a" / "b.json") == tmp_path / "a" / "b.json"
    assert (tmp_path / "a").is_dir()
    assert check_output_dir(tmp_path / "c" / "d") == tmp_path / "c" / "d"
    with pytest.raises(InputError, match="is a file"):
        check_output(a_file / "x.json")
    with pytest.raises(InputError, match="is a file"):
        check_output_dir(a_file)
    with pytest.raises(InputError, match="is a folder"):
        check_output(tmp_path)


def test_negative_numbers_parse_as_values():
    assert cli.join_negative_values(["describe", "x.png", "--point", "-5,10"]) == [
        "describe",
        "x.png",
        "--point=-5,10",
    ]
    assert cli.join_negative_values(["-v", "segment"]) == ["-v", "segment"]
