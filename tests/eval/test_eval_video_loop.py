"""`pixelground eval rvos`: referring video segmentation over MeViS-layout splits (synthetic)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from pixelground.core.errors import InputError
from pixelground.core.masks import decode_rle
from pixelground.core.result import Track, VideoInfo, VideoResult
from pixelground.eval.loop import MANIFEST_FILE, PREDICTIONS_FILE, evaluate
from pixelground.eval.metrics.vos import evaluate_vos
from pixelground.eval.video_loop import ListedFrames
from pixelground.synth.writer import SynthOptions, write_split

FRAMES = 5


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """A synthetic benchmark root with a 2-clip, 5-frame video test split (6 expressions)."""
    root = tmp_path_factory.mktemp("bench")
    write_split(root, "video", "test", 2, seed=2, options=SynthOptions(size=64, num_frames=FRAMES))
    return root


@pytest.fixture(scope="module")
def truth(bench) -> dict[str, dict]:
    """Expression id ("<video>/<exp>") -> its annotations.jsonl line."""
    lines = (bench / "video" / "test" / "annotations.jsonl").read_text().splitlines()
    out = {}
    for line in lines:
        record = json.loads(line)
        video, _, exp = record["id"].rpartition("_")
        out[f"{video}/{exp}"] = record
    return out


def gt_union(record: dict) -> np.ndarray:
    """(T, H, W) union of an annotation's GT tracks, decoded independently of the loader."""
    video = record["gt"]["video"]
    out = np.zeros((video["num_frames"], video["height"], video["width"]), dtype=bool)
    for track in record["gt"]["tracks"]:
        for entry in track["frames"]:
            out[entry["frame"]] |= decode_rle(entry["mask"])
    return out


class FakeVideoPipeline:
    """Answers each expression from its ground truth, transformed by ``answer``."""

    def __init__(self, truth, answer="gt", fail_on=(), stop_after=None):
        self.by_key = {(r["video"], r["expression"]): r for r in truth.values()}
        self.answer, self.fail_on, self.stop_after = answer, set(fail_on), stop_after
        self.calls = []

    def segment_video(self, frames, text, **options):
        assert isinstance(frames, ListedFrames) and options["key_frames"] == 5
        record = self.by_key[(Path(frames.metadata.path).name, text)]
        self.calls.append(record["id"])
        if self.stop_after is not None and len(self.calls) > self.stop_after:
            raise KeyboardInterrupt
        if record["id"] in self.fail_on:
            raise InputError(f"cannot decode {frames.metadata.path}")
        gt = VideoResult.from_dict(record["gt"])
        info = VideoInfo(frames.width, frames.height, len(frames), None, frames.metadata.path)
        if self.answer == "empty":
            return VideoResult("segment", info, text, [])
        if self.answer == "shifted":  # every mask moved 3 px right: J, F strictly inside (0, 1)
            tracks = []
            for old in gt.tracks:
                track = Track(id=old.id, phrase=text)
                for t in old.frames:
                    track.add(t, np.roll(old.mask(t, frames.height, frames.width), 3, axis=1))
                tracks.append(track)
            return VideoResult("segment", info, text, tracks)
        return VideoResult("segment", info, text, gt.tracks)


def run(bench, pipeline, out, **kwargs):
    return evaluate("rvos", f"synth:{bench}", pipeline, out, split="test", **kwargs)


def test_ground_truth_predictions_score_exactly_one(tmp_path, bench, truth):
    out = tmp_path / "perfect"
    steps = []
    result = run(bench, FakeVideoPipeline(truth), out, on_step=lambda *s: steps.append(s))
    assert (result["J"], result["F"], result["JF"]) == (1.0, 1.0, 1.0)
    assert result["task"] == "rvos" and result["protocol"] == "mevis"
    assert result["num_expressions"] == len(truth) == 6 and steps[-1][1:] == (6, 6)
    assert result["by_type"].keys() == {"motion", "attribute", "multi"}
    assert all(group["JF"] == 1.0 for group in result["by_type"].values())
    rows = list(csv.DictReader((out / "per_sample.csv").open()))
    assert [r["id"] for r in rows] == sorted(truth) and {r["JF"] for r in rows} == {"1.0"}
    assert {r["type"] for r in rows} == {"motion", "attribute", "multi"}
    report = json.loads((out / "report.json").read_text())
    assert report["JF"] == 1.0 and "per_sample" not in report
    # the PNGs are a MeViS submission: the folder scorer agrees
    for sid in truth:
        video, exp = sid.split("/")
        names = sorted(p.name for p in (out / "Annotations" / video / exp).iterdir())
        assert names == [f"{t:05d}.png" for t in range(FRAMES)]
    official = evaluate_vos(bench / "video" / "test", out / "Annotations", "mevis")
    assert official["JF"] == 1.0 and official["num_expressions"] == 6


