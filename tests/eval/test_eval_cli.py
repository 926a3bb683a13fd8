"""`pixelground score` and `pixelground eval` end to end through the command handlers."""

from __future__ import annotations

import argparse
import csv
import json
import sys

import pytest
from eval_fixtures import build_refer, voc_image_dir

from pixelground.backends.presets import Preset
from pixelground.core.errors import InputError, PixelgroundError
from pixelground.core.result import GroundedResult, ImageInfo, Region
from pixelground.eval.loop import PREDICTIONS_FILE, evaluate, marked_caption
from pixelground.serve.commands import eval as eval_commands


def run_cli(argv: list[str]) -> int:
    """Through pixelground.serve.cli.main when it lists our module, else our parser + handler."""
    try:
        from pixelground.serve import cli
    except ImportError:
        cli = None
    if cli is not None and "pixelground.serve.commands.eval" in getattr(cli, "COMMAND_MODULES", ()):
        return cli.main(argv)
    parser = argparse.ArgumentParser(prog="pixelground")
    eval_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except PixelgroundError as error:
        print(f"pixelground: error: {error}", file=sys.stderr)
        return error.exit_code


@pytest.fixture(scope="module")
def golden(shared_data):
    root = shared_data / "golden"
    return {
        "davis": json.loads((root / "davis_blackswan_osvos.json").read_text()),
        "pq": json.loads((root / "pq_official.json").read_text()),
    }


@pytest.mark.parametrize("workers", ["1", "3"])
def test_score_vos_json_semi_supervised(capsys, shared_data, golden, workers):
    gt = shared_data / "davis2016_blackswan" / "Annotations" / "480p"
    pred = shared_data / "davis2017eval_predictions" / "semi-supervised" / "osvos"
    code = run_cli(["score", "vos", "--gt", str(gt), "--pred", str(pred), "--protocol", "semi",
                    "--json", "--workers", workers])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    expected = golden["davis"]["osvos_semi_supervised_protocol"]
    assert {"J", "F", "JF"} <= set(result)
    assert result["J"] == pytest.approx(expected["J_M"], abs=1e-6)
    assert result["F"] == pytest.approx(expected["F_M"], abs=1e-6)
    assert result["JF"] == pytest.approx(expected["JF_mean"], abs=1e-6)
    assert "blackswan_1" in result["per_object"] and result["task"] == "vos"


@pytest.mark.parametrize("workers", ["1", "3"])
def test_score_panoptic_json(capsys, shared_data, golden, workers):
    sample = shared_data / "panopticapi_sample"
    pred = shared_data / "golden" / "pq_pred"
    code = run_cli([
        "score", "panoptic", "--gt", str(sample / "panoptic_examples.json"),
        "--gt-dir", str(sample / "panoptic_examples"),
        "--pred", str(pred / "panoptic_pred.json"), "--pred-dir", str(pred / "panoptic_pred"),
        "--json", "--workers", workers,
    ])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    expected = golden["pq"]["result_pred_vs_gt"]
    for group in ("All", "Things", "Stuff"):
        for key in ("pq", "sq", "rq"):
            assert result[group][key] == pytest.approx(expected[group][key], abs=1e-6)
    assert result["per_class"]["1"]["pq"] == pytest.approx(expected["per_class"]["1"]["pq"])


