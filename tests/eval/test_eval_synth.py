"""The synthetic benchmark's image splits as evaluation datasets (`synth:DIR/<task>/<split>`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from pixelground.core.errors import InputError
from pixelground.core.masks import encode_rle
from pixelground.core.result import GroundedResult, Region
from pixelground.eval.datasets.glamm_gcg import GCGSample
from pixelground.eval.datasets.synth import SynthReferSample, near_misses
from pixelground.eval.loop import evaluate
from pixelground.eval.metrics.refer import COUNT_EPS, IOU_EPS
from pixelground.eval.metrics.selection import covered_objects, selection_outcome, selection_rates
from pixelground.eval.run import infer_format, load_dataset, score
from pixelground.synth.writer import SynthOptions, write_split


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """refer (3 images, 12 expressions) and gcg (2 images) test splits at 64 px."""
    root = tmp_path_factory.mktemp("bench")
    write_split(root, "refer", "test", 3, seed=2, options=SynthOptions(size=64))  # 1st: no target
    write_split(root, "gcg", "test", 2, seed=1, options=SynthOptions(size=64))
    return root


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class TruthPipeline:
    """Answers from the annotations: the GT regions (``answer="gt"``), nothing ("empty") or
    every pixel ("whole")."""

    def __init__(self, bench: Path, answer: str = "gt"):
        refer = lines(bench / "refer" / "test" / "annotations.jsonl")
        gcg = lines(bench / "gcg" / "test" / "annotations.jsonl")
        self.refer = {(Path(r["image"]).name, r["expression"]): r["gt"] for r in refer}
        self.gcg = {Path(r["image"]).name: r["gt"] for r in gcg}
        self.answer = answer

    def segment(self, image, text):
        gt = GroundedResult.from_dict(self.refer[(Path(image).name, text)])
        regions = [] if self.answer == "empty" else gt.regions
        if self.answer == "whole":
            regions = [Region(mask=np.ones((gt.image.height, gt.image.width), dtype=bool))]
        return GroundedResult("segment", gt.image, text, regions)

    def caption(self, image, grounded=False):
        gt = GroundedResult.from_dict(self.gcg[Path(image).name])
        return GroundedResult("caption", gt.image, gt.text, gt.regions if grounded else [])


def test_synth_refer_and_gcg_samples(bench):
    split = bench / "refer" / "test"
    assert infer_format(split, "refer") == infer_format(bench, "gcg") == "synth"
    fmt, samples = load_dataset(f"synth:{split}", "refer")
    records = lines(split / "annotations.jsonl")
    assert fmt == "synth" and [s.id for s in samples] == [r["id"] for r in records]
    assert all(isinstance(s, SynthReferSample) for s in samples)
    for sample, record in zip(samples, records, strict=True):
        gt = GroundedResult.from_dict(record["gt"])
        assert sample.no_target == record["no_target"] == (len(gt.regions) == 0)
        assert sample.image_path == split / record["image"] and sample.image_path.is_file()
        if gt.regions:
            assert np.array_equal(sample.gt_mask(), gt.union_mask())
        else:
            assert sample.gt_mask().shape == (64, 64) and not sample.gt_mask().any()
    assert any(s.no_target for s in samples) and not all(s.no_target for s in samples)
    # root + split and the task folder name the same split
    assert [s.id for s in load_dataset(f"synth:{bench}", "grefer", "test")[1]] == [
        s.id for s in samples
    ]
    _, images = load_dataset(f"synth:{bench / 'gcg'}", "gcg", "test")
    first = lines(bench / "gcg" / "test" / "annotations.jsonl")[0]
    assert isinstance(images[0], GCGSample) and images[0].caption == first["caption"]
    phrases = first["phrases"]
    assert images[0].phrases == phrases and images[0].gt_masks().shape[0] == len(phrases)
    spans = images[0].spans
    assert [images[0].caption[a:b] for a, b in spans] == phrases


def test_synth_split_errors(bench, tmp_path):
    with pytest.raises(InputError, match="is a synthetic refer split; gcg is evaluated on a gcg"):
        load_dataset(f"synth:{bench}/refer/test", "gcg")
    with pytest.raises(InputError, match="pixelground synth DIR --task refer --split train"):
        load_dataset(f"synth:{bench}", "refer", "train")
    with pytest.raises(InputError, match="a synth dataset cannot be scored as png"):
        load_dataset(f"synth:{bench}", "png")


def test_refer_on_synth_reports_no_target_accuracy(bench, tmp_path):
    result = evaluate("refer", f"synth:{bench}/refer/test", TruthPipeline(bench), tmp_path / "a")
    n, negatives = result["count"], result["no_target_count"]
    assert n == 12 and 0 < negatives < n
    assert result["cIoU"] == pytest.approx(1.0, abs=1e-9)
    areas = [int(s.gt_mask().sum()) for s in load_dataset(f"synth:{bench}", "refer")[1]]
    ious = [a / (a + IOU_EPS) if a else 1.0 for a in areas]  # LISA's epsilons
    assert result["gIoU"] == pytest.approx(sum(ious) / (n + COUNT_EPS), abs=1e-12)
    assert result["N-acc"] == 1.0 and result["T-acc"] == 1.0
    assert result["confusion"] == {"TP": negatives, "TN": n - negatives, "FP": 0, "FN": 0}
    assert result["targets"]["count"] == n - negatives and result["grefer"]["gIoU"] == 1.0
    assert result["by_type"]["no_target"]["count"] == negatives
    rows = list(csv.DictReader((tmp_path / "a" / "per_sample.csv").open()))
    assert {"type", "outcome", "gt_no_target", "IoU"} <= set(rows[0]) and len(rows) == n
    # answering "nothing" to everything: all no-target right, every target missed
    empty = evaluate("refer", f"synth:{bench}", TruthPipeline(bench, "empty"), tmp_path / "b")
    assert empty["N-acc"] == 1.0 and empty["T-acc"] == 0.0 and empty["cIoU"] == 0.0
    assert empty["gIoU"] == pytest.approx(negatives / (n + COUNT_EPS), abs=1e-12)
    assert empty["targets"]["gIoU"] == 0.0 and empty["by_type"]["no_target"]["cIoU"] is None
    grefer = evaluate("grefer", f"synth:{bench}", TruthPipeline(bench, "empty"), tmp_path / "c")
    assert grefer["N-acc"] == 1.0 and grefer["T-acc"] == 0.0 and "by_type" in grefer


def test_near_misses_are_the_objects_one_attribute_away():
    objects = [
        {"id": 1, "colour": "red", "kind": "circle", "size": "small", "mask": {"n": 1}},
        {"id": 2, "colour": "blue", "kind": "circle", "size": "small", "mask": {"n": 2}},
        {"id": 3, "colour": "red", "kind": "square", "size": "large", "mask": {"n": 3}},
        {"id": 4, "colour": "red", "kind": "square", "size": "small", "mask": {"n": 4}},
        {"id": 5, "colour": "red", "kind": "circle", "size": "small", "mask": {"n": 5}},
    ]
    found = near_misses({"colour": "red", "kind": "circle"}, objects, targets=[1, 5])
    assert [(m.attribute, m.mask_rle) for m in found] == [
        ("colour", {"n": 2}), ("kind", {"n": 3}), ("kind", {"n": 4}),
    ]  # fmt: skip
    # no description (e.g. "the leftmost shape"): nothing is one attribute away
    assert near_misses({}, objects, targets=[1]) == []


def test_refer_on_synth_reports_near_miss_coverage(bench, tmp_path):
    _, samples = load_dataset(f"synth:{bench}", "refer")
    assert sum(len(s.near_misses) for s in samples) > 0
    truth = evaluate("refer", f"synth:{bench}", TruthPipeline(bench), tmp_path / "truth")
    assert truth["near_misses"], "the bench has near misses"
    for attribute, entry in truth["near_misses"].items():
        assert attribute in ("colour", "kind", "size", "texture")
        assert entry["covered"] == 0 and entry["rate"] == 0.0 and entry["count"] > 0
    everything = evaluate(
        "refer", f"synth:{bench}", TruthPipeline(bench, "whole"), tmp_path / "all"
    )
    counts = {k: v["count"] for k, v in truth["near_misses"].items()}
    assert {k: v["count"] for k, v in everything["near_misses"].items()} == counts
    assert all(v["covered"] == v["count"] and v["rate"] == 1.0
               for v in everything["near_misses"].values())  # fmt: skip
    total = sum(len(s.near_misses) for s in samples)
    assert sum(counts.values()) == total


def test_selection_outcomes_of_covered_objects():
    square = np.zeros((8, 8), bool)
    square[:4, :4] = True
    circle = np.zeros((8, 8), bool)
    circle[4:, 4:] = True
    rles = {1: encode_rle(square)[0], 2: encode_rle(circle)[0]}
    half = square.copy()
    half[:2] = False  # exactly half of the square: not covered
    assert covered_objects(half, rles) == set()
    assert covered_objects(square | circle, rles) == {1, 2}
    assert covered_objects(None, rles) == set()
    assert selection_outcome({1}, [1]) == "exact"
    assert selection_outcome({1, 2}, [1]) == "targets_and_others"
    assert selection_outcome({1, 3}, [1, 2]) == "some_targets"
    assert selection_outcome({2}, [1]) == "others_only"
    assert selection_outcome(set(), [1]) == "nothing"
    with pytest.raises(ValueError):
        selection_outcome({1}, [])
    rates = selection_rates([("relation", "exact"), ("relation", "nothing"), (None, "exact")])
    assert rates["all"]["count"] == 3 and rates["all"]["exact"] == pytest.approx(2 / 3)
    assert rates["relation"] == {
        "count": 2, "exact": 0.5, "targets_and_others": 0.0, "some_targets": 0.0,
        "others_only": 0.0, "nothing": 0.5,
    }  # fmt: skip


def test_refer_on_synth_reports_which_objects_predictions_select(bench, tmp_path):
    truth = evaluate("refer", f"synth:{bench}", TruthPipeline(bench), tmp_path / "truth")
    targets = sum(1 for row in truth["per_sample"] if not row["gt_no_target"])
    assert truth["selection"]["all"] == {
        "count": targets, "exact": 1.0, "targets_and_others": 0.0, "some_targets": 0.0,
        "others_only": 0.0, "nothing": 0.0,
    }  # fmt: skip
    assert set(truth["selection"]) - {"all"} <= {"attribute", "relation", "ordinal", "multi"}
    empty = evaluate("refer", f"synth:{bench}", TruthPipeline(bench, "empty"), tmp_path / "e")
    assert empty["selection"]["all"]["nothing"] == 1.0
    whole = evaluate("refer", f"synth:{bench}", TruthPipeline(bench, "whole"), tmp_path / "w")
    assert whole["selection"]["all"]["exact"] + whole["selection"]["all"][
        "targets_and_others"
    ] == pytest.approx(1.0)
    assert whole["selection"]["all"]["targets_and_others"] > 0
    rows = [row for row in whole["per_sample"] if "selection" in row]
    assert len(rows) == targets


def test_gcg_on_synth_and_scoring_predictions(bench, tmp_path):
    result = evaluate(
        "gcg", f"synth:{bench}", TruthPipeline(bench), tmp_path / "gcg",
        phrase_encoder="lexical", captions=False,
    )  # fmt: skip
    assert result["recall"] == 1.0 and result["mIoU"] == 1.0
    assert result["AP50"] == pytest.approx(1.0) and result["count"] == 2
    # `pixelground score` reads the same ground truth
    again = score(
        "gcg", tmp_path / "gcg" / "predictions.jsonl", f"synth:{bench}/gcg/test",
        phrase_encoder="lexical", captions=False,
    )  # fmt: skip
    assert again["recall"] == 1.0


def test_refer_threshold_option_reaches_the_pipeline(bench, tmp_path):
    seen = []

    class Pipeline(TruthPipeline):
        def segment(self, image, text, threshold=0.3):
            seen.append(threshold)
            return super().segment(image, text)

    spec = f"synth:{bench}/refer/test"
    evaluate("refer", spec, Pipeline(bench), tmp_path / "t", limit=1, options={"threshold": 0.5})
    assert seen == [0.5]
    with pytest.raises(InputError, match="--key-frames does not apply to refer"):
        evaluate("refer", spec, Pipeline(bench), tmp_path / "u", options={"key_frames": 2})
    # the same split named by the root: resumed; another split into the same folder: refused
    again = evaluate("refer", f"synth:{bench}", Pipeline(bench), tmp_path / "t", limit=1,
                     options={"threshold": 0.5})  # fmt: skip
    assert again["this_run"] == {"predicted": 0, "skipped": 1, "errors": 0}
    write_split(bench, "refer", "val", 1, seed=1, options=SynthOptions(size=64))
    with pytest.raises(InputError, match="another run.*split was 'test', now 'val'"):
        evaluate("refer", f"synth:{bench}", Pipeline(bench), tmp_path / "t", split="val")


@pytest.mark.slow
def test_eval_refer_and_gcg_commands_with_the_tiny_preset(bench, tmp_path, capsys):
    """Random weights: the commands run end to end and report the benchmark's metrics."""
    from pixelground.serve.cli import main

    common = ["--preset", "tiny", "--limit", "1", "--json", "--summary-only"]
    refer_out = tmp_path / "refer"
    argv = ["eval", "refer", "--dataset", f"synth:{bench}/refer/test", "--out", str(refer_out)]
    assert main(argv + common) == 0
    refer = json.loads(capsys.readouterr().out)
    assert {"gIoU", "cIoU", "N-acc", "T-acc", "by_type"} <= set(refer) and refer["samples"] == 1
    assert refer["no_target_count"] == 1 and refer["N-acc"] in (0.0, 1.0)
    gcg_out = tmp_path / "gcg"
    argv = ["eval", "gcg", "--dataset", f"synth:{bench}/gcg/test", "--out", str(gcg_out),
            "--phrase-encoder", "lexical", "--no-captions"]  # fmt: skip
    assert main(argv + common) == 0
    gcg = json.loads(capsys.readouterr().out)
    assert {"AP50", "mIoU", "recall"} <= set(gcg) and gcg["this_run"]["predicted"] == 1
    assert (gcg_out / "per_sample.csv").is_file() and (refer_out / "report.json").is_file()