def test_empty_predictions_score_the_empty_frames(tmp_path, bench, truth):
    """Empty vs empty frames score J = F = 1, the others 0 (MeViS' db_eval_iou/boundary)."""
    expected = {sid: float((~gt_union(r).any(axis=(1, 2))).mean()) for sid, r in truth.items()}
    assert 0 < np.mean(list(expected.values())) < 1  # the split has absent objects
    out = tmp_path / "empty"
    failing = truth["00001/0"]["id"]
    first = FakeVideoPipeline(truth, "empty", fail_on={failing}, stop_after=2)
    with pytest.raises(KeyboardInterrupt):  # interrupted on the third expression
        run(bench, first, out)
    assert len((out / PREDICTIONS_FILE).read_text().splitlines()) == 2
    with (out / PREDICTIONS_FILE).open("a") as handle:
        handle.write('{"id": "00000/2", "resu')  # torn last line
    second = FakeVideoPipeline(truth, "empty", fail_on={failing})
    result = run(bench, second, out)
    assert result["this_run"] == {"predicted": 3, "skipped": 2, "errors": 1}
    assert result["errors"] == 1 and result["missing_predictions"] == 1
    rows = {row["id"]: row for row in result["per_sample"]}
    assert "cannot decode" in rows["00001/0"]["error"] and rows["00001/0"]["missing"]
    for sid, value in expected.items():  # the failed expression is scored as empty too
        assert rows[sid]["J"] == value and rows[sid]["F"] == value and rows[sid]["JF"] == value
    mean = float(np.mean([expected[sid] for sid in sorted(expected)]))
    assert result["J"] == pytest.approx(mean, abs=1e-15) and result["F"] == result["J"]
    third = FakeVideoPipeline(truth, "empty")
    again = run(bench, third, out)
    assert third.calls == [failing] and again["this_run"]["skipped"] == 5 and again["errors"] == 0


def test_scores_match_the_folder_scorer_and_limit(tmp_path, bench, truth):
    out = tmp_path / "shifted"
    result = run(bench, FakeVideoPipeline(truth, "shifted"), out)
    assert 0 < result["J"] < 1 and 0 < result["F"] < 1
    official = evaluate_vos(bench / "video" / "test", out / "Annotations", "mevis")
    for row in result["per_sample"]:
        entry = official["per_expression"][row["id"].replace("/", "_")]
        assert row["J"] == pytest.approx(entry["J"], abs=1e-12)
        assert row["F"] == pytest.approx(entry["F"], abs=1e-12)
    assert result["JF"] == pytest.approx(official["JF"], abs=1e-12)
    # a limited run reuses the predictions, a run with other settings is refused
    limited = run(bench, FakeVideoPipeline(truth, "shifted"), out, limit=2)
    assert limited["num_expressions"] == 2 and limited["this_run"]["predicted"] == 0
    assert json.loads((out / MANIFEST_FILE).read_text())["options"]["key_frames"] == 5
    with pytest.raises(InputError, match="options.threshold was 0.3, now 0.5"):
        run(bench, FakeVideoPipeline(truth), out, options={"threshold": 0.5})


def test_protocols_and_formats(tmp_path, bench, truth):
    pipeline = FakeVideoPipeline(truth)
    with pytest.raises(InputError, match="score vos --protocol semi"):
        evaluate("vos", f"synth:{bench}", pipeline, tmp_path / "a", protocol="semi")
    with pytest.raises(InputError, match="synthetic video split"):
        evaluate("refer", f"synth:{bench}/video/test", pipeline, tmp_path / "b")
    with pytest.raises(InputError, match="unknown rvos option"):
        evaluate("rvos", f"synth:{bench}", pipeline, tmp_path / "c", options={"stride": 2})
    # the same split read as MeViS layout (frames are PNG files), through the alias "vos"
    result = evaluate("vos", f"mevis:{bench}/video/test", pipeline, tmp_path / "d", limit=1)
    assert result["format"] == "mevis" and result["JF"] == 1.0 and "by_type" not in result


def test_split_without_ground_truth_is_predicted_only(tmp_path, bench, truth):
    split = tmp_path / "valid"
    split.mkdir()
    source = bench / "video" / "test"
    (split / "meta_expressions.json").write_text((source / "meta_expressions.json").read_text())
    (split / "JPEGImages").symlink_to(source / "JPEGImages")
    result = evaluate("rvos", f"mevis:{split}", FakeVideoPipeline(truth), tmp_path / "out")
    assert result["scored"] is False and "submit" in result["note"] and "JF" not in result
    assert len(result["per_sample"]) == 6 and (tmp_path / "out/Annotations/00001/2").is_dir()


@pytest.mark.slow
def test_eval_rvos_command_with_the_tiny_preset(tmp_path, capsys):
    """Random weights: structure, resumability, report keys and CSV rows."""
    from pixelground.serve.cli import main as run_cli

    assert run_cli(["synth", str(tmp_path / "b"), "--task", "video", "--n", "2",
                     "--frames", "2", "--size", "64", "--split", "test"]) == 0  # fmt: skip
    capsys.readouterr()
    out = tmp_path / "run"
    split = tmp_path / "b" / "video" / "test"
    argv = ["eval", "rvos", "--dataset", f"synth:{split}", "--preset", "tiny", "--key-frames",
            "1", "--limit", "2", "--out", str(out), "--json", "--summary-only"]  # fmt: skip
    assert run_cli(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert {"J", "F", "JF", "num_expressions", "by_type"} <= set(first)
    assert all(0.0 <= first[k] <= 1.0 for k in ("J", "F", "JF"))
    assert first["this_run"] == {"predicted": 2, "skipped": 0, "errors": 0}
    assert first["model"]["preset"] == "tiny" and first["options"]["key_frames"] == 1
    rows = list(csv.DictReader((out / "per_sample.csv").open()))
    assert len(rows) == 2 and {"J", "F", "JF", "text", "tracks"} <= set(rows[0])
    assert run_cli(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["this_run"] == {"predicted": 0, "skipped": 2, "errors": 0}
    assert second["JF"] == first["JF"] == json.loads((out / "report.json").read_text())["JF"]
