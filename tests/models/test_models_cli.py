"""``pixelground train CONFIG.json`` and ``pixelground finetune`` handlers (via argparse)."""

from __future__ import annotations

import argparse
import json

import pytest

from pixelground.core.errors import InputError
from pixelground.models.checkpoints import find_checkpoint
from pixelground.serve.commands import train as train_command


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pixelground")
    train_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_train_then_finetune(tiny_data, tmp_path, capsys, tiny_overrides):
    config = {
        "data": tiny_data.name,
        "steps": 2,
        "batch_size": 4,
        "save_every": 2,
        "log_every": 1,
        **tiny_overrides,
    }
    config_path = tiny_data.parent / "tiny_train.json"
    config_path.write_text(json.dumps(config))  # data is relative to the config's folder
    run = tmp_path / "run"
    assert _run(["train", str(config_path), "--out", str(run)]) == 0
    assert find_checkpoint(run).name == "checkpoint-0000002"
    assert "checkpoint:" in capsys.readouterr().out

    tuned = tmp_path / "tuned"
    argv = [
        "finetune",
        "--data",
        str(tiny_data),
        "--from",
        str(run),
        "--out",
        str(tuned),
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--on-error",
        "raise",
    ]
    assert _run(argv) == 0
    assert find_checkpoint(tuned).name == "checkpoint-0000001"


def test_config_data_paths_are_found_next_to_the_config(tmp_path, monkeypatch):
    folder = tmp_path / "bench"
    (folder / "data").mkdir(parents=True)
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        (folder / "data" / name).write_text("")
    config = {"data": ["data/a.jsonl"], "first_data": ["data/b.jsonl"], "val_data": "data/c.jsonl"}
    (folder / "cfg.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)  # the config's relative paths do not exist from here
    data = train_command.read_config(folder / "cfg.json")
    assert data["data"] == [str(folder / "data" / "a.jsonl")]
    assert data["first_data"] == [str(folder / "data" / "b.jsonl")]
    assert data["val_data"] == str(folder / "data" / "c.jsonl")


def test_finetune_refuses_bad_data_with_raise(tiny_data, tmp_path):
    bad = tiny_data.parent / "cli_bad.jsonl"
    bad.write_text(tiny_data.read_text().splitlines()[0] + "\n{broken\n")
    with pytest.raises(InputError, match="line 2"):
        _run(["finetune", "--data", str(bad), "--from", str(tmp_path), "--on-error", "raise"])


def test_bad_configs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        _run(["train", str(tmp_path / "absent.json")])
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2]")
    with pytest.raises(InputError, match="one JSON object"):
        _run(["train", str(broken)])
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"data": "x.jsonl", "stepz": 3}))
    with pytest.raises(InputError, match="unknown config keys \\['stepz'\\]"):
        _run(["train", str(unknown)])


def test_the_pixelground_cli_turns_bad_data_into_one_line_and_exit_2(tiny_data, capsys):
    from pixelground.serve.cli import main

    bad = tiny_data.parent / "cli_main_bad.jsonl"
    bad.write_text(tiny_data.read_text().splitlines()[0] + "\n{broken\n")
    code = main(["finetune", "--data", str(bad), "--from", "nowhere", "--on-error", "raise"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "line 2" in err[0]