def _refer_predictions(tmp_path, root, images):
    from pixelground.eval.datasets.refcoco import load_refer

    lines = []
    for sample in load_refer(root, "refcoco", "val", image_dir=images):
        info = ImageInfo(sample.width, sample.height, str(sample.image_path))
        result = GroundedResult("segment", info, sample.text, [Region(mask=sample.gt_mask())])
        lines.append(json.dumps({"id": sample.id, "result": result.to_dict()}))
    path = tmp_path / "pred.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_score_refer_table_csv_and_output(capsys, tmp_path, shared_data):
    root = build_refer(tmp_path / "refer", shared_data)
    images = voc_image_dir(shared_data)
    pred = _refer_predictions(tmp_path, root, images)
    csv_path, out = tmp_path / "rows.csv", tmp_path / "res.json"
    code = run_cli(["score", "refer", "--gt", f"refcoco:{root}", "--pred", str(pred),
                    "--image-dir", str(images), "--per-sample-csv", str(csv_path),
                    "-o", str(out)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "gIoU" in text and "cIoU" in text and "100.00" in text
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["id"] for r in rows] == ["0-0", "0-1", "1-2", "3-4"]
    assert json.loads(out.read_text())["cIoU"] == pytest.approx(1.0)


def test_score_user_errors_are_one_line(capsys, tmp_path):
    code = run_cli(["score", "refer", "--gt", str(tmp_path), "--pred", str(tmp_path / "x.jsonl")])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot tell the dataset format" in err and len(err.strip().splitlines()) == 1
    code = run_cli(["score", "segment", "--gt", str(tmp_path), "--pred", str(tmp_path)])
    assert code == 2


class FakePipeline:
    """Stands in for pixelground.load(...): answers segment() with the GT mask or nothing."""

    meaningful = True
    preset = Preset("fake", "a stand-in")

    def __init__(self, samples, fail_on=(), stop_after=None):
        self.truth = {(s.image_path.name, s.text): s for s in samples}
        self.fail_on = set(fail_on)
        self.stop_after = stop_after
        self.calls = 0

    def segment(self, image, text):
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt
        from pathlib import Path

        sample = self.truth[(Path(image).name, text)]
        if sample.id in self.fail_on:
            raise InputError(f"cannot read {image}")
        regions = [Region(mask=sample.gt_mask())] if sample.id != "0-1" else []
        return GroundedResult(
            "segment", ImageInfo(sample.width, sample.height, image), text, regions
        )


def test_eval_loop_streams_resumes_and_reports(tmp_path, shared_data):
    from pixelground.eval.datasets.refcoco import load_refer

    root = build_refer(tmp_path / "refer", shared_data)
    images = voc_image_dir(shared_data)
    samples = load_refer(root, "refcoco", "val", image_dir=images)
    out = tmp_path / "run"
    spec = f"refcoco:{root}"
    with pytest.raises(KeyboardInterrupt):  # interrupted after two samples
        evaluate("refer", spec, FakePipeline(samples, stop_after=2), out, image_dir=images)
    assert len((out / PREDICTIONS_FILE).read_text().splitlines()) == 2
    (out / PREDICTIONS_FILE).open("a").write('{"id": "1-2", "resu')  # torn last line
    steps = []
    pipeline = FakePipeline(samples, fail_on={"3-4"})
    result = evaluate(
        "refer", spec, pipeline, out, image_dir=images, on_step=lambda *step: steps.append(step)
    )
    assert pipeline.calls == 2 and result["this_run"] == {"predicted": 1, "skipped": 2, "errors": 1}
    assert steps[-1] == ("3-4", 4, 4) and result["errors"] == 1
    # 0-0 perfect, 0-1 "no target" (empty), 1-2 perfect, 3-4 failed -> scored as empty
    gts = [s.gt_mask() for s in samples]
    inter = int(gts[0].sum() + gts[2].sum())
    assert result["cIoU"] == pytest.approx(inter / sum(int(g.sum()) for g in gts), abs=1e-9)
    report = json.loads((out / "report.json").read_text())
    assert "per_sample" not in report and report["gIoU"] == pytest.approx(result["gIoU"])
    assert len(list(csv.DictReader((out / "per_sample.csv").open()))) == 4
    again = evaluate("refer", spec, FakePipeline(samples), out, image_dir=images, limit=2)
    assert again["this_run"]["predicted"] == 0 and again["count"] == 2  # retries only failures
    final = evaluate("refer", spec, FakePipeline(samples), out, image_dir=images)
    assert final["this_run"] == {"predicted": 1, "skipped": 3, "errors": 0} and final["errors"] == 0


def test_eval_command_with_injected_pipeline(monkeypatch, capsys, tmp_path, shared_data):
    from pixelground.eval.datasets.refcoco import load_refer

    root = build_refer(tmp_path / "refer", shared_data)
    images = voc_image_dir(shared_data)
    samples = load_refer(root, "refcoco", "val", image_dir=images)
    from pixelground.serve.commands import common

    monkeypatch.setattr(common, "load", lambda preset, **_: FakePipeline(samples))
    out = tmp_path / "cli-run"
    code = run_cli(["eval", "refer", "--dataset", f"refcoco:{root}", "--preset", "tiny",
                    "--image-dir", str(images), "--limit", "3", "--out", str(out), "--json",
                    "--summary-only"])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 3 and "per_sample" not in result
    assert (out / "report.json").is_file() and (out / "per_sample.csv").is_file()
    code = run_cli(["eval", "vos", "--dataset", f"refcoco:{root}", "--out", str(out)])
    assert code == 2


def test_marked_caption():
    class Phrase:
        def __init__(self, span):
            self.span = span

    class Narrative:
        caption = "a dog chases two cats"
        phrases = [Phrase((0, 5)), Phrase((13, 21)), Phrase(None)]

    assert marked_caption(Narrative()) == "<p>a dog</p> chases <p>two cats</p>"