def test_eval_model_option_replaces_a_part(bench, tmp_path, capsys):
    from pixelground.serve.cli import main

    out = tmp_path / "refer"
    argv = ["eval", "refer", "--dataset", f"synth:{bench}/refer/test", "--out", str(out),
            "--preset", "tiny", "--limit", "1", "--json", "--summary-only"]  # fmt: skip
    assert main(argv) == 0
    parts = json.loads((out / "run.json").read_text())["model"]["parts"]
    assert parts["segmenter"] == "sam2:tiny:sam2"
    other_model = ["--model", "grounding_model=segtoken:package:shapes"]
    assert main([*argv, *other_model]) == 2  # another model's predictions are not mixed in
    err = capsys.readouterr().err
    assert "model.parts.grounding_model was None, now 'segtoken:package:shapes'" in err
    assert "resume with the same settings" in err
    missing = tmp_path / "no-checkpoint"
    other_model = ["--model", f"grounding_model=segtoken:{missing}"]
    assert main([*argv, *other_model, "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert f"--model grounding_model=segtoken:{missing}: {missing} does not exist" in err


def test_score_caption_reads_a_synth_gcg_split(bench, tmp_path, capsys):
    """`score caption --gt synth:DIR` reads the gcg split's captions (no "id keys" error)."""
    from pixelground.serve.cli import main

    pred = tmp_path / "captions.jsonl"
    records = lines(bench / "gcg" / "test" / "annotations.jsonl")
    pred.write_text("".join(json.dumps({"id": r["id"], "text": r["gt"]["text"]}) + "\n"
                            for r in records))  # fmt: skip
    result = score("caption", pred, f"synth:{bench}", caption_metrics=["BLEU"])
    assert result["count"] == 2 and result["Bleu_1"] == pytest.approx(1.0)
    assert main(["score", "caption", "--gt", f"synth:{bench}/gcg/test", "--pred", str(pred),
                 "--metrics", "BLEU", "--json", "--summary-only"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["Bleu_4"] == pytest.approx(1.0)
    with pytest.raises(InputError, match="is a synthetic refer split; caption is evaluated"):
        score("caption", pred, f"synth:{bench}/refer/test")


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("foo", "unknown eval task 'foo'; use one of refer, grefer, gcg, caption, png, rvos "
                "(alias vos)"),
        ("panoptic", "`pixelground eval` cannot run panoptic, only refer, "),
        ("png", "a synth dataset cannot be scored as png: png reads png datasets; a synth "
                "dataset serves refer, grefer, gcg, caption, rvos"),
    ],
)  # fmt: skip
def test_eval_of_a_task_the_dataset_cannot_serve_is_one_line(bench, tmp_path, capsys, task,
                                                              message):  # fmt: skip
    """One line, before any model loads (no 'random-weight' or 'using preset' line)."""
    from pixelground.serve.cli import main

    argv = ["eval", task, "--dataset", f"synth:{bench}", "--preset", "tiny",
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pixelground: error: " + message) and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_resuming_with_another_preset_names_the_differing_setting(bench, tmp_path):
    """Another preset is named as model.preset (not its parts' dictionaries); another part of
    the same preset as model.parts.ROLE."""
    from pixelground.backends.presets import get_preset

    class Preset(TruthPipeline):
        def __init__(self, bench, preset):
            super().__init__(bench)
            self.preset = preset

    spec, out = f"synth:{bench}/refer/test", tmp_path / "run"
    tiny = get_preset("tiny")
    evaluate("refer", spec, Preset(bench, get_preset("shapes")), out, limit=1)
    with pytest.raises(InputError) as caught:
        evaluate("refer", spec, Preset(bench, tiny), out, limit=1)
    message = str(caught.value)
    assert "(model.preset was 'shapes', now 'tiny');" in message and "parts" not in message
    evaluate("refer", spec, Preset(bench, tiny), tmp_path / "tiny", limit=1)
    other = tiny.with_overrides({"segmenter": "sam2:/models/sam2"})
    with pytest.raises(InputError, match=r"\(model\.parts\.segmenter was 'sam2:tiny:sam2', now "
                                         r"'sam2:/models/sam2'\);"):  # fmt: skip
        evaluate("refer", spec, Preset(bench, other), tmp_path / "tiny", limit=1)
