"""The engine's dataset under faults: bad images, resume, retry, refusal, signals, kills.

A cheap stage without a model (engine_fakes) stands in for the models: what is under test is
the engine's commits, status and resume logic, which is the same whatever the stages do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
from engine_fakes import FAKE_PIPE, FAKE_STAGES, write_images

from pixelground.core.errors import InputError
from pixelground.engine.api import annotate
from pixelground.engine.dataset import PARTIAL_SHARDS, Dataset
from pixelground.engine.local import LocalEngine
from pixelground.engine.source import Item
from pixelground.engine.stages import Context, Settings, Stage


def run(source, out, **options):
    return annotate(source, out, preset=FAKE_PIPE, stages=FAKE_STAGES, levels=(1,), **options)


def _huge_png(path: Path) -> None:
    """A valid 1x1 PNG whose header claims 100000 x 100000 pixels."""
    from PIL import Image

    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width, height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))


def test_bad_images_are_failed_records_and_the_run_goes_on(tmp_path):
    images = write_images(tmp_path / "src", 2)
    (tmp_path / "src" / "corrupt.png").write_bytes(b"not an image at all" * 10)
    (tmp_path / "src" / "empty.png").write_bytes(b"")
    (tmp_path / "src" / "truncated.png").write_bytes(images[0].read_bytes()[:60])
    _huge_png(tmp_path / "src" / "huge.png")
    stats = run(tmp_path / "src", tmp_path / "out")
    assert stats["done"] == 2 and stats["failed"] == 4
    failures = stats["failures"]
    assert "corrupt" in failures["corrupt.png"] and "empty" in failures["empty.png"]
    assert "truncated" in failures["truncated.png"] and "limit" in failures["huge.png"]
    saved = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert saved["failed"] == 4


def test_resume_limit_and_retry_failed_never_duplicate(tmp_path):
    write_images(tmp_path / "src", 5)
    (tmp_path / "src" / "5.png").write_bytes(b"")
    out = tmp_path / "out"
    assert run(tmp_path / "src", out, limit=2)["done"] == 2
    assert run(tmp_path / "src", out, shard_size=2)["done"] == 5
    shards = Dataset(out).shard_paths()
    assert run(tmp_path / "src", out)["done"] == 5
    assert Dataset(out).shard_paths() == shards  # nothing left to do: nothing written
    write_images(tmp_path / "fixed", 6)
    os.replace(tmp_path / "fixed" / "5.png", tmp_path / "src" / "5.png")
    assert run(tmp_path / "src", out)["failed"] == 1  # failed ones are kept without the flag
    stats = run(tmp_path / "src", out, retry_failed=True)
    assert stats["done"] == 6 and stats["failed"] == 0
    ids = Counter(r["id"] for r in Dataset(out).raw_records() if r["status"] == "done")
    assert set(ids.values()) == {1} and len(ids) == 6


def test_other_settings_are_refused_and_output_checked_first(tmp_path):
    write_images(tmp_path / "src", 1)
    run(tmp_path / "src", tmp_path / "out")
    with pytest.raises(InputError, match="other settings"):
        run(tmp_path / "src", tmp_path / "out", settings=Settings(max_objects=3))
    (tmp_path / "file").write_text("x")
    seen = []
    with pytest.raises(InputError, match="cannot write"):
        run(tmp_path / "src", tmp_path / "file" / "out", progress=seen.append)
    assert seen == []
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        run(tmp_path / "src", tmp_path / "busy")


def test_sources_folder_glob_text_list_and_coco_json(tmp_path):
    write_images(tmp_path / "src" / "sub", 3)
    (tmp_path / "list.txt").write_text("src/sub/0.png\n# a comment\n\nsrc/sub/2.png\n")
    coco = {"images": [{"id": 7, "file_name": "sub/1.png"}]}
    (tmp_path / "src" / "coco.json").write_text(json.dumps(coco))
    assert run(tmp_path / "src", tmp_path / "a")["done"] == 3  # recursive folder
    assert run(str(tmp_path / "src" / "sub" / "[01].png"), tmp_path / "b")["done"] == 2
    assert run(tmp_path / "list.txt", tmp_path / "c")["done"] == 2
    assert [r["id"] for r in Dataset(tmp_path / "c").records()] == [
        "src/sub/0.png",
        "src/sub/2.png",
    ]
    assert run(tmp_path / "src" / "coco.json", tmp_path / "d")["done"] == 1
    with pytest.raises(InputError, match="source not found"):
        run(tmp_path / "missing", tmp_path / "e")


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from engine_fakes import FAKE_PIPE, FAKE_STAGES
from pixelground.engine.api import annotate
annotate({src!r}, {out!r}, preset=FAKE_PIPE, stages=FAKE_STAGES, levels=(1,), batch_size=1,
         shard_size=1)
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_or_killed_run_keeps_commits_and_resumes(tmp_path, sig):
    write_images(tmp_path / "src", 12)
    out = tmp_path / "out"
    here = str(Path(__file__).parent)
    script = SCRIPT.format(tests=here, src=str(tmp_path / "src"), out=str(out))
    env = {**os.environ, "ENGINE_FAKE_SLEEP": "0.25", "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stderr=subprocess.PIPE,
        # A shell without job control starts background jobs with SIGINT ignored, and a child
        # inherits that (Python then installs no KeyboardInterrupt): give it the default back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while len(Dataset(out).shard_paths()) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.05)
    process.send_signal(sig)
    process.wait(timeout=30)
    process.stderr.close()
    committed = [r["id"] for r in Dataset(out).raw_records()]
    assert 2 <= len(committed) < 12 and len(set(committed)) == len(committed)
    assert not list((out / "shards").glob(PARTIAL_SHARDS)) or sig == signal.SIGKILL
    stats = run(tmp_path / "src", out)
    assert stats["done"] == 12
    assert not list((out / "shards").glob(PARTIAL_SHARDS))
    ids = Counter(r["id"] for r in Dataset(out).raw_records())
    assert len(ids) == 12 and set(ids.values()) == {1}


def test_local_engine_reads_the_source_a_bounded_distance_ahead(tmp_path):
    paths = write_images(tmp_path / "src", 3)
    produced, lead = [0], []

    def source():
        for index in range(40):
            produced[0] += 1
            yield Item(str(index), str(paths[index % 3]))

    def stage(record, image, ctx):
        time.sleep(0.005)
        lead.append(produced[0] - int(record["id"]))
        return record

    folder = Dataset(tmp_path / "out")
    folder.root.mkdir()
    folder.shards.mkdir()
    engine = LocalEngine(batch_size=2, shard_size=8, prefetch=2)
    stages = [Stage("lead", 1, stage, finds_objects=True)]
    assert engine.run(source(), folder, stages, Context(FAKE_PIPE, Settings())) == 40
    assert max(lead) <= 2 * (2 + 2)  # the batch in hand, the queue, and one being loaded
    assert len(folder.shard_paths()) == 5
