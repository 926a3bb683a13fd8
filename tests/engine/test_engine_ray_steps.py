"""Ray steps without Ray: how stages group into actor pools, that an actor loads only its
step's backends, and per-stage resources (parsing, defaults, refusals)."""

from __future__ import annotations

import numpy as np
import pytest
from engine_fakes import write_images

import pixelground.pipeline as pipeline_module
from pixelground.backends.presets import PRESETS
from pixelground.core.errors import InputError
from pixelground.engine.ray_engine import RayEngine, StageWorker, parse_stage_resources, steps
from pixelground.engine.runner import ALL_STAGES
from pixelground.engine.stages import Settings
from pixelground.serve.cli import main


def names(grouped):
    return [[s.name for s in step] for step in grouped]


def test_steps_one_pool_per_model_stage_model_free_stages_join():
    grouped = steps(ALL_STAGES, PRESETS["tiny"])
    assert names(grouped) == [["caption"], ["detect"], ["entities", "merge"], ["attributes"],
                              ["depth"], ["phrases"], ["labels", "relations"],
                              ["dense_caption", "context"]]  # fmt: skip


def test_stage_worker_loads_only_its_steps_backends(tmp_path, monkeypatch):
    built = []

    def fake_build(part, device, dtype):
        built.append(part.backend)
        return object()

    monkeypatch.setattr(pipeline_module, "build_part", fake_build)
    preset = PRESETS["tiny"]
    step = next(s for s in steps(ALL_STAGES, preset) if s[0].name == "depth")
    StageWorker(preset, "cpu", None, Settings(), step, first=False)
    assert built == [preset.parts["depth"].backend]
    built.clear()
    entities = next(s for s in steps(ALL_STAGES, preset) if s[0].name == "entities")
    worker = StageWorker(preset, "cpu", None, Settings(), entities, first=True)
    assert built == [preset.parts["segmenter"].backend]
    path = write_images(tmp_path, 1)[0]
    # the stage fails on the fake segmenter, but no other backend is loaded on the way
    out = worker({"id": np.array(["0"]), "path": np.array([str(path)])})
    assert len(out["record"]) == 1 and built == [preset.parts["segmenter"].backend]


def test_stage_resources_parse_and_resolve_per_step():
    spec = parse_stage_resources(["detect=gpu:0.5,cpu:1", "attributes=workers:2"])
    assert spec == {"detect": {"gpus": 0.5, "cpus": 1.0}, "attributes": {"workers": 2.0}}
    engine = RayEngine(stage_resources={**spec, "merge": {"gpus": 0.25}})
    grouped = {s[0].name: s for s in steps(ALL_STAGES, PRESETS["tiny"])}
    assert engine.resources(grouped["detect"]) == {"cpus": 1.0, "gpus": 0.5, "workers": 1}
    assert engine.resources(grouped["attributes"]) == {"cpus": 0.5, "gpus": 0.0, "workers": 2}
    assert engine.resources(grouped["entities"])["gpus"] == 0.25  # merge rides with entities
    assert engine.resources(grouped["caption"]) == {"cpus": 0.5, "gpus": 0.0, "workers": 1}


@pytest.mark.parametrize("bad", ["detect", "detect=gpu", "detect=tpu:1", "=gpu:1",
                                 "detect=gpu:-1", "detect=gpu:x"])  # fmt: skip
def test_stage_resources_bad_spec_is_an_input_error(bad):
    with pytest.raises(InputError, match="STAGE=KEY:VALUE"):
        parse_stage_resources([bad])


def test_stage_resources_unknown_stage_or_conflict_refused():
    with pytest.raises(InputError, match="not in this run"):
        RayEngine(stage_resources={"nope": {"gpus": 1}}).check(ALL_STAGES, PRESETS["tiny"])
    engine = RayEngine(stage_resources={"entities": {"gpus": 1}, "merge": {"gpus": 0.5}})
    with pytest.raises(InputError, match="different gpus"):
        engine.check(ALL_STAGES, PRESETS["tiny"])


@pytest.mark.parametrize("spec", ["detect=tpu:1", "nope=gpu:1"])
def test_cli_stage_resources_refused_before_any_work(tmp_path, capsys, spec):
    """A malformed spec, or a stage not in the run, is one line and exit 2; no dataset."""
    pytest.importorskip("ray")
    write_images(tmp_path / "src", 1)
    code = main(["annotate", str(tmp_path / "src"), "--out", str(tmp_path / "out"),
                 "--engine", "ray", "--preset", "shapes", "--stage-resources", spec])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--stage-resources" in err
    assert not (tmp_path / "out").exists()
