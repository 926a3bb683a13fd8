"""The Ray engine in local mode (2 CPUs): same records as the local engine, and an actor that
dies mid-run is restarted with nothing lost or duplicated. Ray missing: one clear line."""

from __future__ import annotations

import sys
from collections import Counter

import engine_fakes
import pytest
from engine_fakes import CRASH_STAGES, FAKE_PIPE, STEP_STAGES, write_images

from pixelground.engine.api import annotate
from pixelground.engine.dataset import Dataset
from pixelground.serve.cli import main


@pytest.mark.slow
def test_ray_engine_survives_a_killed_actor(tmp_path):
    ray = pytest.importorskip("ray")
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    cloudpickle.register_pickle_by_value(engine_fakes)  # workers do not see tests/
    write_images(tmp_path / "src", 4)
    (tmp_path / "src" / "bad.png").write_bytes(b"broken")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        stats = annotate(tmp_path / "src", tmp_path / "out", preset=FAKE_PIPE,
                         stages=CRASH_STAGES, levels=(1,), engine="ray", batch_size=1,
                         shard_size=2, ray_options={"workers": 1})  # fmt: skip
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(engine_fakes)
    assert (tmp_path / "src" / ".crashed").exists()  # an actor did die
    assert stats["done"] == 4 and stats["failed"] == 1
    ids = Counter(r["id"] for r in Dataset(tmp_path / "out").raw_records())
    assert len(ids) == 5 and set(ids.values()) == {1}
    assert all(len(r["objects"]) == 1 for r in Dataset(tmp_path / "out").records())


@pytest.mark.slow
def test_ray_engine_one_pool_per_step_survives_a_killed_actor(tmp_path):
    """Two steps (two actor pools with their own resources); the second step's actor dies
    once: every image committed once, each image's stages ran in two different actors."""
    ray = pytest.importorskip("ray")
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    cloudpickle.register_pickle_by_value(engine_fakes)
    write_images(tmp_path / "src", 4)
    (tmp_path / "src" / "bad.png").write_bytes(b"broken")
    resources = {"square": {"cpus": 0.5}, "crash": {"cpus": 0.25, "workers": 1}}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        stats = annotate(tmp_path / "src", tmp_path / "out", preset=FAKE_PIPE,
                         stages=STEP_STAGES, levels=(1,), engine="ray", batch_size=1,
                         shard_size=2, ray_options={"stage_resources": resources})  # fmt: skip
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(engine_fakes)
    assert (tmp_path / "src" / ".crashed").exists()
    assert stats["done"] == 4 and stats["failed"] == 1
    ids = Counter(r["id"] for r in Dataset(tmp_path / "out").raw_records())
    assert len(ids) == 5 and set(ids.values()) == {1}
    done = list(Dataset(tmp_path / "out").records())
    assert len(done) == 4 and all(len(r["objects"]) == 1 and r["parser"] for r in done)
    assert all(r["pids"]["square"] != r["pids"]["crash"] for r in done)


def test_ray_engine_without_ray_is_one_clear_error(tmp_path, monkeypatch, capsys):
    write_images(tmp_path / "src", 1)
    monkeypatch.setitem(sys.modules, "ray", None)
    code = main(["annotate", str(tmp_path / "src"), "--out", str(tmp_path / "out"),
                 "--engine", "ray", "--preset", "shapes"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "pip install 'pixelground[ray]'" in err and not (tmp_path / "out").exists()
